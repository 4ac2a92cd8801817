// Load balancing on top of the translated maps: the Maglev table itself, and the kernel's
// backend choice simulated in C++ exactly as bpf/lib/sock_lb.h makes it:
//   count == 0                    -> refused (ECONNREFUSED)
//   MESHLET_LB_MAGLEV             -> slot = maglev[svc, affinity_hash % MESHLET_MAGLEV_SIZE]
//   MESHLET_LB_ROUND_ROBIN        -> slot = counter++ % n
//   MESHLET_LB_RANDOM             -> slot = prandom % n
// where n = local_count when the service has MESHLET_SVC_PREFER_CLOSE and local_count > 0,
// else count. The Maglev table covers all ready backends (PreferClose does not narrow it).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "agent/translate/translate.h"
#include "tests/unit/translate/fixture.h"

namespace meshlet {
namespace {

using namespace translate_test;  // NOLINT(build/namespaces): test builders

std::vector<std::string> names(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(maglevBackendName(ip(("198.18.0." + std::to_string(10 + i)).c_str()), 8080));
  }
  return out;
}

IpAddr client(int i) {  // distinct addresses in 198.18.0.0/15
  IpAddr a;
  a.bytes = {198, static_cast<uint8_t>(18 + (i >> 16)), static_cast<uint8_t>(i >> 8),
             static_cast<uint8_t>(i)};
  return a;
}

// The kernel's pick for one connection: the chosen backend, nullopt when refused.
class KernelSim {
 public:
  explicit KernelSim(const DesiredDatapath& d) : d_(d), backends_(d.backends()) {}

  std::optional<meshlet_backend_value> pick(const meshlet_svc_key& key, uint32_t affinity_hash,
                                            uint32_t prandom) {
    auto svc = d_.services.find(key);
    if (svc == d_.services.end()) return std::nullopt;  // not a service: passthrough
    const meshlet_svc_value& v = svc->second;
    if (v.count == 0) return std::nullopt;  // ECONNREFUSED
    auto b = backends_.find({v.svc_id, pickSlot(v, affinity_hash, prandom)});
    if (b == backends_.end()) return std::nullopt;
    return b->second;
  }

 private:
  // bpf/lib/sock_lb.h pick_slot(), line for line.
  uint32_t pickSlot(const meshlet_svc_value& v, uint32_t affinity_hash, uint32_t prandom) {
    uint32_t n = v.count;
    if (v.lb_algo == MESHLET_LB_MAGLEV) {
      auto it = d_.maglev.find({v.svc_id, maglevBucket(affinity_hash)});
      if (it != d_.maglev.end()) return it->second;
    }
    if ((v.flags & MESHLET_SVC_PREFER_CLOSE) != 0 && v.local_count != 0) n = v.local_count;
    if (v.lb_algo == MESHLET_LB_ROUND_ROBIN) return rr_[v.svc_id]++ % n;
    return prandom % n;
  }

  const DesiredDatapath& d_;
  const BackendEntries backends_;
  std::map<uint32_t, uint32_t> rr_;  // per-service round-robin counter
};

std::string addrOf(const meshlet_backend_value& b) {
  return IpAddr::fromWords(b.addr, b.family).toString();
}

// A service with `local` backends on this node and `remote` elsewhere.
Snapshot lbService(int local, int remote, SessionAffinity affinity = SessionAffinity::kNone,
                   bool round_robin = false, bool prefer_close = false) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.services.mut()[0].session_affinity = affinity;
  s.services.mut()[0].round_robin = round_robin;
  s.services.mut()[0].prefer_close = prefer_close;
  EndpointSlice slice = makeSlice("shop", "web-x1", "web", {epPort("http", 8080)}, {});
  for (int i = 0; i < local + remote; ++i) {
    Endpoint ep;
    ep.address = ip(("198.18.1." + std::to_string(10 + i)).c_str());
    ep.node_name = i < local ? "node-a" : "node-b";
    slice.endpoints.push_back(ep);
  }
  s.endpoint_slices = {slice};
  return s;
}

// ---------------------------------------------------------------- Maglev table

TEST(Maglev, EmptyInputEmptyTable) { EXPECT_TRUE(maglevTable({}).empty()); }

