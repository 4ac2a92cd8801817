#pragma once
// Builders and accessors shared by the translation tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "agent/translate/translate.h"

namespace meshlet {
namespace translate_test {

constexpr const char* kNode = "node-a";

inline IpAddr ip(const char* text) {
  auto a = IpAddr::parse(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(IpAddr{});
}

inline Labels enrolled() { return {{kDataplaneModeLabel, kDataplaneModeMeshlet}}; }

inline Namespace makeNs(const std::string& name, Labels labels = {}) {
  Namespace n;
  n.meta.name = name;
  n.meta.labels = std::move(labels);
  return n;
}

inline Pod makePod(const std::string& ns, const std::string& name, const std::string& node,
                   std::vector<const char*> ips, Labels labels = {}) {
  Pod p;
  p.meta.ns = ns;
  p.meta.name = name;
  p.meta.labels = std::move(labels);
  p.node_name = node;
  p.service_account = name + "-sa";
  for (const char* a : ips) p.pod_ips.push_back(ip(a));
  p.netns = "/var/run/netns/" + name;
  return p;
}

inline ServicePort port(const std::string& name, int number, Protocol proto = Protocol::kTCP) {
  ServicePort p;
  p.name = name;
  p.port = number;
  p.protocol = proto;
  p.target_port.number = number;
  return p;
}

inline Service makeSvc(const std::string& ns, const std::string& name, std::vector<const char*> ips,
                       std::vector<ServicePort> ports) {
  Service s;
  s.meta.ns = ns;
  s.meta.name = name;
  for (const char* a : ips) s.cluster_ips.push_back(ip(a));
  s.ports = std::move(ports);
  s.selector = Labels{{"app", name}};
  return s;
}

struct Ep {
  const char* addr;
  const char* node = kNode;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  const char* pod = "";
};

inline EndpointSlice makeSlice(const std::string& ns, const std::string& name,
                               const std::string& svc, std::vector<EndpointPort> ports,
                               std::vector<Ep> eps, IpFamily family = IpFamily::kV4) {
  EndpointSlice s;
  s.meta.ns = ns;
  s.meta.name = name;
  s.service_name = svc;
  s.address_type = family;
  s.ports = std::move(ports);
  for (const Ep& e : eps) {
    Endpoint ep;
    ep.address = ip(e.addr);
    ep.node_name = e.node;
    ep.ready = e.ready;
    ep.serving = e.serving;
    ep.terminating = e.terminating;
    ep.target_pod = e.pod;
    s.endpoints.push_back(std::move(ep));
  }
  return s;
}

inline EndpointPort epPort(const std::string& name, int number, Protocol proto = Protocol::kTCP) {
  EndpointPort p;
  p.name = name;
  p.port = number;
  p.protocol = proto;
  return p;
}

// The backend id table keyed by text ("svc_id/ip/port"), for readable expectations.
inline std::map<std::string, uint32_t> byText(const FlatMap<BackendIdKey, uint32_t>& ids) {
  std::map<std::string, uint32_t> out;
  for (const auto& [key, id] : ids) out.emplace(key.toString(), id);
  return out;
}

inline TranslateOutput run(const Snapshot& s, const IdTable& previous = {},
                           std::map<std::string, uint64_t> cookies = {}) {
  TranslateInput in;
  in.snapshot = &s;
  in.node_name = kNode;
  in.netns_cookies = std::move(cookies);
  return translate(in, previous);
}

inline meshlet_svc_key svcKey(const char* addr, int p, Protocol proto = Protocol::kTCP) {
  IpAddr a = ip(addr);
  meshlet_svc_key k{};
  auto w = a.words();
  std::copy(w.begin(), w.end(), k.addr);
  k.port = static_cast<uint16_t>(p);
  k.proto = static_cast<uint8_t>(proto);
  k.family = a.isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6;
  return k;
}

inline std::optional<meshlet_svc_value> findSvc(const DesiredDatapath& d,
                                                const meshlet_svc_key& k) {
  auto it = d.services.find(k);
  if (it == d.services.end()) return std::nullopt;
  return it->second;
}

// A ready backend as the kernel sees it, in slot order.
struct Slot {
  std::string addr;
  int port;
  bool local;
  bool operator==(const Slot&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Slot& s) {
  return os << s.addr << ":" << s.port << (s.local ? " local" : "");
}

inline std::vector<Slot> slots(const DesiredDatapath& d, const meshlet_svc_value& v) {
  std::vector<Slot> out;
  const BackendEntries backends = d.backends();
  for (uint32_t slot = 0; slot < v.count; ++slot) {
    auto it = backends.find({v.svc_id, slot});
    if (it == backends.end()) {
      ADD_FAILURE() << "missing slot " << slot << " of service " << v.svc_id;
      continue;
    }
    const meshlet_backend_value& b = it->second;
    out.push_back({IpAddr::fromWords(b.addr, b.family).toString(), b.port,
                   (b.flags & MESHLET_BACKEND_LOCAL) != 0});
  }
  return out;
}

inline size_t backendsOfService(const DesiredDatapath& d, uint32_t svc_id) {
  const BackendEntries backends = d.backends();
  return std::count_if(backends.begin(), backends.end(),
                       [&](const auto& kv) { return kv.first.svc_id == svc_id; });
}

// The backend_info entry (backend id, explanation) of svc_id's addr:p, null when none.
inline const std::pair<uint32_t, BackendInfo>* findBackendEntry(const DesiredDatapath& d,
                                                                uint32_t svc_id, const char* addr,
                                                                int p) {
  for (const auto& entry : d.backend_info) {
    const BackendInfo& b = entry.second;
    if (b.svc_id == svc_id && b.addr == ip(addr) && b.port == p) return &entry;
  }
  return nullptr;
}

inline const BackendInfo* findBackend(const DesiredDatapath& d, uint32_t svc_id, const char* addr,
                                      int p) {
  const auto* entry = findBackendEntry(d, svc_id, addr, p);
  return entry ? &entry->second : nullptr;
}

}  // namespace translate_test
}  // namespace meshlet
