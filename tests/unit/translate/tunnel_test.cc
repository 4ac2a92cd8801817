// Translation for the tunnel path: enrolled pods on other nodes become remote mesh IPs, and
// ready backends that are such pods are flagged MESHLET_BACKEND_TUNNEL.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/translate/translate.h"
#include "tests/unit/translate/fixture.h"

namespace meshlet {
namespace {

using namespace translate_test;  // NOLINT(build/namespaces): test builders

meshlet_ip_key remoteKey(const char* addr) {
  IpAddr a = ip(addr);
  meshlet_ip_key k{};
  auto w = a.words();
  std::copy(w.begin(), w.end(), k.addr);
  k.family = a.isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6;
  return k;
}

std::optional<uint32_t> remoteNode(const DesiredDatapath& d, const char* addr) {
  auto it = d.remote_ips.find(remoteKey(addr));
  if (it == d.remote_ips.end()) return std::nullopt;
  return it->second.node_id;
}

// The remote IPs as text, to compare whole sets.
std::vector<std::string> remoteIps(const DesiredDatapath& d) {
  std::vector<std::string> out;
  for (const auto& [k, v] : d.remote_ips)
    out.push_back(IpAddr::fromWords(k.addr, k.family).toString());
  std::sort(out.begin(), out.end());
  return out;
}

// The backend map value (slot) of a ready backend of a service.
std::optional<meshlet_backend_value> slotOf(const DesiredDatapath& d, uint32_t svc_id,
                                            const char* addr, int p) {
  for (const auto& [k, v] : d.backends()) {
    if (k.svc_id == svc_id && IpAddr::fromWords(v.addr, v.family) == ip(addr) && v.port == p) {
      return v;
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- remote pods

TEST(TunnelTranslate, RemoteEnrolledPodsAreRemoteIpsWithTheirNode) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "web-0", kNode, {"198.18.0.10"}),
            makePod("shop", "web-1", "node-b", {"198.18.1.10", "2001:2:1::10"}),
            makePod("shop", "web-2", "node-c", {"198.18.2.10"}),
            makePod("shop", "web-3", "node-b", {"198.18.1.11"})};
  auto out = run(s, {}, {{"shop/web-0", 10}});
  const DesiredDatapath& d = out.desired;
  EXPECT_EQ(remoteIps(d), (std::vector<std::string>{"198.18.1.10", "198.18.1.11", "198.18.2.10",
                                                    "2001:2:1::10"}));
  ASSERT_EQ(d.remote_pods.size(), 4u);

  auto b1 = remoteNode(d, "198.18.1.10");
  auto b1v6 = remoteNode(d, "2001:2:1::10");
  auto b3 = remoteNode(d, "198.18.1.11");
  auto c = remoteNode(d, "198.18.2.10");
  ASSERT_TRUE(b1 && b1v6 && b3 && c);
  // One id per node: the same for every pod (and family) of node-b, another for node-c.
  EXPECT_NE(*b1, 0u);
  EXPECT_NE(*c, 0u);
  EXPECT_EQ(*b1, *b1v6);
  EXPECT_EQ(*b1, *b3);
  EXPECT_NE(*b1, *c);

  for (const auto& [k, v] : d.remote_ips) {
    EXPECT_EQ(k.pad[0] | k.pad[1] | k.pad[2], 0);
    EXPECT_EQ(v.pad, 0u);
    EXPECT_EQ(k.family,
              IpAddr::fromWords(k.addr, k.family).isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6);
  }
  const RemotePodInfo& web1 = d.remote_pods.at(ip("2001:2:1::10"));
  EXPECT_EQ(web1.ns, "shop");
  EXPECT_EQ(web1.name, "web-1");
  EXPECT_EQ(web1.service_account, "web-1-sa");
  EXPECT_EQ(web1.node_name, "node-b");
  EXPECT_EQ(d.remote_pods.at(ip("198.18.1.10")).name, "web-1");
  EXPECT_EQ(d.remote_pods.at(ip("198.18.1.11")).name, "web-3");
  EXPECT_EQ(d.remote_pods.at(ip("198.18.2.10")).node_name, "node-c");

  // Remote pods are not this agent's pods.
  ASSERT_EQ(d.pod_info.size(), 1u);
  EXPECT_EQ(d.pod_info.begin()->second.name, "web-0");
  EXPECT_EQ(d.pods.size(), 1u);
  EXPECT_EQ(d.local_ips.size(), 1u);
}

TEST(TunnelTranslate, NodeIdsDoNotDependOnPodOrder) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "a", "node-c", {"198.18.2.10"}),
            makePod("shop", "b", "node-b", {"198.18.1.10"})};
  Snapshot reversed = s;
  std::reverse(reversed.pods.mut().begin(), reversed.pods.mut().end());
  auto one = run(s);
  auto two = run(reversed);
  EXPECT_EQ(remoteNode(one.desired, "198.18.1.10"), remoteNode(two.desired, "198.18.1.10"));
  EXPECT_EQ(remoteNode(one.desired, "198.18.2.10"), remoteNode(two.desired, "198.18.2.10"));
}

