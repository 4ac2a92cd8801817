// The proxy's byte queue: FIFO order across appends, in-place receives, front consumption,
// compaction and growth.
#include "agent/common/byte_buf.h"

#include <gtest/gtest.h>

#include <string>

namespace meshlet {
namespace {

TEST(ByteBuf, KeepsBytesInOrderAcrossAppendsAndConsumes) {
  ByteBuf b;
  EXPECT_TRUE(b.empty());
  b.append("hello ");
  b.append("world");
  EXPECT_EQ(b.view(), "hello world");
  b.consume(6);
  EXPECT_EQ(b.view(), "world");
  b.append("!");
  EXPECT_EQ(b.view(), "world!");
  b.consume(6);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
}

TEST(ByteBuf, ReceivesInPlace) {
  ByteBuf b;
  char* p = b.reserve(100);
  std::memcpy(p, "abc", 3);
  b.commit(3);
  EXPECT_EQ(b.view(), "abc");
  EXPECT_GE(b.capacity(), 103u);
}

// Consumed room at the front is reused: a queue drained as fast as it fills stays the size of
// its largest backlog, and what is left moves down intact.
TEST(ByteBuf, ReusesConsumedRoomAndMovesWhatIsLeft) {
  ByteBuf b;
  std::string expect;
  b.reserve(4096);
  size_t cap = b.capacity();
  for (int i = 0; i < 10000; ++i) {
    std::string chunk(100, static_cast<char>('a' + i % 26));
    b.append(chunk);
    expect += chunk;
    size_t take = b.size() > 150 ? 150 : b.size() - 10;
    ASSERT_EQ(b.view().substr(0, take), expect.substr(0, take)) << i;
    b.consume(take);
    expect.erase(0, take);
    ASSERT_EQ(b.view(), expect) << i;
  }
  EXPECT_EQ(b.capacity(), cap);
}

TEST(ByteBuf, GrowsKeepingItsBytes) {
  ByteBuf b;
  std::string all;
  for (int i = 0; i < 1000; ++i) {
    std::string chunk(1000, static_cast<char>('0' + i % 10));
    b.append(chunk);
    all += chunk;
  }
  b.consume(500);
  EXPECT_EQ(b.view(), all.substr(500));
  EXPECT_GE(b.capacity(), all.size());
}

TEST(ByteBuf, ReleaseFreesOnlyAnEmptyLargeBuffer) {
  ByteBuf b;
  b.append(std::string(100000, 'x'));
  b.release(4096);
  EXPECT_EQ(b.size(), 100000u);  // not empty: kept
  b.consume(100000);
  b.release(4096);
  EXPECT_EQ(b.capacity(), 0u);
  b.append("y");
  EXPECT_EQ(b.view(), "y");
}

// Big storage is a mapping of its own; moving a queue moves its bytes, not a copy of them.
TEST(ByteBuf, BigStorageAndMoves) {
  ByteBuf a;
  std::string big(ByteBuf::kMapFrom * 3 + 5, 'z');
  a.append(big);
  EXPECT_GE(a.capacity(), big.size());
  EXPECT_EQ(a.capacity() % 4096, 0u);
  const char* where = a.data();
  ByteBuf b(std::move(a));
  EXPECT_EQ(b.data(), where);
  EXPECT_EQ(b.view(), big);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.capacity(), 0u);
  ByteBuf c;
  c.append("small");
  c = std::move(b);
  EXPECT_EQ(c.view(), big);
  c.consume(big.size());
  c.release(0);
  EXPECT_EQ(c.capacity(), 0u);
}

}  // namespace
}  // namespace meshlet
