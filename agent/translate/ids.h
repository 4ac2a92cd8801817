#pragma once
// Stable id assignment for the translator (private to agent/translate).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

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
std::map<std::string, uint32_t> assignIds(const std::vector<std::string>& wanted,
                                          const std::map<std::string, uint32_t>& previous,
                                          const IdPolicy& policy);

}  // namespace meshlet