TEST(TunnelTranslate, RemotePodsOutsideTheMeshAreNotRemoteIps) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled()), makeNs("ops")};
  s.pods = {
      makePod("ops", "tool", "node-b", {"198.18.1.20"}),               // no label at all
      makePod("ops", "agent", "node-b", {"198.18.1.21"}, enrolled()),  // pod label
      makePod("shop", "web-1", "node-b", {"198.18.1.22"}),             // namespace label
      makePod("shop", "batch", "node-b", {"198.18.1.23"},              // opts out
              {{kDataplaneModeLabel, "none"}}),
      makePod("gone", "orphan", "node-b", {"198.18.1.24"}),  // unknown namespace
  };
  auto out = run(s);
  EXPECT_EQ(remoteIps(out.desired), (std::vector<std::string>{"198.18.1.21", "198.18.1.22"}));
  EXPECT_EQ(out.desired.remote_pods.size(), 2u);
  EXPECT_EQ(out.desired.remote_pods.count(ip("198.18.1.20")), 0u);
  EXPECT_EQ(out.desired.remote_pods.count(ip("198.18.1.23")), 0u);
}

TEST(TunnelTranslate, LocalPodsAreNeverRemoteIps) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled()), makeNs("ops")};
  s.pods = {makePod("shop", "web-0", kNode, {"198.18.0.10", "2001:2::10"}),
            makePod("ops", "tool", kNode, {"198.18.0.11"}),
            makePod("ops", "agent", kNode, {"198.18.0.12"}, enrolled()),
            makePod("shop", "web-1", "node-b", {"198.18.1.10"})};
  auto out = run(s, {}, {{"shop/web-0", 1}, {"ops/agent", 2}});
  const DesiredDatapath& d = out.desired;
  EXPECT_EQ(remoteIps(d), (std::vector<std::string>{"198.18.1.10"}));
  for (const char* a : {"198.18.0.10", "2001:2::10", "198.18.0.11", "198.18.0.12"}) {
    EXPECT_EQ(d.remote_ips.count(remoteKey(a)), 0u) << a;
    EXPECT_EQ(d.remote_pods.count(ip(a)), 0u) << a;
  }
  EXPECT_EQ(d.local_ips.size(), 3u);
}

TEST(TunnelTranslate, IpClaimedByALocalEnrolledPodIsNotRemote) {
  // A stale remote pod still listed with an address a pod of this node now holds.
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "new", kNode, {"198.18.0.10"}),
            makePod("shop", "old", "node-b", {"198.18.0.10", "198.18.1.10"})};
  auto out = run(s, {}, {{"shop/new", 1}});
  const DesiredDatapath& d = out.desired;
  EXPECT_EQ(remoteIps(d), (std::vector<std::string>{"198.18.1.10"}));
  EXPECT_EQ(d.remote_pods.count(ip("198.18.0.10")), 0u);
  EXPECT_EQ(d.remote_pods.at(ip("198.18.1.10")).name, "old");
  ASSERT_EQ(d.local_ips.count(remoteKey("198.18.0.10")), 1u);
  EXPECT_EQ(d.pod_info.at(d.local_ips.at(remoteKey("198.18.0.10")).pod_id).name, "new");
}

