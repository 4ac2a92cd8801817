#pragma once
// A map kept as one sorted vector: the translator's tables with 100 000s of entries (backends,
// their explanations, their ids) cost a key and a value each instead of a tree node and an
// allocation, are copied with one memcpy-like pass and looked up by binary search.
//
// The subset of std::map's interface the agent uses. Build large maps from an unsorted vector
// (the constructor sorts once); emplace() is cheap only when keys arrive in ascending order.
#include <algorithm>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace meshlet {

// True when [first, last) ascends strictly under `less`: sorted, nothing twice.
template <typename It, typename Less>
bool strictlyAscending(It first, It last, Less less) {
  return std::adjacent_find(first, last, [&less](const auto& a, const auto& b) {
           return !less(a, b);
         }) == last;
}

template <typename K, typename V, typename Less = std::less<K>>
class FlatMap {
 public:
  using key_type = K;
  using mapped_type = V;
  using value_type = std::pair<K, V>;
  using container_type = std::vector<value_type>;
  using iterator = typename container_type::iterator;
  using const_iterator = typename container_type::const_iterator;

  FlatMap() = default;
  FlatMap(std::initializer_list<value_type> init) : FlatMap(container_type(init)) {}
  // Entries in any order; of entries with equal keys the first is kept, as a sequence of
  // std::map::emplace calls would.
  // Sorts (key, position) pairs, not the entries themselves, so each entry moves once however
  // large it is.
  explicit FlatMap(container_type entries) {
    if (strictlyAscending(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
          return Less()(a.first, b.first);
        })) {
      v_ = std::move(entries);  // already in order, no key twice
      return;
    }
    std::vector<std::pair<K, size_t>> order;
    order.reserve(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) order.emplace_back(entries[i].first, i);
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return Less()(a.first, b.first) || (!Less()(b.first, a.first) && a.second < b.second);
    });
    v_.reserve(entries.size());
    for (const auto& [key, i] : order) {
      if (!v_.empty() && same(v_.back().first, key)) continue;
      v_.push_back(std::move(entries[i]));
    }
  }

  iterator begin() { return v_.begin(); }
  iterator end() { return v_.end(); }
  const_iterator begin() const { return v_.begin(); }
  const_iterator end() const { return v_.end(); }
  size_t size() const { return v_.size(); }
  bool empty() const { return v_.empty(); }
  void clear() { v_.clear(); }

  const_iterator find(const K& k) const {
    auto it = lower(k);
    return it != v_.end() && same(it->first, k) ? it : v_.end();
  }
  iterator find(const K& k) {
    auto it = lower(k);
    return it != v_.end() && same(it->first, k) ? it : v_.end();
  }
  size_t count(const K& k) const { return find(k) == v_.end() ? 0 : 1; }
  const V& at(const K& k) const {
    auto it = find(k);
    if (it == v_.end()) throw std::out_of_range("FlatMap::at");
    return it->second;
  }
  V& at(const K& k) {
    auto it = find(k);
    if (it == v_.end()) throw std::out_of_range("FlatMap::at");
    return it->second;
  }

  // Inserts unless the key is present. O(1) past the last key, O(n) elsewhere.
  std::pair<iterator, bool> emplace(const K& k, V value) {
    if (v_.empty() || Less()(v_.back().first, k)) {
      v_.emplace_back(k, std::move(value));
      return {std::prev(v_.end()), true};
    }
    auto it = lower(k);
    if (it != v_.end() && same(it->first, k)) return {it, false};
    return {v_.emplace(it, k, std::move(value)), true};
  }
  V& operator[](const K& k) { return emplace(k, V{}).first->second; }

  iterator erase(const_iterator it) { return v_.erase(it); }
  size_t erase(const K& k) {
    auto it = find(k);
    if (it == v_.end()) return 0;
    v_.erase(it);
    return 1;
  }

  // Needs operator== on V (and on K: equal keys are compared as !(a<b) && !(b<a)).
  bool operator==(const FlatMap& o) const {
    return std::equal(v_.begin(), v_.end(), o.v_.begin(), o.v_.end(),
                      [](const value_type& a, const value_type& b) {
                        return same(a.first, b.first) && a.second == b.second;
                      });
  }

  Less key_comp() const { return Less(); }

 private:
  static bool same(const K& a, const K& b) { return !Less()(a, b) && !Less()(b, a); }
  const_iterator lower(const K& k) const {
    return std::lower_bound(v_.begin(), v_.end(), k,
                            [](const value_type& e, const K& key) { return Less()(e.first, key); });
  }
  iterator lower(const K& k) {
    return std::lower_bound(v_.begin(), v_.end(), k,
                            [](const value_type& e, const K& key) { return Less()(e.first, key); });
  }

  container_type v_;
};

// A std::map or a FlatMap from a vector of (key, value) pairs in any order; of equal keys the
// first stays. A FlatMap takes the vector over.
template <typename Map, typename Pairs>
Map mapFromPairs(Pairs pairs) {
  if constexpr (requires { typename Map::container_type; }) {
    static_assert(std::is_same_v<Pairs, typename Map::container_type>);
    return Map(std::move(pairs));
  } else {
    return Map(std::make_move_iterator(pairs.begin()), std::make_move_iterator(pairs.end()));
  }
}

}  // namespace meshlet
