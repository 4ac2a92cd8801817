// Translation of Services and EndpointSlices into frontends, backend slots and LB settings.
#include "agent/translate/translate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "tests/unit/translate/fixture.h"

namespace meshlet {
namespace {

using namespace translate_test;  // NOLINT(build/namespaces): test builders

// ---------------------------------------------------------------- services

TEST(TranslateServices, TargetPortsFromSlicePortNames) {
  Snapshot s;
  s.services = {
      makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80), port("metrics", 9090)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web",
                                 {epPort("metrics", 15090), epPort("http", 8080)},
                                 {{"198.18.0.10"}})};
  auto out = run(s);
  const DesiredDatapath& d = out.desired;
  ASSERT_EQ(d.services.size(), 2u);
  auto http = findSvc(d, svcKey("198.18.100.1", 80));
  auto metrics = findSvc(d, svcKey("198.18.100.1", 9090));
  ASSERT_TRUE(http && metrics);
  EXPECT_NE(http->svc_id, metrics->svc_id);
  EXPECT_EQ(slots(d, *http), (std::vector<Slot>{{"198.18.0.10", 8080, true}}));
  EXPECT_EQ(slots(d, *metrics), (std::vector<Slot>{{"198.18.0.10", 15090, true}}));
  EXPECT_EQ(d.service_info.at(http->svc_id).port_name, "http");
  EXPECT_EQ(d.service_info.at(http->svc_id).port, 80);
  EXPECT_EQ(d.service_info.at(metrics->svc_id).port_name, "metrics");
}

TEST(TranslateServices, SingleUnnamedPortMatchesUnnamedSlicePort) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("", 80)})};
  s.endpoint_slices = {
      makeSlice("shop", "web-x1", "web", {epPort("", 8080)}, {{"198.18.0.10"}, {"198.18.0.11"}})};
  auto out = run(s);
  auto v = findSvc(out.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count, 2);
  EXPECT_EQ(slots(out.desired, *v),
            (std::vector<Slot>{{"198.18.0.10", 8080, true}, {"198.18.0.11", 8080, true}}));
}

TEST(TranslateServices, SlicesOfOtherServicesFamiliesAndPortsIgnored) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {
      makeSlice("shop", "api-x1", "api", {epPort("http", 8080)}, {{"198.18.0.20"}}),
      makeSlice("other", "web-x1", "web", {epPort("http", 8080)}, {{"198.18.0.21"}}),
      makeSlice("shop", "web-v6", "web", {epPort("http", 8080)}, {{"2001:db8::22"}}, IpFamily::kV6),
      makeSlice("shop", "web-grpc", "web", {epPort("grpc", 8080)}, {{"198.18.0.23"}}),
      makeSlice("shop", "web-udp", "web", {epPort("http", 8080, Protocol::kUDP)},
                {{"198.18.0.24"}}),
      makeSlice("shop", "web-ok", "web", {epPort("http", 8080)}, {{"198.18.0.25"}}),
  };
  auto out = run(s);
  auto v = findSvc(out.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(slots(out.desired, *v), (std::vector<Slot>{{"198.18.0.25", 8080, true}}));
  EXPECT_EQ(out.desired.backend_info.size(), 1u);
}

TEST(TranslateServices, ReadyOnlySlotsTerminatingExplained) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {makeSlice(
      "shop", "web-x1", "web", {epPort("http", 8080)},
      {{"198.18.0.10", kNode, true, true, false, "web-0"},
       {"198.18.0.11", kNode, false, true, true, "web-1"},       // terminating, still serving
       {"198.18.0.12", "node-b", false, false, false, "web-2"}}  // not ready
      )};
  auto out = run(s);
  const DesiredDatapath& d = out.desired;
  auto v = findSvc(d, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count, 1);
  EXPECT_EQ(backendsOfService(d, v->svc_id), 1u);
  EXPECT_EQ(d.backend_info.size(), 3u);

  const BackendInfo* ready = findBackend(d, v->svc_id, "198.18.0.10", 8080);
  const BackendInfo* term = findBackend(d, v->svc_id, "198.18.0.11", 8080);
  const BackendInfo* notready = findBackend(d, v->svc_id, "198.18.0.12", 8080);
  ASSERT_TRUE(ready && term && notready);
  EXPECT_EQ(ready->slot, 0u);
  EXPECT_EQ(d.name(ready->pod), "shop/web-0");
  EXPECT_TRUE(ready->local);
  EXPECT_EQ(d.backends().at({v->svc_id, 0}).backend_id,
            findBackendEntry(d, v->svc_id, "198.18.0.10", 8080)->first);
  EXPECT_EQ(term->slot, MESHLET_NO_ID);
  EXPECT_TRUE(term->terminating);
  EXPECT_TRUE(term->serving);
  EXPECT_FALSE(term->ready);
  EXPECT_EQ(notready->slot, MESHLET_NO_ID);
  EXPECT_FALSE(notready->local);
  EXPECT_EQ(d.name(notready->node), "node-b");
}

