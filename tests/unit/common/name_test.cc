// Name (agent/common/name.h): interned strings, shared by every holder of the same text and
// freed with the last one, from any thread.
#include "agent/common/name.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace meshlet {
namespace {

TEST(Name, EqualTextsShareOneCopy) {
  const size_t before = Name::internedCount();
  Name a("meshlet-name-test-node-1");
  Name b(std::string("meshlet-name-test-node-1"));
  Name c("meshlet-name-test-node-2");
  EXPECT_EQ(Name::internedCount(), before + 2);
  EXPECT_EQ(&a.str(), &b.str());  // the same storage
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  EXPECT_TRUE(a == "meshlet-name-test-node-1");
  EXPECT_TRUE(c != std::string("meshlet-name-test-node-1"));
  EXPECT_TRUE(a < c);
  // Against a std::string (compared as text, not interned first).
  EXPECT_TRUE(a < std::string("meshlet-name-test-node-2"));
  EXPECT_FALSE(std::string("meshlet-name-test-node-2") < a);
  EXPECT_TRUE(std::string("meshlet-name-test-node-0") < a);
  EXPECT_FALSE(c < std::string("meshlet-name-test-node-2"));
  EXPECT_EQ(sizeof(Name), sizeof(void*));
}

TEST(Name, EmptyNeedsNoEntry) {
  const size_t before = Name::internedCount();
  Name e;
  Name e2("");
  EXPECT_TRUE(e.empty());
  EXPECT_TRUE(e2.empty());
  EXPECT_EQ(e.str(), "");
  EXPECT_TRUE(e == e2);
  EXPECT_EQ(Name::internedCount(), before);
}

TEST(Name, TheLastHolderFreesTheText) {
  const size_t before = Name::internedCount();
  {
    Name a("meshlet-name-test-transient");
    Name copy = a;
    Name moved = std::move(copy);
    EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(Name::internedCount(), before + 1);
    a = Name("meshlet-name-test-other");  // a's old text still has `moved`
    EXPECT_EQ(Name::internedCount(), before + 2);
    EXPECT_EQ(moved, "meshlet-name-test-transient");
  }
  EXPECT_EQ(Name::internedCount(), before);
}

TEST(Name, ThreadsInterningAndDroppingTheSameTextsAgree) {
  const size_t before = Name::internedCount();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &mismatches] {
      for (int i = 0; i < 20000; ++i) {
        std::string text = "meshlet-name-test-" + std::to_string(i % 7);
        Name n(text);
        Name copy = n;
        if (copy.str() != text || !(copy == Name(text))) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
  EXPECT_EQ(Name::internedCount(), before);  // every copy dropped: nothing left behind
}

}  // namespace
}  // namespace meshlet