TEST(TunnelTranslate, IpClaimedByALocalPodOutsideTheMeshIsNotRemote) {
  // The same, with the local holder of the address not enrolled: the address is still this
  // node's pod, so a connection to it must not be sent to node-b through the tunnel.
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled()), makeNs("ops")};
  s.pods = {makePod("ops", "tool", kNode, {"198.18.0.10"}),
            makePod("shop", "old", "node-b", {"198.18.0.10", "198.18.1.10"})};
  auto out = run(s);
  EXPECT_EQ(remoteIps(out.desired), (std::vector<std::string>{"198.18.1.10"}));
  EXPECT_EQ(out.desired.remote_pods.count(ip("198.18.0.10")), 0u);
}

TEST(TunnelTranslate, IpClaimedTwiceByRemotePodsStaysWithTheFirst) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "web-b", "node-c", {"198.18.1.10"}),
            makePod("shop", "web-a", "node-b", {"198.18.1.10"}),
            makePod("shop", "web-c", "node-b", {"198.18.1.11"}),
            makePod("shop", "web-d", "node-c", {"198.18.2.11"})};
  auto out = run(s);
  const DesiredDatapath& d = out.desired;
  ASSERT_EQ(d.remote_ips.size(), 3u);
  ASSERT_EQ(d.remote_pods.size(), 3u);
  const RemotePodInfo& owner = d.remote_pods.at(ip("198.18.1.10"));
  EXPECT_EQ(owner.name, "web-a");  // ns/name order
  EXPECT_EQ(owner.node_name, "node-b");
  // The map's node id is the node of the pod the explanation names.
  EXPECT_EQ(remoteNode(d, "198.18.1.10"), remoteNode(d, "198.18.1.11"));
  EXPECT_NE(remoteNode(d, "198.18.1.10"), remoteNode(d, "198.18.2.11"));
}

TEST(TunnelTranslate, PodsWithoutNodeNameAreIgnored) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "pending", "", {"198.18.1.30"}),
            makePod("shop", "web-1", "node-b", {"198.18.1.10"})};
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web", {epPort("http", 8080)},
                                 {{"198.18.1.30", "", true, true, false, "pending"}})};
  auto out = run(s, {}, {{"shop/pending", 5}});
  const DesiredDatapath& d = out.desired;
  EXPECT_EQ(remoteIps(d), (std::vector<std::string>{"198.18.1.10"}));
  EXPECT_EQ(d.remote_pods.count(ip("198.18.1.30")), 0u);
  EXPECT_TRUE(d.pod_info.empty());
  EXPECT_TRUE(d.pods.empty());
  EXPECT_TRUE(d.local_ips.empty());
  auto v = findSvc(d, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  auto be = slotOf(d, v->svc_id, "198.18.1.30", 8080);
  ASSERT_TRUE(be);
  EXPECT_EQ(be->flags, 0);
  const BackendInfo* bi = findBackend(d, v->svc_id, "198.18.1.30", 8080);
  ASSERT_TRUE(bi);
  EXPECT_FALSE(bi->tunnel);
}

// ---------------------------------------------------------------- backend flags

TEST(TunnelTranslate, BackendFlagsLocalTunnelOrNone) {
  Snapshot s;
  s.namespaces = {makeNs("shop")};  // pods opt in one by one
  s.pods = {makePod("shop", "web-0", kNode, {"198.18.0.10"}, enrolled()),
            makePod("shop", "web-1", kNode, {"198.18.0.11"}),
            makePod("shop", "web-2", "node-b", {"198.18.1.10"}, enrolled()),
            makePod("shop", "web-3", "node-b", {"198.18.1.11"})};
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web", {epPort("http", 8080)},
                                 {{"198.18.0.10", kNode, true, true, false, "web-0"},
                                  {"198.18.0.11", kNode, true, true, false, "web-1"},
                                  {"198.18.1.10", "node-b", true, true, false, "web-2"},
                                  {"198.18.1.11", "node-b", true, true, false, "web-3"},
                                  {"198.18.3.10", "node-d"}})};  // no pod known
  auto out = run(s, {}, {{"shop/web-0", 1}});
  const DesiredDatapath& d = out.desired;
  auto v = findSvc(d, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  ASSERT_EQ(v->count, 5);
  EXPECT_EQ(v->local_count, 2);

  struct Want {
    const char* addr;
    uint8_t flags;
    bool tunnel;
  };
  for (const Want& w : {Want{"198.18.0.10", MESHLET_BACKEND_LOCAL, false},
                        Want{"198.18.0.11", MESHLET_BACKEND_LOCAL, false},
                        Want{"198.18.1.10", MESHLET_BACKEND_TUNNEL, true},
                        Want{"198.18.1.11", 0, false}, Want{"198.18.3.10", 0, false}}) {
    auto be = slotOf(d, v->svc_id, w.addr, 8080);
    ASSERT_TRUE(be) << w.addr;
    EXPECT_EQ(be->flags, w.flags) << w.addr;
    const auto* bi = findBackendEntry(d, v->svc_id, w.addr, 8080);
    ASSERT_TRUE(bi) << w.addr;
    EXPECT_EQ(bi->second.tunnel, w.tunnel) << w.addr;
    EXPECT_EQ(be->backend_id, bi->first) << w.addr;
  }
}

