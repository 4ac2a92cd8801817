// L4 outlier detection: the ejection state machine (consecutive failures, success resets,
// growing ejection times, maxEjectionPercent, never the last ready backend, minHealthPercent)
// and how translation leaves ejected backends out of a service's slots.
#include "agent/outlier/outlier.h"

#include <gtest/gtest.h>

#include <cstring>
#include <tuple>

#include "tests/unit/translate/fixture.h"

namespace meshlet {
namespace {

using namespace translate_test;  // NOLINT

constexpr const char* kVip = "198.19.0.10";

// Service shop/web (TCP port "tcp" 80) with `n` ready backends 198.18.1.10.. on this node, and
// when `od` a DestinationRule with that outlierDetection.
Snapshot webService(int n, std::optional<OutlierDetection> od, const char* port_name = "tcp") {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {kVip}, {port(port_name, 80)})};
  std::vector<Ep> eps;
  static const char* kAddrs[] = {"198.18.1.10", "198.18.1.11", "198.18.1.12", "198.18.1.13",
                                 "198.18.1.14"};
  for (int i = 0; i < n; ++i) eps.push_back(Ep{kAddrs[i]});
  s.endpoint_slices = {makeSlice("shop", "web-1", "web", {epPort(port_name, 8080)}, eps)};
  if (od) {
    DestinationRule dr;
    dr.meta.ns = "shop";
    dr.meta.name = "web";
    dr.host = "web";
    dr.traffic_policy = TrafficPolicy{};
    dr.traffic_policy->outlier_detection = od;
    s.destination_rules = {dr};
  }
  return s;
}

OutlierDetection od(int consecutive_5xx, int64_t base_ms, int max_percent) {
  OutlierDetection o;
  o.consecutive_5xx_errors = consecutive_5xx;
  o.base_ejection_time_ms = base_ms;
  o.max_ejection_percent = max_percent;
  o.interval_ms = 1000;
  return o;
}

TranslateOutput translateWith(const Snapshot& s, const IdTable& prev = {},
                              const std::set<BackendIdKey>* ejected = nullptr) {
  TranslateInput in;
  in.snapshot = &s;
  in.node_name = kNode;
  in.ejected = ejected;
  return translate(in, prev);
}

uint32_t svcId(const DesiredDatapath& d) { return findSvc(d, svcKey(kVip, 80))->svc_id; }

uint32_t backendId(const DesiredDatapath& d, const char* addr) {
  const auto* b = findBackendEntry(d, svcId(d), addr, 8080);
  EXPECT_NE(b, nullptr) << addr;
  return b ? b->first : MESHLET_NO_ID;
}

BackendIdKey keyOf(const DesiredDatapath& d, const char* addr) {
  return backendIdKey(svcId(d), ip(addr), 8080);
}

// The tracker over a translated service; fails `addr` `n` times at `now`.
struct Fixture {
  explicit Fixture(int backends, std::optional<OutlierDetection> o) {
    snap = webService(backends, o);
    out = translateWith(snap);
    tracker.configure(out.desired, 0);
  }
  void fail(const char* addr, int n, int64_t now) {
    for (int i = 0; i < n; ++i) tracker.record(svc(), backendId(out.desired, addr), true, now);
  }
  void succeed(const char* addr, int64_t now) {
    tracker.record(svc(), backendId(out.desired, addr), false, now);
  }
  bool ejected(const char* addr) const {
    return tracker.ejected().count(keyOf(out.desired, addr)) != 0;
  }
  uint32_t svc() const { return svcId(out.desired); }
  Snapshot snap;
  TranslateOutput out;
  OutlierTracker tracker;
};

TEST(OutlierTracker, ConsecutiveFailuresEjectAndTheBackendReturnsAfterTheEjectionTime) {
  Fixture f(3, od(2, 2000, 100));
  f.fail("198.18.1.10", 1, 100);
  EXPECT_FALSE(f.ejected("198.18.1.10"));
  EXPECT_TRUE(f.tracker.takeChanged().empty());
  f.fail("198.18.1.10", 1, 200);
  EXPECT_TRUE(f.ejected("198.18.1.10"));
  EXPECT_EQ(f.tracker.takeChanged(), std::set<uint32_t>{f.svc()});
  EXPECT_EQ(f.tracker.ejectionsTotal().at(f.svc()), 1u);
  f.tracker.tick(2199);
  EXPECT_TRUE(f.ejected("198.18.1.10"));
  f.tracker.tick(2200);
  EXPECT_FALSE(f.ejected("198.18.1.10"));
  EXPECT_EQ(f.tracker.takeChanged(), std::set<uint32_t>{f.svc()});
}

