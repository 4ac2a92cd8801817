#pragma once
// A small cluster seen from node-a, shared by the admin view and telemetry tests: enrolled and
// unenrolled pods on two nodes, a dual-stack round-robin service, a ClientIP service, and an
// endpoint-less UDP service; plus builders for hand-made kernel connection entries.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/datapath/datapath.h"
#include "agent/translate/translate.h"

namespace meshlet {
namespace scenario {

constexpr const char* kNode = "node-a";
constexpr const char* kOtherNode = "node-b";
constexpr uint64_t kClientCookie = 1001;
constexpr uint64_t kWebCookie = 1002;
constexpr uint64_t kSecond = 1000000000ull;

inline IpAddr ip(const char* text) {
  auto a = IpAddr::parse(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(IpAddr{});
}

inline Pod pod(const std::string& ns, const std::string& name, const std::string& node,
               std::vector<const char*> ips, Labels labels) {
  Pod p;
  p.meta.ns = ns;
  p.meta.name = name;
  p.meta.labels = std::move(labels);
  p.node_name = node;
  p.service_account = name + "-sa";
  for (const char* a : ips) p.pod_ips.push_back(ip(a));
  p.netns = "/var/run/netns/" + name;
  p.ready = true;
  return p;
}

inline ServicePort svcPort(const std::string& name, int number, Protocol proto) {
  ServicePort p;
  p.name = name;
  p.port = number;
  p.protocol = proto;
  p.target_port.number = number;
  return p;
}

struct Ep {
  const char* addr;
  const char* node;
  const char* pod;
  bool ready = true;
  bool terminating = false;
};

inline EndpointSlice slice(const std::string& ns, const std::string& name, const std::string& svc,
                           IpFamily family, const std::string& port_name, int port,
                           std::vector<Ep> eps) {
  EndpointSlice s;
  s.meta.ns = ns;
  s.meta.name = name;
  s.service_name = svc;
  s.address_type = family;
  s.ports.push_back({port_name, Protocol::kTCP, port});
  for (const Ep& e : eps) {
    Endpoint ep;
    ep.address = ip(e.addr);
    ep.node_name = e.node;
    ep.ready = e.ready;
    ep.serving = e.ready || e.terminating;
    ep.terminating = e.terminating;
    ep.target_pod = e.pod;
    s.endpoints.push_back(std::move(ep));
  }
  return s;
}

inline std::shared_ptr<Snapshot> makeSnapshot() {
  auto s = std::make_shared<Snapshot>();
  s->generation = 7;
  Namespace demo;
  demo.meta.name = "demo";
  demo.meta.labels = {{kDataplaneModeLabel, kDataplaneModeMeshlet}};
  s->namespaces.push_back(demo);
  Namespace plain;
  plain.meta.name = "plain";
  s->namespaces.push_back(plain);

  s->pods.push_back(pod("demo", "client-1", kNode, {"198.18.0.2", "2001:db8::2"},
                        {{"app", "client"}, {"version", "v1"}}));
  s->pods.push_back(pod("demo", "web-1", kNode, {"198.18.0.10", "2001:db8::10"},
                        {{"app.kubernetes.io/name", "web"},
                         {"app.kubernetes.io/version", "v2"},
                         {"app", "web-legacy"}}));
  s->pods.push_back(
      pod("demo", "web-2", kOtherNode, {"198.18.1.10"}, {{"app", "web"}, {"version", "v3"}}));
  s->pods.push_back(pod("demo", "idle", kNode, {"198.18.0.3"}, {}));  // enrolled, no cookie
  s->pods.push_back(pod("plain", "tool", kNode, {"198.18.0.4"}, {}));  // not in the mesh

  Service web;
  web.meta.ns = "demo";
  web.meta.name = "web";
  web.cluster_ips = {ip("198.19.0.10"), ip("2001:db8::a:10")};
  web.ports.push_back(svcPort("http", 80, Protocol::kTCP));
  web.selector = Labels{{"app", "web"}};
  web.round_robin = true;
  s->services.push_back(web);

  Service api;
  api.meta.ns = "demo";
  api.meta.name = "api";
  api.cluster_ips = {ip("198.19.0.20")};
  api.ports.push_back(svcPort("grpc", 8080, Protocol::kTCP));
  api.selector = Labels{{"app", "api"}};
  api.session_affinity = SessionAffinity::kClientIP;
  api.prefer_close = true;
  s->services.push_back(api);

  Service dns;
  dns.meta.ns = "alpha";
  dns.meta.name = "zeta";
  dns.cluster_ips = {ip("198.19.0.30")};
  dns.ports.push_back(svcPort("dns", 53, Protocol::kUDP));
  s->services.push_back(dns);

  s->endpoint_slices.push_back(slice("demo", "web-v4", "web", IpFamily::kV4, "http", 8080,
                                     {{"198.18.1.10", kOtherNode, "web-2"},
                                      {"198.18.0.10", kNode, "web-1"},
                                      {"198.18.1.11", kOtherNode, "web-3", false, true}}));
  s->endpoint_slices.push_back(slice("demo", "web-v6", "web", IpFamily::kV6, "http", 8080,
                                     {{"2001:db8::10", kNode, "web-1"}}));
  s->endpoint_slices.push_back(slice("demo", "api-v4", "api", IpFamily::kV4, "grpc", 9090,
                                     {{"198.18.1.20", kOtherNode, "api-1"}}));
  return s;
}

inline DesiredDatapath translateSnapshot(const Snapshot& s) {
  TranslateInput in;
  in.snapshot = &s;
  in.node_name = kNode;
  in.netns_cookies = {{"demo/client-1", kClientCookie}, {"demo/web-1", kWebCookie}};
  return translate(in, {}).desired;
}

inline uint32_t podId(const DesiredDatapath& d, const std::string& ns_name) {
  for (const auto& [id, p] : d.pod_info) {
    if (p.ns + "/" + p.name == ns_name) return id;
  }
  ADD_FAILURE() << "no pod_info for " << ns_name;
  return MESHLET_NO_ID;
}

inline uint32_t svcId(const DesiredDatapath& d, const std::string& ns_name,
                      const char* cluster_ip) {
  for (const auto& [id, s] : d.service_info) {
    if (s.ns + "/" + s.name == ns_name && s.cluster_ip == ip(cluster_ip)) return id;
  }
  ADD_FAILURE() << "no service_info for " << ns_name << " " << cluster_ip;
  return MESHLET_NO_ID;
}

inline uint32_t backendId(const DesiredDatapath& d, uint32_t svc_id, const char* addr) {
  for (const auto& [id, b] : d.backend_info) {
    if (b.svc_id == svc_id && b.addr == ip(addr)) return id;
  }
  ADD_FAILURE() << "no backend_info for " << addr;
  return MESHLET_NO_ID;
}

inline void setAddr(uint32_t out[4], const char* text) {
  auto w = ip(text).words();
  std::copy(w.begin(), w.end(), out);
}

// A connection entry as the kernel records it, seen from `local`'s side. Ids default to none.
inline ConnEntry conn(const char* local, int lport, const char* remote, int rport, uint8_t flags,
                      uint8_t path) {
  ConnEntry c;
  IpAddr l = ip(local);
  setAddr(c.key.local, local);
  setAddr(c.key.remote, remote);
  c.key.lport = static_cast<uint16_t>(lport);
  c.key.rport = static_cast<uint16_t>(rport);
  c.key.family = l.isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6;
  c.value.flags = flags;
  c.value.path = path;
  c.value.svc_id = MESHLET_NO_ID;
  c.value.backend_id = MESHLET_NO_ID;
  c.value.pod_id = MESHLET_NO_ID;
  c.value.peer_pod_id = MESHLET_NO_ID;
  return c;
}

// Marks an entry as balanced to a service address.
inline void dialled(ConnEntry& c, uint32_t svc_id, uint32_t backend_id, const char* orig_addr,
                    int orig_port) {
  c.value.svc_id = svc_id;
  c.value.backend_id = backend_id;
  setAddr(c.value.orig_addr, orig_addr);
  c.value.orig_port = static_cast<uint16_t>(orig_port);
}

}  // namespace scenario
}  // namespace meshlet
