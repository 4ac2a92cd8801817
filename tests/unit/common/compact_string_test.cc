// CompactString (agent/common/compact_string.h): a string behind one pointer, for the uid every
// object carries.
#include "agent/common/compact_string.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace meshlet {
namespace {

TEST(CompactString, OnePointer) { EXPECT_EQ(sizeof(CompactString), sizeof(void*)); }

TEST(CompactString, EmptyByDefaultAndFromEmptyText) {
  CompactString a;
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a, "");
  EXPECT_EQ(a.size(), 0u);
  CompactString b = std::string();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(a, b);
}

TEST(CompactString, KeepsTheText) {
  const std::string uid = "2b1f0c8e-8d53-4a5e-9d0e-5c3e8f2b9a11";
  CompactString s = uid;
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.size(), uid.size());
  EXPECT_EQ(s, uid);
  EXPECT_EQ(s.str(), uid);
  EXPECT_EQ(std::string_view(s), uid);
  EXPECT_NE(s, "2b1f0c8e");
  CompactString with_nul(std::string_view("a\0b", 3));
  EXPECT_EQ(with_nul.size(), 3u);
}

TEST(CompactString, CopiesAreDeepAndMovesEmptyTheSource) {
  CompactString a = "u-1";
  CompactString b = a;
  EXPECT_EQ(b, "u-1");
  a = "u-2";
  EXPECT_EQ(b, "u-1");
  EXPECT_EQ(a, "u-2");
  CompactString c = std::move(a);
  EXPECT_EQ(c, "u-2");
  b = c;
  EXPECT_EQ(b, "u-2");
  b = "";
  EXPECT_TRUE(b.empty());
}

}  // namespace
}  // namespace meshlet