TEST(Maglev, EachBackendGetsItsShareWithinOne) {
  for (int n : {1, 2, 3, 5, 10}) {
    std::vector<uint32_t> table = maglevTable(names(n));
    ASSERT_EQ(table.size(), size_t{MESHLET_MAGLEV_SIZE});
    std::map<uint32_t, int> counts;
    for (uint32_t slot : table) {
      ASSERT_LT(slot, static_cast<uint32_t>(n));
      ++counts[slot];
    }
    EXPECT_EQ(counts.size(), static_cast<size_t>(n));
    const double share = double{MESHLET_MAGLEV_SIZE} / n;
    for (const auto& [slot, count] : counts) {
      EXPECT_LE(std::abs(count - share), 1.0) << "n=" << n << " slot=" << slot;
    }
  }
}

TEST(Maglev, MoreBackendsThanEntriesStillFillsTheTable) {
  std::vector<std::string> many;
  for (int i = 0; i < 300; ++i)
    many.push_back("198.18." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":80");
  std::vector<uint32_t> table = maglevTable(many);
  ASSERT_EQ(table.size(), size_t{MESHLET_MAGLEV_SIZE});
  std::set<uint32_t> distinct(table.begin(), table.end());
  EXPECT_EQ(distinct.size(), size_t{MESHLET_MAGLEV_SIZE});  // each backend at most one entry
}

TEST(Maglev, DeterministicAndIndependentOfOrderByName) {
  std::vector<std::string> a = names(5);
  std::vector<std::string> b(a.rbegin(), a.rend());
  std::vector<uint32_t> ta = maglevTable(a);
  std::vector<uint32_t> tb = maglevTable(b);
  EXPECT_EQ(ta, maglevTable(a));
  // Entries name the same backends whatever the input order, up to where the round-robin
  // fill breaks ties: most buckets agree.
  int same = 0;
  for (size_t i = 0; i < ta.size(); ++i) same += a[ta[i]] == b[tb[i]];
  EXPECT_GT(same, MESHLET_MAGLEV_SIZE * 8 / 10);
}

TEST(Maglev, RemovingOneOfTenBackendsMovesFewOtherBuckets) {
  const std::vector<std::string> all = names(10);
  const std::vector<uint32_t> before = maglevTable(all);
  for (size_t removed = 0; removed < all.size(); ++removed) {
    std::vector<std::string> rest = all;
    rest.erase(rest.begin() + static_cast<long>(removed));
    const std::vector<uint32_t> after = maglevTable(rest);
    int others = 0;
    int moved = 0;
    for (size_t bucket = 0; bucket < before.size(); ++bucket) {
      if (before[bucket] == removed) continue;  // these must move
      ++others;
      if (all[before[bucket]] != rest[after[bucket]]) ++moved;
    }
    EXPECT_LT(moved, others / 5) << "removed " << all[removed] << ": " << moved << "/" << others;
  }
}

TEST(Maglev, AffinityHashIsTheDocumentedFunction) {
  // FNV-1a 32 over the address bytes, then the MurmurHash3 fmix32 finalizer; values computed
  // independently. The kernel only takes hash % MESHLET_MAGLEV_SIZE, but the agent and the CLI
  // must agree on the function across versions.
  EXPECT_EQ(affinityHash(ip("198.18.0.1")), 0x3bec0c76u);
  EXPECT_EQ(affinityHash(ip("2001:db8::1")), 0xff0fbbefu);
  EXPECT_NE(affinityHash(ip("198.18.0.1")), affinityHash(ip("198.18.0.2")));
  EXPECT_EQ(maglevBucket(affinityHash(ip("198.18.0.1"))), 0x3bec0c76u % MESHLET_MAGLEV_SIZE);
}

// ---------------------------------------------------------------- kernel choice simulated

const meshlet_svc_key kWeb = svcKey("198.18.100.1", 80);

TEST(LbMaglev, ThousandClientsSpreadOverFourBackends) {
  Snapshot s = lbService(2, 2, SessionAffinity::kClientIP);
  auto out = run(s);
  KernelSim k(out.desired);
  std::map<std::string, int> hits;
  for (int i = 0; i < 1000; ++i) {
    auto b = k.pick(kWeb, affinityHash(client(i)), 0);
    ASSERT_TRUE(b);
    ++hits[addrOf(*b)];
  }
  ASSERT_EQ(hits.size(), 4u);
  for (const auto& [addr, n] : hits) {
    EXPECT_GE(n, 150) << addr;
    EXPECT_LE(n, 350) << addr;
  }
}

