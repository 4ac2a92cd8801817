#include "agent/admin/views.h"

#include <cstring>
#include <map>

#include "agent/common/log.h"
#include "agent/policy/authz.h"
#include "agent/tls/ca.h"

namespace meshlet {
namespace {

const PodInfo* podById(const AgentView& v, uint32_t id) {
  if (!v.desired || id == MESHLET_NO_ID) return nullptr;
  auto it = v.desired->pod_info.find(id);
  return it == v.desired->pod_info.end() ? nullptr : &it->second;
}

std::string ipsJoined(const std::vector<IpAddr>& ips) {
  std::string s;
  for (const auto& ip : ips) s += (s.empty() ? "" : ",") + ip.toString();
  return s;
}

}  // namespace

namespace {

// The Kubernetes source's connection, and each watched resource.
Json kubeStatusJson(const AgentStatusInfo& s) {
  const KubeSourceStatus& k = s.kube;
  Json resources = Json::array();
  for (const auto& r : k.resources) {
    resources.push_back({{"resource", r.resource},
                         {"api_version", r.api_version},
                         {"state", r.state},
                         {"objects", r.objects},
                         {"rejected", r.rejected},
                         {"error", r.error}});
  }
  std::string note;
  if (!k.connected) {
    note = "API server unreachable: the last known state stays in force";
  } else if (!k.synced) {
    note = "initial list in progress";
  }
  return Json{{"api_server", k.server},
              {"origin", k.origin},
              {"connected", k.connected},
              {"state", k.connected ? "connected" : "unreachable"},
              {"since", k.since},
              {"last_error", k.last_error},
              {"synced", k.synced},
              {"note", note},
              {"resources", resources}};
}

}  // namespace

Json statusJson(const AgentView& v, int64_t now_unix) {
  const auto& s = v.status;
  Json maps = Json::array();
  for (const auto& m : v.maps) {
    maps.push_back({{"name", m.name}, {"entries", m.entries}, {"capacity", m.capacity}});
  }
  std::string ca;
  if (v.identity && v.identity->has_ca && v.identity->ca_error.empty()) {
    ca = "loaded from " + v.identity->ca_dir;
  } else if (v.identity && v.identity->has_ca) {
    ca = "reload failed, the last good CA stays: " + v.identity->ca_error;
  } else if (v.identity) {
    ca = "none, no workload certificates: " + v.identity->ca_error;
  }
  Json out{{"node_name", s.node_name},
           {"config_dir", s.config_dir},
           {"generation", s.generation},
           {"config_ok", s.config_ok},
           {"last_error", s.last_error},
           {"last_error_time", s.last_error_time},
           {"last_sync_ms", s.last_sync_ms},
           {"last_sync_translate_ms", s.last_sync_translate_ms},
           {"last_sync_maps_ms", s.last_sync_maps_ms},
           {"uptime_s", now_unix - s.started_unix},
           {"cgroup", s.cgroup},
           {"bpffs", s.bpffs},
           {"adopted", s.adopted},
           {"metrics_port", s.metrics_port},
           {"services", v.desired ? v.desired->service_info.size() : 0},
           {"enrolled_pods", v.desired ? v.desired->pod_info.size() : 0},
           {"spliced_connections", v.spliced_connections},
           {"trust_domain", v.identity ? v.identity->trust_domain : ""},
           {"ca", ca},
           {"workload_certificates", v.identity ? v.identity->svids.size() : 0},
           {"maps", maps},
           {"source", s.source}};
  if (s.source == "kube") out["kubernetes"] = kubeStatusJson(s);
  if (v.proxy) {
    const proxy::ProxyReport& r = *v.proxy;
    Json denied = Json::object();
    for (const auto& [policy, n] : r.denied) denied[policy.empty() ? "-" : policy] = n;
    out["tunnels"] = {{"ready_pods", r.ready_pods},
                      {"pooled_links", r.pooled_links},
                      {"open", r.live.size()},
                      {"outbound_opened", r.outbound_opened},
                      {"outbound_failed", r.outbound_failed},
                      {"inbound_opened", r.inbound_opened},
                      {"captured_opened", r.captured_opened},
                      {"plaintext_rejected", r.plaintext_rejected},
                      {"denied", denied},
                      {"no_origin", r.no_origin},
                      {"listener_errors", r.listener_errors}};
  }
  return out;
}

Json workloadsJson(const AgentView& v) {
  Json out = Json::array();
  if (!v.snapshot) return out;
  std::map<std::string, const PodInfo*> enrolled;
  if (v.desired) {
    for (const auto& [id, p] : v.desired->pod_info) enrolled[p.ns + "/" + p.name] = &p;
  }
  for (const auto& pod : v.snapshot->pods) {
    if (pod.node_name != v.status.node_name) continue;
    auto it = enrolled.find(pod.meta.ns + "/" + pod.meta.name);
    const PodInfo* p = it == enrolled.end() ? nullptr : it->second;
    out.push_back({{"namespace", pod.meta.ns},
                   {"name", pod.meta.name},
                   {"node", pod.node_name},
                   {"ips", ipsJoined(pod.pod_ips)},
                   {"enrolled", p != nullptr && p->netns_cookie != 0},
                   {"enrolled_by", p ? p->enrolled_by : ""},
                   {"netns", pod.netns},
                   {"netns_cookie", p ? p->netns_cookie : 0},
                   {"pod_id", p ? static_cast<int64_t>(p->pod_id) : -1},
                   {"service_account", pod.service_account}});
  }
  return out;
}

Json servicesJson(const AgentView& v) {
  Json out = Json::array();
  if (!v.desired) return out;
  std::map<uint32_t, std::pair<int, int>> ready;  // svc_id -> (ready, local)
  for (const auto& [id, b] : v.desired->backend_info) {
    if (b.slot == MESHLET_NO_ID) continue;
    ready[b.svc_id].first++;
    if (b.local) ready[b.svc_id].second++;
  }
  std::vector<std::pair<uint32_t, const ServiceInfo*>> sorted;  // (svc_id, service)
  for (const auto& [id, s] : v.desired->service_info) sorted.emplace_back(id, &s);
  std::sort(sorted.begin(), sorted.end(), [](const auto& ea, const auto& eb) {
    const ServiceInfo* a = ea.second;
    const ServiceInfo* b = eb.second;
    return std::tie(a->ns, a->name, a->port, a->cluster_ip) <
           std::tie(b->ns, b->name, b->port, b->cluster_ip);
  });
  for (const auto& [svc_id, s] : sorted) {
    out.push_back({{"namespace", s->ns},
                   {"name", s->name},
                   {"cluster_ip", s->cluster_ip.toString()},
                   {"port", s->port},
                   {"protocol", s->protocol == Protocol::kUDP ? "UDP" : "TCP"},
                   {"lb", s->lb},
                   {"prefer_close", s->prefer_close},
                   {"ready", ready[svc_id].first},
                   {"local", ready[svc_id].second},
                   {"svc_id", svc_id}});
  }
  return out;
}

// "healthy", "not ready", or what L4 outlier detection did to a ready backend.
std::string healthOf(const AgentView& v, uint32_t backend_id, const BackendInfo& b,
                     int64_t now_unix_ms) {
  if (!b.ready) return "not ready";
  const OutlierView* o = nullptr;
  if (v.outliers) {
    auto it = v.outliers->find(backend_id);
    if (it != v.outliers->end()) o = &it->second;
  }
  if (b.ejected || (o && o->ejected_until_unix_ms != 0)) {
    std::string out = "ejected";
    if (o && o->ejected_until_unix_ms != 0) {
      const int64_t until = o->ejected_until_unix_ms;
      const int64_t left_ms = until > now_unix_ms ? until - now_unix_ms : 0;
      out += " until " + unixToRfc3339((until + 999) / 1000) + " (" +
             std::to_string((left_ms + 999) / 1000) + "s left, ejection " +
             std::to_string(o->ejections) + ")";
    }
    // Still in the slots: every ready backend of the service is ejected, or fewer than
    // minHealthPercent are healthy (Envoy's panic: then all take connections).
    if (b.slot != MESHLET_NO_ID) out += ", still used (panic: too few healthy backends)";
    return out;
  }
  if (o && o->consecutive_errors > 0) {
    return "healthy (" + std::to_string(o->consecutive_errors) + " failed connects in a row)";
  }
  return "healthy";
}

Json endpointsJson(const AgentView& v, const std::string& filter, int64_t now_unix_ms) {
  Json out = Json::array();
  if (!v.desired) return out;
  std::vector<std::pair<uint32_t, const BackendInfo*>> sorted;  // (backend id, backend)
  for (const auto& [id, b] : v.desired->backend_info) {
    auto s = v.desired->service_info.find(b.svc_id);
    if (s == v.desired->service_info.end()) continue;
    if (!filter.empty() && s->second.ns + "/" + s->second.name != filter) continue;
    sorted.emplace_back(id, &b);
  }
  auto svcOf = [&](const BackendInfo* b) -> const ServiceInfo& {
    return v.desired->service_info.at(b->svc_id);
  };
  std::sort(sorted.begin(), sorted.end(), [&](const auto& ea, const auto& eb) {
    const BackendInfo* a = ea.second;
    const BackendInfo* b = eb.second;
    const auto& sa = svcOf(a);
    const auto& sb = svcOf(b);
    return std::tie(sa.ns, sa.name, sa.port, sa.cluster_ip, a->slot, a->addr, a->port) <
           std::tie(sb.ns, sb.name, sb.port, sb.cluster_ip, b->slot, b->addr, b->port);
  });
  for (const auto& [backend_id, b] : sorted) {
    const auto& s = svcOf(b);
    out.push_back({{"service", s.ns + "/" + s.name},
                   {"cluster_ip", s.cluster_ip.toString()},
                   {"port", s.port},
                   {"address", b->addr.toString()},
                   {"target_port", b->port},
                   {"ready", b->ready},
                   {"serving", b->serving},
                   {"terminating", b->terminating},
                   {"node", v.desired->name(b->node)},
                   {"local", b->local},
                   {"pod", v.desired->name(b->pod)},
                   {"backend_id", backend_id},
                   {"health", healthOf(v, backend_id, *b, now_unix_ms)}});
  }
  return out;
}

// The same-node verdict the kernel applies to src -> dst:port ("" when no policy governs dst).
std::string sameNodeDecision(const DesiredDatapath& d, uint32_t src, uint32_t dst, uint16_t port) {
  meshlet_authz_key k{};
  k.src_pod = src;
  k.dst_pod = dst;
  k.port = port;
  auto it = d.authz.find(k);
  if (it == d.authz.end()) {
    k.port = 0;
    it = d.authz.find(k);
  }
  if (it == d.authz.end()) return "";
  std::string name = authzPolicyName(d, it->second.policy);
  if (it->second.allow) return name.empty() ? "allowed" : "allowed by " + name;
  return name.empty() ? "denied: no ALLOW policy matched" : "denied by " + name;
}

const char* pathName(uint8_t path) {
  switch (path) {
    case MESHLET_PATH_SPLICED:
      return "spliced";
    case MESHLET_PATH_BALANCED:
      return "balanced";
    case MESHLET_PATH_TUNNEL:
      return "tunnel";
    case MESHLET_PATH_L7:
      return "l7";
    default:
      return "passthrough";
  }
}

Json connectionsJson(const AgentView& v, const std::vector<ConnEntry>& conns, uint64_t now_ns,
                     int64_t now_unix) {
  Json out = Json::array();
  std::map<meshlet_sock_key, const ConnEntry*, BytesLess<meshlet_sock_key>> by_key;
  for (const auto& c : conns) by_key[c.key] = &c;
  for (const auto& c : conns) {
    const auto& val = c.value;
    bool active = val.flags & MESHLET_CONN_ACTIVE;
    // A tunnel-path socket is shown from the proxy's side below, unless the agent never took it.
    if ((val.path == MESHLET_PATH_TUNNEL || val.path == MESHLET_PATH_L7) &&
        !(val.flags & MESHLET_CONN_FAILED)) {
      continue;
    }
    auto local = IpAddr::fromWords(c.key.local, c.key.family);
    auto remote = IpAddr::fromWords(c.key.remote, c.key.family);
    uint32_t svc_id = val.svc_id;
    std::string service_address;
    if (svc_id != MESHLET_NO_ID) {
      service_address =
          endpointString(IpAddr::fromWords(val.orig_addr, c.key.family), val.orig_port);
    } else if (!active) {
      // The client on this node knows which service it dialled.
      auto it = by_key.find(peerKey(c.key));
      if (it != by_key.end() && it->second->value.svc_id != MESHLET_NO_ID) {
        svc_id = it->second->value.svc_id;
        service_address = endpointString(
            IpAddr::fromWords(it->second->value.orig_addr, c.key.family),
            it->second->value.orig_port);
      }
    }
    std::string service;
    if (v.desired && svc_id != MESHLET_NO_ID) {
      auto s = v.desired->service_info.find(svc_id);
      if (s != v.desired->service_info.end()) service = s->second.ns + "/" + s->second.name;
    }
    std::string peer;
    if (const PodInfo* p = podById(v, val.peer_pod_id)) {
      peer = p->ns + "/" + p->name;
    } else if (v.desired && val.backend_id != MESHLET_NO_ID) {
      auto b = v.desired->backend_info.find(val.backend_id);
      if (b != v.desired->backend_info.end()) peer = v.desired->name(b->second.pod);
    }
    const PodInfo* self = podById(v, val.pod_id);
    bool denied = val.flags & MESHLET_CONN_DENIED;
    std::string policy;
    if (v.desired && denied) {
      std::string name = authzPolicyName(*v.desired, val.policy);
      policy = name.empty() ? "denied: no ALLOW policy matched" : "denied by " + name;
    } else if (v.desired && active && val.peer_pod_id != MESHLET_NO_ID) {
      policy = sameNodeDecision(*v.desired, val.pod_id, val.peer_pod_id, c.key.rport);
    }
    // Same-node pairs: the kernel attests the peer (its netns); its identity is its account's.
    std::string peer_identity;
    if (const PodInfo* p = podById(v, val.peer_pod_id); p && v.identity) {
      peer_identity = tls::spiffeId(v.identity->trust_domain, p->ns, p->service_account);
    }
    uint64_t end = (val.flags & MESHLET_CONN_CLOSED) && val.end_ns ? val.end_ns : now_ns;
    uint64_t sent = (val.flags & MESHLET_CONN_SPLICED)
                        ? std::max(val.bytes_sent, val.spliced_bytes)
                        : val.bytes_sent;
    out.push_back(
        {{"path", pathName(val.path)},
         {"state", denied                              ? "denied"
                   : (val.flags & MESHLET_CONN_FAILED) ? "failed"
                   : (val.flags & MESHLET_CONN_CLOSED) ? "closed"
                                                       : "open"},
         {"direction", active ? "outbound" : "inbound"},
         {"local", denied ? "" : endpointString(local, c.key.lport)},
         {"remote", endpointString(remote, c.key.rport)},
         {"service", service},
         {"service_address", service_address},
         {"workload", self ? self->ns + "/" + self->name : ""},
         {"peer", peer},
         {"peer_identity", peer_identity},
         {"policy", policy},
         {"bytes_sent", sent},
         {"bytes_received", val.bytes_received},
         {"rtt_us", val.srtt_us},
         {"retransmits", val.total_retrans},
         // A denied attempt has no duration: its age is the time since it was refused.
         {"age_s", denied ? (now_ns > val.end_ns ? (now_ns - val.end_ns) / 1000000000ull : 0)
                   : end > val.start_ns ? (end - val.start_ns) / 1000000000ull
                                        : 0}});
  }
  if (!v.proxy) return out;
  for (const auto& t : v.proxy->live) {
    out.push_back({{"path", t.path},
                   {"state", "open"},
                   {"direction", t.inbound ? "inbound" : "outbound"},
                   {"local", t.inbound ? t.destination : ""},
                   {"remote", t.peer},
                   {"service", t.service},
                   {"service_address", t.inbound ? "" : t.destination},
                   {"workload", t.pod},
                   {"peer", t.peer_pod},
                   {"peer_identity", t.peer_id},
                   {"policy", t.policy},
                   {"bytes_sent", t.bytes_sent},
                   {"bytes_received", t.bytes_received},
                   {"rtt_us", 0},
                   {"retransmits", 0},
                   {"age_s", now_unix > t.start_unix ? now_unix - t.start_unix : 0}});
  }
  return out;
}

namespace {

const char* scopeName(PolicyScope s) {
  switch (s) {
    case PolicyScope::kMesh:
      return "mesh";
    case PolicyScope::kNamespace:
      return "namespace";
    case PolicyScope::kWorkload:
      break;
  }
  return "workload";
}

const char* mtlsName(MtlsMode m) {
  switch (m) {
    case MtlsMode::kDisable:
      return "DISABLE";
    case MtlsMode::kPermissive:
      return "PERMISSIVE";
    case MtlsMode::kStrict:
      return "STRICT";
    case MtlsMode::kUnset:
      break;
  }
  return "UNSET";
}

const char* actionName(AuthzAction a) {
  switch (a) {
    case AuthzAction::kDeny:
      return "DENY";
    case AuthzAction::kAudit:
      return "AUDIT";
    case AuthzAction::kAllow:
      break;
  }
  return "ALLOW";
}

std::string selectorText(const std::optional<Labels>& sel) {
  if (!sel) return "";
  std::string out;
  for (const auto& [k, val] : *sel) out += (out.empty() ? "" : ",") + k + "=" + val;
  return out.empty() ? "{}" : out;
}

}  // namespace

Json policiesJson(const AgentView& v) {
  Json out = Json::array();
  if (!v.snapshot) return out;
  const Snapshot& s = *v.snapshot;
  for (const auto& p : s.peer_authentications) {
    out.push_back({{"kind", "PeerAuthentication"},
                   {"namespace", p.meta.ns},
                   {"name", p.meta.name},
                   {"scope", scopeName(p.scope())},
                   {"selector", selectorText(p.selector)},
                   {"action_or_mode", mtlsName(p.mode)},
                   {"rules", p.port_modes.size()},
                   {"applies_to", ""}});
  }
  for (const auto& p : s.authorization_policies) {
    out.push_back({{"kind", "AuthorizationPolicy"},
                   {"namespace", p.meta.ns},
                   {"name", p.meta.name},
                   {"scope", scopeName(p.scope())},
                   {"selector", selectorText(p.selector)},
                   {"action_or_mode", actionName(p.action)},
                   {"rules", p.rules.size()},
                   {"applies_to", ""}});
  }
  // Which local workloads each one governs.
  std::map<std::string, std::string> applies;  // "Kind ns/name" -> "pod1,pod2"
  for (const auto& pod : s.pods) {
    if (pod.node_name != v.status.node_name || !podEnrolled(s, pod)) continue;
    for (const auto* p : applicablePolicies(s, pod.meta.ns, pod.meta.labels)) {
      std::string& list = applies["AuthorizationPolicy " + p->meta.ns + "/" + p->meta.name];
      list += (list.empty() ? "" : ",") + pod.meta.ns + "/" + pod.meta.name;
    }
    auto m = effectiveMtls(s, pod.meta.ns, pod.meta.labels, 0);
    if (!m.policy.empty()) {
      std::string& list = applies["PeerAuthentication " + m.policy];
      list += (list.empty() ? "" : ",") + pod.meta.ns + "/" + pod.meta.name;
    }
  }
  for (auto& row : out) {
    std::string key = row["kind"].get<std::string>() + " " + row["namespace"].get<std::string>() +
                      "/" + row["name"].get<std::string>();
    if (auto it = applies.find(key); it != applies.end()) row["applies_to"] = it->second;
  }
  return out;
}

Json certsJson(const AgentView& v, int64_t now_unix) {
  Json out = Json::array();
  if (!v.desired || !v.identity) return out;
  const IdentityView& id = *v.identity;
  std::string chain;
  for (const auto& r : id.roots) chain += (chain.empty() ? "" : ", ") + r.subject + " #" + r.serial;
  for (const auto& [pid, p] : v.desired->pod_info) {
    if (p.netns_cookie == 0) continue;
    std::string spiffe = tls::spiffeId(id.trust_domain, p.ns, p.service_account);
    auto it = id.svids.find(spiffe);
    const tls::Svid* svid = it == id.svids.end() ? nullptr : it->second.get();
    std::string state;
    if (svid) {
      state = now_unix >= svid->info.not_after                 ? "expired"
              : now_unix >= WorkloadCerts::renewAt(svid->info) ? "renewing"
                                                               : "valid";
    } else if (auto e = id.issue_errors.find(spiffe); e != id.issue_errors.end()) {
      state = "not issued: " + e->second;
    } else {
      state = "not issued: " + (id.ca_error.empty() ? std::string("pending") : id.ca_error);
    }
    out.push_back({{"namespace", p.ns},
                   {"workload", p.name},
                   {"identity", spiffe},
                   {"state", state},
                   {"serial", svid ? svid->info.serial : ""},
                   {"not_before", svid ? unixToRfc3339(svid->info.not_before) : ""},
                   {"not_after", svid ? unixToRfc3339(svid->info.not_after) : ""},
                   {"renews_at", svid ? unixToRfc3339(WorkloadCerts::renewAt(svid->info)) : ""},
                   {"issuer", svid ? svid->info.issuer : ""},
                   {"trust_chain", chain}});
  }
  return out;
}

}  // namespace meshlet