TEST(TranslateServices, LocalBackendsFirstSortedByAddress) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {
      makeSlice("shop", "web-x1", "web", {epPort("http", 8080)},
                {{"198.18.1.2", "node-b"}, {"198.18.0.9", kNode}, {"198.18.1.1", "node-c"}}),
      makeSlice("shop", "web-x2", "web", {epPort("http", 8080)},
                {{"198.18.0.3", kNode}, {"198.18.0.200", "node-b"}})};
  auto out = run(s);
  auto v = findSvc(out.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count, 5);
  EXPECT_EQ(v->local_count, 2);
  EXPECT_EQ(slots(out.desired, *v), (std::vector<Slot>{{"198.18.0.3", 8080, true},
                                                       {"198.18.0.9", 8080, true},
                                                       {"198.18.0.200", 8080, false},
                                                       {"198.18.1.1", 8080, false},
                                                       {"198.18.1.2", 8080, false}}));
  for (const auto& [id, b] : out.desired.backend_info) {
    ASSERT_NE(b.slot, MESHLET_NO_ID);
    EXPECT_EQ(out.desired.backends().at({v->svc_id, b.slot}).backend_id, id);
  }
}

TEST(TranslateServices, SameAddressInTwoSlicesOnce) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {makeSlice("shop", "web-a", "web", {epPort("http", 8080)},
                                 {{"198.18.0.10", kNode, false, false, false}, {"198.18.0.11"}}),
                       makeSlice("shop", "web-b", "web", {epPort("http", 8080)},
                                 {{"198.18.0.10", kNode, true}, {"198.18.0.11"}})};
  auto out = run(s);
  auto v = findSvc(out.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count, 2);  // the ready copy of .10 wins
  EXPECT_EQ(out.desired.backend_info.size(), 2u);
  EXPECT_EQ(out.ids.backend.size(), 2u);
}

TEST(TranslateServices, NoReadyBackendStillAServiceWithCountZero) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)}),
                makeSvc("shop", "db", {"198.18.100.2"}, {port("sql", 5432)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web", {epPort("http", 8080)},
                                 {{"198.18.0.10", kNode, false, true, true}})};
  auto out = run(s);
  auto web = findSvc(out.desired, svcKey("198.18.100.1", 80));
  auto db = findSvc(out.desired, svcKey("198.18.100.2", 5432));
  ASSERT_TRUE(web && db);
  EXPECT_EQ(web->count, 0);
  EXPECT_EQ(web->local_count, 0);
  EXPECT_EQ(db->count, 0);
  EXPECT_TRUE(out.desired.backends().empty());
  EXPECT_EQ(out.desired.service_info.size(), 2u);
}

TEST(TranslateServices, HeadlessProducesNothing) {
  Snapshot s;
  s.services = {makeSvc("shop", "db", {}, {port("sql", 5432)})};
  s.endpoint_slices = {makeSlice("shop", "db-x1", "db", {epPort("sql", 5432)}, {{"198.18.0.10"}})};
  auto out = run(s);
  EXPECT_TRUE(out.desired.services.empty());
  EXPECT_TRUE(out.desired.backends().empty());
  EXPECT_TRUE(out.desired.service_info.empty());
  EXPECT_TRUE(out.desired.backend_info.empty());
  EXPECT_TRUE(out.ids.svc.empty());
  EXPECT_TRUE(out.ids.backend.empty());
}

TEST(TranslateServices, DualStackFrontendsWithTheirFamilysBackends) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1", "2001:db8:100::1"}, {port("http", 80)})};
  s.endpoint_slices = {
      makeSlice("shop", "web-v4", "web", {epPort("http", 8080)}, {{"198.18.0.10"}}),
      makeSlice("shop", "web-v6", "web", {epPort("http", 8080)},
                {{"2001:db8::10"}, {"2001:db8::11", "node-b"}}, IpFamily::kV6)};
  auto out = run(s);
  const DesiredDatapath& d = out.desired;
  auto v4 = findSvc(d, svcKey("198.18.100.1", 80));
  auto v6 = findSvc(d, svcKey("2001:db8:100::1", 80));
  ASSERT_TRUE(v4 && v6);
  EXPECT_NE(v4->svc_id, v6->svc_id);
  EXPECT_EQ(slots(d, *v4), (std::vector<Slot>{{"198.18.0.10", 8080, true}}));
  EXPECT_EQ(slots(d, *v6),
            (std::vector<Slot>{{"2001:db8::10", 8080, true}, {"2001:db8::11", 8080, false}}));
  EXPECT_EQ(d.backends().at({v6->svc_id, 0}).family, MESHLET_AF_INET6);
  EXPECT_EQ(d.backends().at({v4->svc_id, 0}).family, MESHLET_AF_INET);
  EXPECT_EQ(v6->local_count, 1);
  EXPECT_EQ(d.service_info.at(v6->svc_id).cluster_ip, ip("2001:db8:100::1"));
  EXPECT_EQ(out.ids.svc.count("shop/web/2001:db8:100::1/80/TCP"), 1u);
  EXPECT_EQ(out.ids.svc.count("shop/web/198.18.100.1/80/TCP"), 1u);
}