TEST(LbMaglev, SameClientSameBackendAcrossCallsAndSnapshots) {
  Snapshot s = lbService(1, 4, SessionAffinity::kClientIP);
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "client", "node-a", {"198.18.0.77"})};
  auto first = run(s, {}, {{"shop/client", 99}});
  // The kernel takes the client's hash from the pods map, keyed by its netns cookie.
  const uint32_t hash = first.desired.pods.at(99).affinity_hash;
  KernelSim k1(first.desired);
  auto chosen = k1.pick(kWeb, hash, 1);
  ASSERT_TRUE(chosen);
  for (uint32_t r = 0; r < 50; ++r) {
    auto again = k1.pick(kWeb, hash, r * 7919);
    ASSERT_TRUE(again);
    EXPECT_EQ(addrOf(*again), addrOf(*chosen));
  }
  // A new snapshot (unrelated change, carried ids) keeps the choice.
  s.services.push_back(makeSvc("shop", "api", {"198.18.100.2"}, {port("grpc", 9000)}));
  auto second = run(s, first.ids, {{"shop/client", 99}});
  KernelSim k2(second.desired);
  auto later = k2.pick(kWeb, second.desired.pods.at(99).affinity_hash, 3);
  ASSERT_TRUE(later);
  EXPECT_EQ(addrOf(*later), addrOf(*chosen));
  EXPECT_EQ(later->backend_id, chosen->backend_id);
}

TEST(LbRandom, UniformOverAllReadyBackends) {
  auto out = run(lbService(1, 3));
  KernelSim k(out.desired);
  std::mt19937 rng(7);
  std::map<std::string, int> hits;
  for (int i = 0; i < 4000; ++i) ++hits[addrOf(*k.pick(kWeb, 0, rng()))];
  ASSERT_EQ(hits.size(), 4u);
  for (const auto& [addr, n] : hits) {
    EXPECT_GT(n, 800) << addr;
    EXPECT_LT(n, 1200) << addr;
  }
}

TEST(LbRandom, PreferCloseUsesOnlyLocalBackends) {
  auto out = run(lbService(2, 3, SessionAffinity::kNone, false, true));
  KernelSim k(out.desired);
  std::mt19937 rng(11);
  std::map<std::string, int> hits;
  for (int i = 0; i < 1000; ++i) {
    auto b = k.pick(kWeb, 0, rng());
    ASSERT_TRUE(b);
    EXPECT_NE(b->flags & MESHLET_BACKEND_LOCAL, 0) << addrOf(*b);
    ++hits[addrOf(*b)];
  }
  EXPECT_EQ(hits.size(), 2u);  // both local backends used
}

TEST(LbRandom, PreferCloseFallsBackToAllWithoutLocalBackends) {
  auto out = run(lbService(0, 3, SessionAffinity::kNone, false, true));
  ASSERT_EQ(out.desired.services.at(kWeb).local_count, 0);
  KernelSim k(out.desired);
  std::mt19937 rng(13);
  std::map<std::string, int> hits;
  for (int i = 0; i < 900; ++i) ++hits[addrOf(*k.pick(kWeb, 0, rng()))];
  EXPECT_EQ(hits.size(), 3u);
}

TEST(LbRoundRobin, EqualSharesInSlotOrder) {
  auto out = run(lbService(1, 2, SessionAffinity::kNone, true));
  KernelSim k(out.desired);
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i) order.push_back(addrOf(*k.pick(kWeb, 0, 0)));
  EXPECT_EQ(order, (std::vector<std::string>{"198.18.1.10", "198.18.1.11", "198.18.1.12",
                                             "198.18.1.10", "198.18.1.11", "198.18.1.12"}));
}

TEST(LbRefused, NoReadyBackendRefusesEveryAlgorithm) {
  for (auto affinity : {SessionAffinity::kNone, SessionAffinity::kClientIP}) {
    for (bool rr : {false, true}) {
      Snapshot s = lbService(0, 0, affinity, rr);
      auto out = run(s);
      ASSERT_EQ(out.desired.services.count(kWeb), 1u);
      KernelSim k(out.desired);
      EXPECT_FALSE(k.pick(kWeb, affinityHash(client(1)), 5));
    }
  }
}

}  // namespace
}  // namespace meshlet
