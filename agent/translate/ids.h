#pragma once
// Stable id assignment for the translator (private to agent/translate).
#include <algorithm>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "agent/common/flat_map.h"

namespace meshlet {

// How new ids are chosen for keys that had none in the previous table.
struct IdPolicy {
  enum class Kind : uint8_t {
    // Lowest id in [first, limit) held by no key of the previous table; once those run out, the
    // lowest id freed in this call. Keys that find no id at all are left out (exhausted).
    kLowestFree,
    // One more than the largest id in the previous table or assigned so far (ids never shrink
    // while their holder exists); limit is the exclusive upper bound.
    kMaxPlusOne,
  };
  Kind kind = Kind::kLowestFree;
  uint32_t first = 0;
  uint32_t limit = 0;
};

// Returns an id for every key in `wanted` (duplicates ignored) that can get one: the previous id
// when the key had one within [first, limit), otherwise a new one per `policy`, handed out in the
// order of `wanted`. Keys of `previous` that are not wanted are dropped. Pure.
// Table maps Key to uint32_t in Key's operator< order: std::map or FlatMap.
// Wanted keys already sorted and unique (the translator's backends) cost no copy and no search.
template <typename Key, typename Table>
Table assignIds(const std::vector<Key>& wanted, const Table& previous, const IdPolicy& policy) {
  const bool sorted_unique = strictlyAscending(wanted.begin(), wanted.end(), std::less<Key>());
  std::vector<Key> copy;
  if (!sorted_unique) {
    copy = wanted;
    std::sort(copy.begin(), copy.end());
    copy.erase(std::unique(copy.begin(), copy.end()), copy.end());
  }
  const std::vector<Key>& keys = sorted_unique ? wanted : copy;
  std::vector<uint32_t> ids(keys.size());
  std::vector<uint8_t> has(keys.size(), 0);
  size_t assigned = 0;
  auto inRange = [&policy](uint32_t id) { return id >= policy.first && id < policy.limit; };

  // kLowestFree: 0 = never held, 1 = held by a key that went away in this call, 2 = in use.
  // kMaxPlusOne: the ids in use.
  const bool lowest_free = policy.kind == IdPolicy::Kind::kLowestFree;
  std::vector<uint8_t> state(lowest_free ? policy.limit - policy.first : 0, 0);
  std::set<uint32_t> used;
  uint64_t next = policy.first;  // kMaxPlusOne
  for (const auto& [key, id] : previous) {
    if (!inRange(id)) continue;
    if (lowest_free) {
      state[id - policy.first] = 1;
    } else {
      next = std::max<uint64_t>(next, uint64_t{id} + 1);
    }
  }

  // Previous ids of keys still wanted: one merge walk, both sides in key order.
  size_t i = 0;
  for (const auto& [key, id] : previous) {
    while (i < keys.size() && keys[i] < key) ++i;
    if (i == keys.size()) break;
    if (key < keys[i] || !inRange(id)) continue;
    bool free = lowest_free ? state[id - policy.first] != 2 : used.insert(id).second;
    if (!free) continue;
    if (lowest_free) state[id - policy.first] = 2;
    ids[i] = id;
    has[i] = 1;
    ++assigned;
  }

  // New ids, in the order of `wanted`.
  size_t fresh = 0;  // kLowestFree: cursor over never-held ids
  size_t freed = 0;  // kLowestFree: cursor over ids freed in this call
  for (size_t w = 0; w < wanted.size() && assigned < keys.size(); ++w) {
    size_t at =
        sorted_unique ? w : std::lower_bound(keys.begin(), keys.end(), wanted[w]) - keys.begin();
    if (has[at]) continue;
    uint32_t id;
    if (lowest_free) {
      while (fresh < state.size() && state[fresh] != 0) ++fresh;
      size_t pick = fresh;
      if (pick >= state.size()) {
        while (freed < state.size() && state[freed] != 1) ++freed;
        pick = freed;
      }
      if (pick >= state.size()) break;  // exhausted: the remaining keys get no id
      state[pick] = 2;
      id = policy.first + static_cast<uint32_t>(pick);
    } else {
      if (next >= policy.limit) break;
      id = static_cast<uint32_t>(next++);
    }
    ids[at] = id;
    has[at] = 1;
    ++assigned;
  }

  // Already in key order: no sorting, no rebalancing.
  std::vector<std::pair<Key, uint32_t>> out;
  out.reserve(assigned);
  for (size_t k = 0; k < keys.size(); ++k) {
    if (has[k]) out.emplace_back(sorted_unique ? keys[k] : std::move(copy[k]), ids[k]);
  }
  return mapFromPairs<Table>(std::move(out));
}

}  // namespace meshlet