TEST(TranslateServices, UdpAndTcpOnTheSamePort) {
  Snapshot s;
  s.services = {makeSvc("kube-system", "dns", {"198.18.100.10"},
                        {port("dns", 53, Protocol::kUDP), port("dns-tcp", 53, Protocol::kTCP)})};
  s.endpoint_slices = {
      makeSlice("kube-system", "dns-x1", "dns",
                {epPort("dns", 5353, Protocol::kUDP), epPort("dns-tcp", 5354, Protocol::kTCP)},
                {{"198.18.0.53"}})};
  auto out = run(s);
  auto udp = findSvc(out.desired, svcKey("198.18.100.10", 53, Protocol::kUDP));
  auto tcp = findSvc(out.desired, svcKey("198.18.100.10", 53, Protocol::kTCP));
  ASSERT_TRUE(udp && tcp);
  EXPECT_EQ(svcKey("198.18.100.10", 53, Protocol::kUDP).proto, 17);
  EXPECT_EQ(slots(out.desired, *udp), (std::vector<Slot>{{"198.18.0.53", 5353, true}}));
  EXPECT_EQ(slots(out.desired, *tcp), (std::vector<Slot>{{"198.18.0.53", 5354, true}}));
  EXPECT_EQ(out.desired.service_info.at(udp->svc_id).protocol, Protocol::kUDP);
}

// A port that declares HTTP takes the L7 path: the kernel sends its connects to the agent.
TEST(TranslateServices, HttpPortsAreMarkedForTheL7Path) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"},
                        {port("http-web", 80), port("tcp", 81), port("http-udp", 82, Protocol::kUDP)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web",
                                 {epPort("http-web", 8080), epPort("tcp", 8081),
                                  epPort("http-udp", 8082, Protocol::kUDP)},
                                 {{"198.18.0.10"}})};
  auto out = run(s);
  auto http = findSvc(out.desired, svcKey("198.18.100.1", 80));
  auto tcp = findSvc(out.desired, svcKey("198.18.100.1", 81));
  auto udp = findSvc(out.desired, svcKey("198.18.100.1", 82, Protocol::kUDP));
  ASSERT_TRUE(http && tcp && udp);
  EXPECT_EQ(http->flags, MESHLET_SVC_L7);
  EXPECT_TRUE(out.desired.service_info.at(http->svc_id).l7);
  EXPECT_EQ(tcp->flags, 0);
  EXPECT_FALSE(out.desired.service_info.at(tcp->svc_id).l7);
  EXPECT_EQ(udp->flags, 0);  // UDP never takes the L7 path

  // appProtocol on a port named otherwise counts too.
  s.services.mut()[0].ports[1].app_protocol = "http";
  out = run(s);
  tcp = findSvc(out.desired, svcKey("198.18.100.1", 81));
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->flags, MESHLET_SVC_L7);
}

struct LbCase {
  const char* name;
  SessionAffinity affinity;
  bool round_robin;
  bool prefer_close;
  uint8_t want_algo;
  const char* want_lb;
  uint8_t want_flags;
};

void PrintTo(const LbCase& c, std::ostream* os) { *os << c.name; }

class TranslateLbAlgo : public testing::TestWithParam<LbCase> {};