TEST(OutlierTracker, ASuccessResetsTheCount) {
  Fixture f(3, od(3, 2000, 100));
  f.fail("198.18.1.10", 2, 100);
  f.succeed("198.18.1.10", 150);
  f.fail("198.18.1.10", 2, 200);
  EXPECT_FALSE(f.ejected("198.18.1.10"));
  f.fail("198.18.1.10", 1, 300);
  EXPECT_TRUE(f.ejected("198.18.1.10"));
}

TEST(OutlierTracker, GatewayErrorsAloneCanEject) {
  OutlierDetection o;
  o.consecutive_5xx_errors = 0;  // off
  o.consecutive_gateway_errors = 2;
  o.max_ejection_percent = 100;
  Fixture f(2, o);
  f.fail("198.18.1.11", 2, 10);
  EXPECT_TRUE(f.ejected("198.18.1.11"));
}

TEST(OutlierTracker, EjectionTimeGrowsWithRepeatedEjectionsAndDecays) {
  Fixture f(3, od(1, 1000, 100));  // interval 1000 ms
  f.fail("198.18.1.10", 1, 0);     // ejection 1: 1 s
  f.tracker.tick(1000);
  EXPECT_FALSE(f.ejected("198.18.1.10"));
  f.fail("198.18.1.10", 1, 1100);  // ejection 2: 2 s
  f.tracker.tick(3099);
  EXPECT_TRUE(f.ejected("198.18.1.10"));
  f.tracker.tick(3100);
  EXPECT_FALSE(f.ejected("198.18.1.10"));
  f.fail("198.18.1.10", 1, 3200);  // ejection 3: 3 s
  f.tracker.tick(6199);
  EXPECT_TRUE(f.ejected("198.18.1.10"));
  f.tracker.tick(6200);
  // Back for two whole intervals without failing: the count goes down by two (3 -> 1).
  f.tracker.tick(7200);
  f.tracker.tick(8200);
  f.fail("198.18.1.10", 1, 8300);  // ejection 2 again: 2 s
  f.tracker.tick(10299);
  EXPECT_TRUE(f.ejected("198.18.1.10"));
  f.tracker.tick(10300);
  EXPECT_FALSE(f.ejected("198.18.1.10"));
  for (const auto& st : f.tracker.states()) {
    if (st.backend_id == backendId(f.out.desired, "198.18.1.10")) {
      EXPECT_EQ(st.ejections, 2);
    }
  }
}

TEST(OutlierTracker, EjectionTimeIsCappedAtFiveMinutes) {
  Fixture f(3, od(1, 200000, 100));
  f.fail("198.18.1.10", 1, 0);
  f.tracker.tick(200000);
  f.fail("198.18.1.10", 1, 200000);  // 2 x 200 s, capped at 300 s
  f.tracker.tick(499999);
  EXPECT_TRUE(f.ejected("198.18.1.10"));
  f.tracker.tick(500000);
  EXPECT_FALSE(f.ejected("198.18.1.10"));
}

TEST(OutlierTracker, MaxEjectionPercentCapsHowManyAreOut) {
  Fixture f(4, od(1, 10000, 50));
  f.fail("198.18.1.10", 1, 0);
  f.fail("198.18.1.11", 1, 0);
  f.fail("198.18.1.12", 1, 0);  // a third would be 75%
  EXPECT_TRUE(f.ejected("198.18.1.10"));
  EXPECT_TRUE(f.ejected("198.18.1.11"));
  EXPECT_FALSE(f.ejected("198.18.1.12"));
  // Istio's default 10%: with 4 backends not even one may go (Envoy's (ejected+1)/hosts rule).
  OutlierDetection dflt;
  dflt.consecutive_5xx_errors = 1;
  Fixture g(4, dflt);
  g.fail("198.18.1.10", 5, 0);
  EXPECT_TRUE(g.tracker.ejected().empty());
}

TEST(OutlierTracker, NeverEjectsTheLastReadyBackend) {
  Fixture f(2, od(1, 10000, 100));
  f.fail("198.18.1.10", 1, 0);
  f.fail("198.18.1.11", 3, 0);
  EXPECT_TRUE(f.ejected("198.18.1.10"));
  EXPECT_FALSE(f.ejected("198.18.1.11"));
  Fixture one(1, od(1, 10000, 100));
  one.fail("198.18.1.10", 3, 0);
  EXPECT_TRUE(one.tracker.ejected().empty());
}

