#include "agent/translate/ids.h"

#include <algorithm>
#include <set>

namespace meshlet {
namespace {

bool inRange(uint32_t id, const IdPolicy& policy) {
  return id >= policy.first && id < policy.limit;
}

}  // namespace

std::map<std::string, uint32_t> assignIds(const std::vector<std::string>& wanted,
                                          const std::map<std::string, uint32_t>& previous,
                                          const IdPolicy& policy) {
  std::map<std::string, uint32_t> out;
  std::set<std::string> wanted_set(wanted.begin(), wanted.end());

  // Keep every previous id whose key is still wanted.
  std::set<uint32_t> used;
  for (const auto& [key, id] : previous) {
    if (wanted_set.count(key) != 0 && inRange(id, policy) && used.insert(id).second) {
      out.emplace(key, id);
    }
  }

  if (policy.kind == IdPolicy::Kind::kMaxPlusOne) {
    uint64_t next = policy.first;
    for (const auto& [key, id] : previous) {
      if (inRange(id, policy)) next = std::max<uint64_t>(next, uint64_t{id} + 1);
    }
    for (const auto& key : wanted) {
      if (out.count(key) != 0) continue;
      if (next >= policy.limit) break;
      out.emplace(key, static_cast<uint32_t>(next++));
    }
    return out;
  }

  // kLowestFree: 0 = never held, 1 = held by a key that went away in this call, 2 = in use.
  std::vector<uint8_t> state(policy.limit - policy.first, 0);
  for (const auto& [key, id] : previous) {
    if (inRange(id, policy)) state[id - policy.first] = 1;
  }
  for (uint32_t id : used) state[id - policy.first] = 2;
  size_t fresh = 0;  // cursor over never-held ids
  size_t freed = 0;  // cursor over ids freed in this call
  for (const auto& key : wanted) {
    if (out.count(key) != 0) continue;
    while (fresh < state.size() && state[fresh] != 0) ++fresh;
    size_t pick = fresh;
    if (pick >= state.size()) {
      while (freed < state.size() && state[freed] != 1) ++freed;
      pick = freed;
    }
    if (pick >= state.size()) break;  // exhausted: the remaining keys get no id
    state[pick] = 2;
    out.emplace(key, policy.first + static_cast<uint32_t>(pick));
  }
  return out;
}

}  // namespace meshlet