TEST_P(TranslateLbAlgo, FromServiceSpec) {
  const LbCase& c = GetParam();
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("tcp", 80)})};
  s.services.mut()[0].session_affinity = c.affinity;
  s.services.mut()[0].round_robin = c.round_robin;
  s.services.mut()[0].prefer_close = c.prefer_close;
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web", {epPort("tcp", 8080)},
                                 {{"198.18.0.10"}, {"198.18.1.10", "node-b"}})};
  auto out = run(s);
  auto v = findSvc(out.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->lb_algo, c.want_algo);
  EXPECT_EQ(v->flags, c.want_flags);
  EXPECT_EQ(v->pad, 0);
  EXPECT_EQ(out.desired.service_info.at(v->svc_id).lb, c.want_lb);
  EXPECT_EQ(out.desired.service_info.at(v->svc_id).prefer_close, c.prefer_close);
  if (c.want_algo == MESHLET_LB_MAGLEV) {
    ASSERT_EQ(out.desired.maglev.size(), size_t{MESHLET_MAGLEV_SIZE});
    for (const auto& [k, slot] : out.desired.maglev) {
      EXPECT_EQ(k.svc_id, v->svc_id);
      EXPECT_LT(slot, v->count);
    }
  } else {
    EXPECT_TRUE(out.desired.maglev.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TranslateLbAlgo,
    testing::Values(LbCase{"Random", SessionAffinity::kNone, false, false, MESHLET_LB_RANDOM,
                           "random", 0},
                    LbCase{"RoundRobin", SessionAffinity::kNone, true, false,
                           MESHLET_LB_ROUND_ROBIN, "round-robin", 0},
                    LbCase{"ClientIp", SessionAffinity::kClientIP, false, false, MESHLET_LB_MAGLEV,
                           "client-ip", 0},
                    LbCase{"ClientIpBeatsRoundRobin", SessionAffinity::kClientIP, true, false,
                           MESHLET_LB_MAGLEV, "client-ip", 0},
                    LbCase{"PreferClose", SessionAffinity::kNone, false, true, MESHLET_LB_RANDOM,
                           "random", MESHLET_SVC_PREFER_CLOSE}),
    [](const testing::TestParamInfo<LbCase>& info) { return info.param.name; });

TEST(TranslateServices, MaglevServiceWithoutReadyBackendsHasNoTable) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.services.mut()[0].session_affinity = SessionAffinity::kClientIP;
  auto out = run(s);
  auto v = findSvc(out.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count, 0);
  EXPECT_TRUE(out.desired.maglev.empty());
}

TEST(TranslateServices, VipClaimedTwiceFirstServiceWins) {
  Snapshot s;
  s.services = {makeSvc("shop", "web2", {"198.18.100.1"}, {port("http", 80)}),
                makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  auto out = run(s);
  ASSERT_EQ(out.desired.services.size(), 1u);
  EXPECT_EQ(out.desired.service_info.begin()->second.name, "web");
  EXPECT_EQ(out.ids.svc.size(), 1u);
}

// ---------------------------------------------------------------- the backends map

TEST(TranslateBackends, BackendsAreTheSlottedBackendInfo) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web", {epPort("http", 8080)},
                                 {{"198.18.0.10"}, {"198.18.0.11"}, {"198.18.0.12"}})};
  s.endpoint_slices.mut()[0].endpoints[1].ready = false;
  const DesiredDatapath d = run(s).desired;
  ASSERT_EQ(d.backend_info.size(), 3u);
  const BackendEntries backends = d.backends();
  EXPECT_EQ(backends.size(), 2u);
  EXPECT_EQ(d.backendCount(), 2u);
  for (const auto& [id, b] : d.backend_info) {
    if (b.slot == MESHLET_NO_ID) continue;
    const meshlet_backend_value want = backendValue(id, b);
    EXPECT_EQ(std::memcmp(&backends.at({b.svc_id, b.slot}), &want, sizeof(want)), 0);
  }
}

// A backends map read back from the kernel after a change failed half-way can hold what no
// translation makes: one backend id in two slots, flags this agent never writes. setBackends
// keeps every entry as it is.
TEST(TranslateBackends, SetBackendsKeepsEveryEntryExactly) {
  auto value = [](const char* addr, uint16_t port, uint8_t flags, uint32_t id) {
    meshlet_backend_value v{};
    auto w = ip(addr).words();
    std::copy(w.begin(), w.end(), v.addr);
    v.port = port;
    v.family = ip(addr).isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6;
    v.flags = flags;
    v.backend_id = id;
    return v;
  };
  BackendEntries entries;
  entries[{1, 0}] = value("198.18.0.10", 8080, MESHLET_BACKEND_LOCAL, 7);
  entries[{1, 1}] = value("198.18.0.11", 8080, 0, 8);
  entries[{1, 3}] = value("198.18.0.10", 8080, MESHLET_BACKEND_LOCAL, 7);  // id 7 again
  entries[{2, 0}] = value("fd00::1", 80, MESHLET_BACKEND_TUNNEL, 9);
  entries[{2, 1}] = value("198.18.0.12", 80, MESHLET_BACKEND_LOCAL | MESHLET_BACKEND_TUNNEL, 10);
  DesiredDatapath d;
  d.setBackends(entries);
  EXPECT_EQ(d.backend_info.size(), 3u);
  EXPECT_EQ(d.stray_backends.size(), 2u);
  EXPECT_EQ(d.backendCount(), entries.size());
  const BackendEntries back = d.backends();
  ASSERT_EQ(back.size(), entries.size());
  EXPECT_TRUE(
      std::equal(back.begin(), back.end(), entries.begin(), entries.end(),
                 [](const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }));
  EXPECT_TRUE(d.backend_info.at(9).tunnel);
  EXPECT_TRUE(d.backend_info.at(7).local);
}

}  // namespace
}  // namespace meshlet
