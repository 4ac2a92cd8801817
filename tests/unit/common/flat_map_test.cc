// FlatMap (agent/common/flat_map.h) and SharedList (agent/state/shared_list.h): the containers
// the translator's large tables and the snapshot's object lists are kept in.
#include "agent/common/flat_map.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "agent/state/shared_list.h"

namespace meshlet {
namespace {

using Map = FlatMap<int, std::string>;

std::map<int, std::string> asStdMap(const Map& m) { return {m.begin(), m.end()}; }

TEST(FlatMap, BuiltFromUnsortedEntriesKeepsTheFirstOfEqualKeys) {
  Map m(Map::container_type{{5, "e"}, {1, "a"}, {3, "c"}, {1, "second a"}, {4, "d"}, {3, "x"}});
  EXPECT_EQ(asStdMap(m), (std::map<int, std::string>{{1, "a"}, {3, "c"}, {4, "d"}, {5, "e"}}));
  ASSERT_EQ(m.size(), 4u);
  std::vector<int> keys;
  for (const auto& [k, v] : m) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<int>{1, 3, 4, 5}));  // iteration in key order
}

TEST(FlatMap, LookupsAnswerLikeStdMap) {
  Map m{{10, "ten"}, {20, "twenty"}};
  EXPECT_EQ(m.count(10), 1u);
  EXPECT_EQ(m.count(15), 0u);
  EXPECT_EQ(m.find(15), m.end());
  EXPECT_EQ(m.find(20)->second, "twenty");
  EXPECT_EQ(m.at(10), "ten");
  EXPECT_THROW(m.at(11), std::out_of_range);
  const Map& c = m;
  EXPECT_EQ(c.find(10)->second, "ten");
}

TEST(FlatMap, EmplaceKeepsOrderAndRefusesAPresentKey) {
  Map m;
  EXPECT_TRUE(m.emplace(2, "b").second);
  EXPECT_TRUE(m.emplace(9, "i").second);  // past the end
  EXPECT_TRUE(m.emplace(5, "e").second);  // in the middle
  EXPECT_TRUE(m.emplace(0, "z").second);  // at the front
  auto [it, added] = m.emplace(5, "other");
  EXPECT_FALSE(added);
  EXPECT_EQ(it->second, "e");
  m[7] = "g";
  EXPECT_EQ(asStdMap(m),
            (std::map<int, std::string>{{0, "z"}, {2, "b"}, {5, "e"}, {7, "g"}, {9, "i"}}));
  EXPECT_EQ(m.erase(2), 1u);
  EXPECT_EQ(m.erase(2), 0u);
  EXPECT_EQ(m.size(), 4u);
}

TEST(FlatMap, EqualityComparesKeysAndValues) {
  Map a(Map::container_type{{2, "b"}, {1, "a"}});
  Map b{{1, "a"}, {2, "b"}};
  EXPECT_EQ(a, b);
  b[2] = "B";
  EXPECT_FALSE(a == b);
  EXPECT_FALSE(a == (Map{{1, "a"}}));
}

TEST(FlatMap, LargeShuffledInputEndsSorted) {
  Map::container_type entries;
  for (int i = 0; i < 5000; ++i) entries.emplace_back((i * 7919) % 5000, std::to_string(i));
  Map m(std::move(entries));
  ASSERT_EQ(m.size(), 5000u);
  int expect = 0;
  for (const auto& [k, v] : m) {
    EXPECT_EQ(k, expect++);
    EXPECT_EQ((std::stoi(v) * 7919) % 5000, k);
  }
}

TEST(SharedList, CopiesShareUntilOneWrites) {
  SharedList<std::string> a{"x", "y"};
  SharedList<std::string> b = a;
  EXPECT_TRUE(a.sharesWith(b));
  // Reading never separates them, const or not.
  size_t n = 0;
  for (const auto& s : b) n += s.size();
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(b[1], "y");
  EXPECT_TRUE(a.sharesWith(b));
  b.push_back("z");
  EXPECT_FALSE(a.sharesWith(b));
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(b.size(), 3u);
  b.mut()[0] = "changed";
  EXPECT_EQ(a[0], "x");
  b.erase(b.begin() + 1);
  EXPECT_EQ(b.get(), (std::vector<std::string>{"changed", "z"}));
}

TEST(SharedList, EmptyListReadsAsEmpty) {
  SharedList<int> e;
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e.begin(), e.end());
  e.emplace_back(4);
  EXPECT_EQ(e.front(), 4);
  e.clear();
  EXPECT_EQ(e.size(), 0u);
}

}  // namespace
}  // namespace meshlet