TEST(OutlierTracker, BelowMinHealthPercentNothingIsLeftOut) {
  OutlierDetection o = od(1, 10000, 100);
  o.min_health_percent = 70;
  Fixture f(3, o);
  f.fail("198.18.1.10", 1, 0);  // 2 of 3 healthy: 66% < 70%
  EXPECT_TRUE(f.tracker.ejected().empty());
  bool listed = false;
  for (const auto& st : f.tracker.states()) listed |= st.ejected_until_ms != 0;
  EXPECT_TRUE(listed) << "the ejection is kept, only not applied";
}

TEST(OutlierTracker, AServiceWithoutOutlierDetectionNeverEjects) {
  Fixture f(3, std::nullopt);
  f.fail("198.18.1.10", 100, 0);
  EXPECT_TRUE(f.tracker.ejected().empty());
  EXPECT_TRUE(f.out.desired.outlier.empty());
  // An HTTP port takes the L7 path (the proxy does its outlier detection), not this one.
  Snapshot http = webService(3, od(1, 1000, 100), "http");
  EXPECT_TRUE(translateWith(http).desired.outlier.empty());
}

TEST(OutlierTracker, ConnectsStartedBeforeTheEjectionDoNotCount) {
  Fixture f(3, od(2, 1000, 100));
  f.fail("198.18.1.10", 2, 0);
  f.fail("198.18.1.10", 5, 10);
  f.tracker.tick(1000);
  EXPECT_FALSE(f.ejected("198.18.1.10"));
  f.fail("198.18.1.10", 1, 1100);
  EXPECT_FALSE(f.ejected("198.18.1.10")) << "the count started again at the ejection";
}

TEST(OutlierTracker, ReconfigureKeepsTheStateOfBackendsThatStay) {
  Fixture f(3, od(2, 10000, 100));
  f.fail("198.18.1.10", 2, 0);
  ASSERT_TRUE(f.ejected("198.18.1.10"));
  // Same service, a backend more: the ejection stays.
  Snapshot more = webService(4, od(2, 10000, 100));
  TranslateOutput again = translateWith(more, f.out.ids, &f.tracker.ejected());
  f.tracker.configure(again.desired, 10);
  EXPECT_TRUE(f.ejected("198.18.1.10"));
  // outlierDetection removed: nothing is ejected any more.
  Snapshot none = webService(4, std::nullopt);
  TranslateOutput gone = translateWith(none, again.ids, &f.tracker.ejected());
  f.tracker.configure(gone.desired, 20);
  EXPECT_TRUE(f.tracker.ejected().empty());
  EXPECT_EQ(f.tracker.takeChanged().count(f.svc()), 1u);
}

// ---- translation ----

TEST(OutlierTranslate, EjectedBackendsLeaveTheSlotsOthersKeepTheirs) {
  Snapshot s = webService(3, od(2, 1000, 100));
  TranslateOutput first = translateWith(s);
  const meshlet_svc_value v = *findSvc(first.desired, svcKey(kVip, 80));
  ASSERT_EQ(v.count, 3);
  ASSERT_EQ(first.desired.outlier.count(v.svc_id), 1u);
  std::set<BackendIdKey> ejected = {keyOf(first.desired, "198.18.1.11")};
  TranslateOutput second = translateWith(s, first.ids, &ejected);
  const meshlet_svc_value v2 = *findSvc(second.desired, svcKey(kVip, 80));
  EXPECT_EQ(v2.count, 2);
  EXPECT_EQ(v2.local_count, 2);
  EXPECT_EQ(slots(second.desired, v2),
            (std::vector<Slot>{{"198.18.1.10", 8080, true}, {"198.18.1.12", 8080, true}}));
  const BackendInfo* b = findBackend(second.desired, v2.svc_id, "198.18.1.11", 8080);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(b->ejected);
  EXPECT_TRUE(b->ready);
  EXPECT_EQ(b->slot, MESHLET_NO_ID);
  // The first backend kept slot 0; the last moved into the freed slot 1.
  EXPECT_EQ(findBackend(second.desired, v2.svc_id, "198.18.1.10", 8080)->slot, 0u);
}

TEST(OutlierTranslate, EveryReadyBackendEjectedMeansEveryOneStays) {
  Snapshot s = webService(2, od(2, 1000, 100));
  TranslateOutput first = translateWith(s);
  std::set<BackendIdKey> ejected = {keyOf(first.desired, "198.18.1.10"),
                                    keyOf(first.desired, "198.18.1.11")};
  TranslateOutput second = translateWith(s, first.ids, &ejected);
  EXPECT_EQ(findSvc(second.desired, svcKey(kVip, 80))->count, 2);
}