TEST(TunnelTranslate, TunnelFlagFollowsTheRemotePodsEnrollment) {
  Snapshot s;
  s.namespaces = {makeNs("shop")};
  s.pods = {makePod("shop", "web-2", "node-b", {"198.18.1.10"})};
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web", {epPort("http", 8080)},
                                 {{"198.18.1.10", "node-b", true, true, false, "web-2"}})};
  auto before = run(s);
  auto v = findSvc(before.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(before.desired.backends().at({v->svc_id, 0}).flags, 0);

  s.namespaces = {makeNs("shop", enrolled())};  // the namespace joins the mesh
  auto after = run(s, before.ids);
  auto w = findSvc(after.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(w);
  EXPECT_EQ(after.desired.backends().at({w->svc_id, 0}).flags, MESHLET_BACKEND_TUNNEL);
  const BackendInfo* bi = findBackend(after.desired, w->svc_id, "198.18.1.10", 8080);
  ASSERT_TRUE(bi);
  EXPECT_TRUE(bi->tunnel);
  EXPECT_FALSE(bi->local);
}

TEST(TunnelTranslate, Ipv6BackendOfARemoteEnrolledPodIsTunnelled) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "web-1", "node-b", {"198.18.1.10", "2001:2:1::10"}),
            makePod("shop", "web-0", kNode, {"198.18.0.10", "2001:2::10"})};
  s.services = {makeSvc("shop", "web", {"198.18.100.1", "2001:2:100::1"}, {port("http", 80)})};
  s.endpoint_slices = {
      makeSlice("shop", "web-v4", "web", {epPort("http", 8080)},
                {{"198.18.1.10", "node-b"}, {"198.18.0.10", kNode}}),
      makeSlice("shop", "web-v6", "web", {epPort("http", 8080)},
                {{"2001:2:1::10", "node-b"}, {"2001:2::10", kNode}}, IpFamily::kV6)};
  auto out = run(s, {}, {{"shop/web-0", 1}});
  const DesiredDatapath& d = out.desired;
  for (const char* vip : {"198.18.100.1", "2001:2:100::1"}) {
    auto v = findSvc(d, svcKey(vip, 80));
    ASSERT_TRUE(v) << vip;
    ASSERT_EQ(v->count, 2) << vip;
    ASSERT_EQ(v->local_count, 1) << vip;
    const meshlet_backend_value local = d.backends().at({v->svc_id, 0});
    const meshlet_backend_value remote = d.backends().at({v->svc_id, 1});
    EXPECT_EQ(local.flags, MESHLET_BACKEND_LOCAL) << vip;
    EXPECT_EQ(remote.flags, MESHLET_BACKEND_TUNNEL) << vip;
    EXPECT_EQ(remote.family, svcKey(vip, 80).family) << vip;
  }
}

TEST(TunnelTranslate, NotReadyRemoteEnrolledBackendHasNoSlot) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "web-1", "node-b", {"198.18.1.10"})};
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web", {epPort("http", 8080)},
                                 {{"198.18.1.10", "node-b", false, false, false, "web-1"}})};
  auto out = run(s);
  auto v = findSvc(out.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count, 0);
  EXPECT_TRUE(out.desired.backends().empty());
  // The pod is still a remote mesh IP: a direct connection to it takes the tunnel.
  EXPECT_TRUE(remoteNode(out.desired, "198.18.1.10"));
}

}  // namespace
}  // namespace meshlet
