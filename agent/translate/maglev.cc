// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI 2016, section 3.4) and the client affinity hash shared with the kernel.
#include <string>
#include <vector>

#include "agent/translate/translate.h"

namespace meshlet {
namespace {

constexpr uint32_t kTableSize = MESHLET_MAGLEV_SIZE;
static_assert(kTableSize > 1, "the Maglev table needs at least two entries");

// MurmurHash3 finalizers: full avalanche of every input bit.
uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

// FNV-1a, 64 bit, finalized: the "offset" hash.
uint64_t offsetHash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return fmix64(h);
}

// A second, unrelated byte hash (multiply-rotate with its own seed and constant), finalized:
// the "skip" hash. Independent of offsetHash so two backends that collide on one rarely
// collide on the other.
uint64_t skipHash(const std::string& s) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
  for (unsigned char c : s) {
    h = (h ^ c) * 0x87c37b91114253d5ull;
    h = (h << 31) | (h >> 33);
  }
  return fmix64(h);
}

}  // namespace

std::vector<uint32_t> maglevTable(const std::vector<std::string>& backend_names) {
  const size_t n = backend_names.size();
  if (n == 0) return {};

  // Backend i's preference list is permutation[i][j] = (offset_i + j * skip_i) % M. M is prime
  // and skip_i is in [1, M), so every list visits every entry exactly once.
  std::vector<uint32_t> offset(n);
  std::vector<uint32_t> skip(n);
  for (size_t i = 0; i < n; ++i) {
    offset[i] = static_cast<uint32_t>(offsetHash(backend_names[i]) % kTableSize);
    skip[i] = static_cast<uint32_t>(skipHash(backend_names[i]) % (kTableSize - 1)) + 1;
  }

  // Fill round-robin: each backend in turn claims the next entry of its preference list that is
  // still empty, until the table is full. Every backend gets floor(M/n) or ceil(M/n) entries
  // (when n > M, some get none).
  constexpr uint32_t kEmpty = MESHLET_NO_ID;
  std::vector<uint32_t> table(kTableSize, kEmpty);
  std::vector<uint32_t> next(n, 0);  // position in each preference list
  uint32_t filled = 0;
  while (filled < kTableSize) {
    for (size_t i = 0; i < n && filled < kTableSize; ++i) {
      uint32_t entry;
      do {
        entry =
            static_cast<uint32_t>((uint64_t{offset[i]} + uint64_t{next[i]} * skip[i]) % kTableSize);
        ++next[i];
      } while (table[entry] != kEmpty);
      table[entry] = static_cast<uint32_t>(i);
      ++filled;
    }
  }
  return table;
}

// Kernel/agent contract: FNV-1a (32 bit) over the address bytes in network order (4 bytes for
// IPv4, 16 for IPv6; the family is not hashed), then the MurmurHash3 32-bit finalizer. The agent
// writes it to meshlet_pod_value.affinity_hash; the kernel picks bucket hash % MESHLET_MAGLEV_SIZE.
uint32_t affinityHash(const IpAddr& ip) {
  const size_t len = ip.isV4() ? 4 : 16;
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; ++i) {
    h ^= ip.bytes[i];
    h *= 16777619u;
  }
  return fmix32(h);
}

}  // namespace meshlet