TEST(OutlierTranslate, EjectionsApplyOnlyToServicesWithOutlierDetection) {
  Snapshot s = webService(3, std::nullopt);
  TranslateOutput first = translateWith(s);
  std::set<BackendIdKey> ejected = {keyOf(first.desired, "198.18.1.11")};
  TranslateOutput second = translateWith(s, first.ids, &ejected);
  EXPECT_EQ(findSvc(second.desired, svcKey(kVip, 80))->count, 3);
}

TEST(OutlierTranslate, ReslotMatchesAFullTranslation) {
  for (SessionAffinity affinity : {SessionAffinity::kNone, SessionAffinity::kClientIP}) {
    Snapshot s = webService(5, od(2, 1000, 100));
    s.services.mut()[0].session_affinity = affinity;
    TranslateOutput first = translateWith(s);
    std::set<BackendIdKey> ejected = {keyOf(first.desired, "198.18.1.10"),
                                      keyOf(first.desired, "198.18.1.13")};
    TranslateOutput full = translateWith(s, first.ids, &ejected);
    DesiredDatapath patched = first.desired;
    IdTable ids = first.ids;
    reslotServices(patched, ids, {svcId(first.desired)}, ejected);
    const BackendEntries patched_backends = patched.backends();
    const BackendEntries full_backends = full.desired.backends();
    EXPECT_TRUE(std::equal(patched_backends.begin(), patched_backends.end(), full_backends.begin(),
                           full_backends.end(), [](const auto& a, const auto& b) {
                             return std::memcmp(&a, &b, sizeof(a)) == 0;
                           }));
    auto flat = [](const DesiredDatapath& d) {
      std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> out;
      for (const auto& [k, slot] : d.maglev) out.emplace_back(k.svc_id, k.bucket, slot);
      return out;
    };
    EXPECT_EQ(flat(patched), flat(full.desired));
    if (affinity == SessionAffinity::kClientIP) {
      EXPECT_FALSE(flat(patched).empty());
    }
    EXPECT_EQ(findSvc(patched, svcKey(kVip, 80))->count, 3);
    EXPECT_EQ(ids.slot, full.ids.slot);
    // And back: nothing ejected gives the first slots' set again (each backend has one).
    reslotServices(patched, ids, {svcId(first.desired)}, {});
    EXPECT_EQ(findSvc(patched, svcKey(kVip, 80))->count, 5);
    EXPECT_EQ(patched.backendCount(), first.desired.backendCount());
  }
}

// ---- outcomes from the kernel's connection records ----

TEST(OutlierOutcomes, EachConnectCountsOnceInTimeOrder) {
  Snapshot s = webService(2, od(2, 1000, 100));
  TranslateOutput t = translateWith(s);
  const uint32_t svc = svcId(t.desired);
  const uint32_t b0 = backendId(t.desired, "198.18.1.10");
  auto entry = [&](uint16_t lport, uint32_t backend, uint8_t flags, uint64_t start) {
    ConnEntry e;
    e.key.family = MESHLET_AF_INET;
    e.key.lport = lport;
    e.value.svc_id = svc;
    e.value.backend_id = backend;
    e.value.path = MESHLET_PATH_BALANCED;
    e.value.flags = MESHLET_CONN_ACTIVE | flags;
    e.value.start_ns = e.value.end_ns = start;
    return e;
  };
  std::vector<ConnEntry> conns = {
      entry(1, b0, MESHLET_CONN_FAILED | MESHLET_CONN_CLOSED, 30),
      entry(2, b0, 0, 10),  // established, live
      entry(3, b0, 0, 20),
  };
  conns[2].value.flags &= ~MESHLET_CONN_ACTIVE;  // the server side: not an outcome
  SeenConns seen;
  auto out = connOutcomes(conns, t.desired, seen);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[0].failed);
  EXPECT_EQ(out[0].at_ns, 10u);
  EXPECT_TRUE(out[1].failed);
  // Next pass: the live connection is not counted again; a new one on a reused port is.
  conns = {entry(2, b0, 0, 10), entry(1, b0, 0, 40)};
  out = connOutcomes(conns, t.desired, seen);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at_ns, 40u);
  // A service without outlier detection yields nothing.
  TranslateOutput plain = translateWith(webService(2, std::nullopt));
  SeenConns seen2;
  EXPECT_TRUE(connOutcomes(conns, plain.desired, seen2).empty());
}

}  // namespace
}  // namespace meshlet
