#include "agent/telemetry/metrics.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include "agent/admin/views.h"
#include "agent/common/log.h"

namespace meshlet {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Istio's default buckets.
const prometheus::Histogram::BucketBoundaries kDurationBuckets = {
    0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};
const prometheus::Histogram::BucketBoundaries kBytesBuckets = {1,      10,  100, 1000, 10000,
                                                               100000, 1e6, 1e7, 1e8,  1e9};

// A pod named "namespace/name" (as BackendInfo.pod names it).
const Pod* findPodByKey(const Snapshot& s, const std::string& ns_name) {
  auto slash = ns_name.find('/');
  if (slash == std::string::npos) return nullptr;
  return findPod(s, ns_name.substr(0, slash), ns_name.substr(slash + 1));
}

struct Workload {
  std::string name = "unknown";
  std::string ns = "unknown";
  std::string app = "unknown";
  std::string version = "unknown";
  std::string principal = "unknown";
};

std::string labelOr(const Labels& l, const char* key, const std::string& fallback) {
  auto it = l.find(key);
  return it == l.end() || it->second.empty() ? fallback : it->second;  // as translate() does
}

Workload workloadOfPod(const Pod& p, const std::string& trust_domain = "cluster.local") {
  Workload w;
  w.ns = p.meta.ns;
  w.name =
      labelOr(p.meta.labels, "app.kubernetes.io/name", labelOr(p.meta.labels, "app", p.meta.name));
  w.app =
      labelOr(p.meta.labels, "app.kubernetes.io/name", labelOr(p.meta.labels, "app", "unknown"));
  w.version = labelOr(p.meta.labels, "app.kubernetes.io/version",
                      labelOr(p.meta.labels, "version", "unknown"));
  w.principal = "spiffe://" + trust_domain + "/ns/" + p.meta.ns + "/sa/" + p.service_account;
  return w;
}

Workload workloadOfPodId(uint32_t pod_id, const DesiredDatapath& info, const Snapshot& s,
                         const std::string& trust_domain = "cluster.local") {
  auto it = info.pod_info.find(pod_id);
  if (it == info.pod_info.end()) return {};
  if (const Pod* p = findPod(s, it->second.ns, it->second.name)) {
    return workloadOfPod(*p, trust_domain);
  }
  Workload w;
  w.name = it->second.workload;
  w.ns = it->second.ns;
  return w;
}

}  // namespace

std::map<std::string, std::string> istioTcpLabels(const ConnEntry& conn, const ConnEntry* peer,
                                                  const DesiredDatapath& info,
                                                  const Snapshot& snapshot) {
  const auto& v = conn.value;
  bool active = v.flags & MESHLET_CONN_ACTIVE;
  Workload self = workloadOfPodId(v.pod_id, info, snapshot);
  Workload other;
  if (v.peer_pod_id != MESHLET_NO_ID) other = workloadOfPodId(v.peer_pod_id, info, snapshot);

  uint32_t svc_id = v.svc_id;
  uint32_t backend_id = v.backend_id;
  if (!active && peer) {  // the client on this node knows which service it dialled
    svc_id = peer->value.svc_id;
    backend_id = peer->value.backend_id;
  }
  if (active && v.peer_pod_id == MESHLET_NO_ID && backend_id != MESHLET_NO_ID) {
    // A backend on another node: its pod is in the snapshot.
    auto b = info.backend_info.find(backend_id);
    if (b != info.backend_info.end()) {
      if (const Pod* p = findPodByKey(snapshot, info.name(b->second.pod))) other = workloadOfPod(*p);
    }
  }
  std::string svc_host = "unknown", svc_name = "unknown", svc_ns = "unknown";
  auto s = info.service_info.find(svc_id);
  if (svc_id != MESHLET_NO_ID && s != info.service_info.end()) {
    svc_name = s->second.name;
    svc_ns = s->second.ns;
    svc_host = svc_name + "." + svc_ns + ".svc.cluster.local";
  } else if (!active) {
    svc_host = "unknown";
  }
  const Workload& src = active ? self : other;
  const Workload& dst = active ? other : self;
  std::map<std::string, std::string> l = {
      {"reporter", active ? "source" : "destination"},
      {"source_workload", src.name},
      {"source_workload_namespace", src.ns},
      {"source_principal", "unknown"},  // no mTLS identity on the kernel path yet
      {"source_app", src.app},
      {"source_version", src.version},
      {"source_cluster", "Kubernetes"},
      {"destination_workload", dst.name},
      {"destination_workload_namespace", dst.ns},
      {"destination_principal", "unknown"},
      {"destination_app", dst.app},
      {"destination_version", dst.version},
      {"destination_service", svc_host},
      {"destination_service_name", svc_name},
      {"destination_service_namespace", svc_ns},
      {"destination_cluster", "Kubernetes"},
      {"request_protocol", "tcp"},
      {"response_flags", (v.flags & MESHLET_CONN_FAILED) ? "UF" : "-"},
      {"connection_security_policy", "none"},
      {"meshlet_path", pathName(v.path)},
  };
  return l;
}

std::map<std::string, std::string> istioTunnelLabels(const proxy::TunnelConn& c,
                                                     const Snapshot* snapshot) {
  auto workload = [&](const std::string& pod) {
    const Pod* p = snapshot ? findPodByKey(*snapshot, pod) : nullptr;
    return p ? workloadOfPod(*p) : Workload{};
  };
  const std::string& src_pod = c.inbound ? c.peer_pod : c.pod;
  const std::string& dst_pod = c.inbound ? c.pod : c.peer_pod;
  Workload src = workload(src_pod), dst = workload(dst_pod);
  src.principal = c.inbound ? c.peer_id : c.local_id;
  dst.principal = c.inbound ? c.local_id : c.peer_id;
  // "name.ns.svc.cluster.local"
  std::string svc_name = "unknown", svc_ns = "unknown";
  if (size_t dot = c.service.find('.'); dot != std::string::npos) {
    svc_name = c.service.substr(0, dot);
    size_t next = c.service.find('.', dot + 1);
    svc_ns = c.service.substr(dot + 1, next == std::string::npos ? next : next - dot - 1);
  }
  return {
      {"reporter", c.inbound ? "destination" : "source"},
      {"source_workload", src.name},
      {"source_workload_namespace", src.ns},
      {"source_principal", src.principal.empty() ? "unknown" : src.principal},
      {"source_app", src.app},
      {"source_version", src.version},
      {"source_cluster", "Kubernetes"},
      {"destination_workload", dst.name},
      {"destination_workload_namespace", dst.ns},
      {"destination_principal", dst.principal.empty() ? "unknown" : dst.principal},
      {"destination_app", dst.app},
      {"destination_version", dst.version},
      {"destination_service", c.service.empty() ? "unknown" : c.service},
      {"destination_service_name", svc_name},
      {"destination_service_namespace", svc_ns},
      {"destination_cluster", "Kubernetes"},
      {"request_protocol", "tcp"},
      {"response_flags", "-"},
      {"connection_security_policy", c.peer_id.empty() ? "none" : "mutual_tls"},
      {"meshlet_path", c.path},
  };
}

std::map<std::string, std::string> istioRequestLabels(const l7::RequestRecord& r,
                                                      const Snapshot* snapshot) {
  auto workload = [&](const std::string& pod) {
    const Pod* p = snapshot && !pod.empty() ? findPodByKey(*snapshot, pod) : nullptr;
    return p ? workloadOfPod(*p) : Workload{};
  };
  Workload src = workload(r.source_pod), dst = workload(r.upstream_pod);
  if (!r.source_principal.empty()) src.principal = r.source_principal;
  if (!r.mutual_tls) dst.principal = "unknown";  // no identity proven on a plaintext hop
  auto orUnknown = [](const std::string& s) { return s.empty() ? std::string("unknown") : s; };
  return {
      {"reporter", "source"},
      {"source_workload", src.name},
      {"source_workload_namespace", src.ns},
      {"source_principal", src.principal},
      {"source_app", src.app},
      {"source_version", src.version},
      {"source_cluster", "Kubernetes"},
      {"destination_workload", dst.name},
      {"destination_workload_namespace", dst.ns},
      {"destination_principal", dst.principal},
      {"destination_app", dst.app},
      {"destination_version", dst.version},
      {"destination_service", orUnknown(r.service_host)},
      {"destination_service_name", orUnknown(r.service_name)},
      {"destination_service_namespace", orUnknown(r.service_namespace)},
      {"destination_cluster", "Kubernetes"},
      {"request_protocol", r.protocol},
      {"response_code", std::to_string(r.status)},
      {"response_flags", r.flags},
      {"grpc_response_status", r.grpc_status},
      {"connection_security_policy", r.mutual_tls ? "mutual_tls" : "none"},
  };
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      tcp_opened_(BuildCounter()
                      .Name("istio_tcp_connections_opened_total")
                      .Help("TCP connections opened, counted from the kernel's connection table")
                      .Register(*registry_)),
      tcp_closed_(BuildCounter()
                      .Name("istio_tcp_connections_closed_total")
                      .Help("TCP connections closed")
                      .Register(*registry_)),
      tcp_sent_(BuildCounter()
                    .Name("istio_tcp_sent_bytes_total")
                    .Help("Bytes sent by the reporting side, spliced bytes included")
                    .Register(*registry_)),
      tcp_received_(BuildCounter()
                        .Name("istio_tcp_received_bytes_total")
                        .Help("Bytes received by the reporting side, spliced bytes included")
                        .Register(*registry_)),
      generation_(BuildGauge()
                      .Name("meshlet_config_generation")
                      .Help("Configuration generations applied to the datapath")
                      .Register(*registry_)),
      config_ok_(BuildGauge()
                     .Name("meshlet_config_ok")
                     .Help("1 when the last configuration change was accepted")
                     .Register(*registry_)),
      sync_seconds_(BuildGauge()
                        .Name("meshlet_config_last_sync_duration_seconds")
                        .Help("Time from reading a configuration change to the maps updated")
                        .Register(*registry_)),
      rejected_(BuildCounter()
                    .Name("meshlet_config_rejected_total")
                    .Help("Configuration changes rejected (the last good state stayed in force)")
                    .Register(*registry_)),
      map_entries_(BuildGauge()
                       .Name("meshlet_map_entries")
                       .Help("Entries in a BPF map")
                       .Register(*registry_)),
      map_capacity_(BuildGauge()
                        .Name("meshlet_map_capacity")
                        .Help("Capacity (max_entries) of a BPF map")
                        .Register(*registry_)),
      map_errors_(BuildCounter()
                      .Name("meshlet_map_update_errors_total")
                      .Help("Map updates the agent could not make (map full, kernel errors)")
                      .Register(*registry_)),
      spliced_(BuildCounter()
                   .Name("meshlet_spliced_connections_total")
                   .Help("Connections the kernel spliced socket-to-socket")
                   .Register(*registry_)),
      kernel_map_full_(BuildCounter()
                           .Name("meshlet_kernel_map_full_total")
                           .Help("Entries the kernel could not add because a map was full")
                           .Register(*registry_)),
      svc_connects_(BuildCounter()
                        .Name("meshlet_service_connects_total")
                        .Help("Connections to a service address balanced in the kernel")
                        .Register(*registry_)),
      svc_refused_(BuildCounter()
                       .Name("meshlet_service_refused_total")
                       .Help("Connections refused because the service had no ready endpoint")
                       .Register(*registry_)),
      svc_failed_(BuildCounter()
                      .Name("meshlet_service_failed_connects_total")
                      .Help("Balanced connections that never established")
                      .Register(*registry_)),
      outlier_ejections_(BuildCounter()
                             .Name("meshlet_outlier_ejections_total")
                             .Help("Backends of L4 services that outlier detection ejected from "
                                   "the kernel's balancer (connect failures)")
                             .Register(*registry_)),
      outlier_ejected_(BuildGauge()
                           .Name("meshlet_outlier_ejected_backends")
                           .Help("Backends of L4 services ejected by outlier detection now")
                           .Register(*registry_)),
      authz_denied_(BuildCounter()
                        .Name("meshlet_authz_denied_connections_total")
                        .Help("Connections an AuthorizationPolicy denied, by deciding policy "
                              "(\"-\" when ALLOW policies applied and none matched)")
                        .Register(*registry_)),
      mtls_rejected_(BuildCounter()
                         .Name("meshlet_mtls_rejected_connections_total")
                         .Help("Plaintext connections refused because the destination port's "
                               "PeerAuthentication mode is STRICT")
                         .Register(*registry_)),
      requests_(BuildCounter()
                    .Name("istio_requests_total")
                    .Help("HTTP requests the L7 path proxied")
                    .Register(*registry_)),
      request_duration_(BuildHistogram()
                            .Name("istio_request_duration_milliseconds")
                            .Help("Time from the request's head to the end of its response")
                            .Register(*registry_)),
      request_bytes_(BuildHistogram()
                         .Name("istio_request_bytes")
                         .Help("Request body sizes")
                         .Register(*registry_)),
      response_bytes_(BuildHistogram()
                          .Name("istio_response_bytes")
                          .Help("Response body sizes")
                          .Register(*registry_)) {
  // Unlabelled series exist from the start, at 0, so a scrape always shows them.
  rejected_.Add({});
  spliced_.Add({});
  generation_.Add({});
  config_ok_.Add({});
  sync_seconds_.Add({});
}

Status Metrics::serve(const std::string& addr) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(addr, 2);
  } catch (const std::exception& e) {
    return Error("cannot serve metrics on " + addr + ": " + e.what());
  }
  exposer_->RegisterCollectable(registry_);
  auto ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? 0 : ports.front();
  return Status::Ok();
}

void Metrics::collect(Datapath& dp, const DesiredDatapath& info, const Snapshot& snapshot) {
  auto conns = dp.readConns();
  if (conns.ok()) collect(dp, *conns, info, snapshot);
}

namespace {

std::map<std::string, std::string> serviceLabels(const ServiceInfo& s) {
  return {{"destination_service", s.name + "." + s.ns + ".svc.cluster.local"},
          {"destination_service_name", s.name},
          {"destination_service_namespace", s.ns},
          {"service_address", endpointString(s.cluster_ip, s.port)},
          {"protocol", s.protocol == Protocol::kUDP ? "udp" : "tcp"}};
}

}  // namespace

void Metrics::setOutliers(const DesiredDatapath& info,
                          const std::map<uint32_t, uint64_t>& ejections,
                          const std::set<BackendIdKey>& ejected) {
  for (const auto& [svc_id, n] : ejections) {
    uint64_t& last = last_ejections_[svc_id];
    if (n == last) continue;
    auto s = info.service_info.find(svc_id);
    if (s != info.service_info.end() && n > last) {
      outlier_ejections_.Add(serviceLabels(s->second)).Increment(static_cast<double>(n - last));
    }
    last = n;
  }
  std::map<uint32_t, size_t> now;
  for (const BackendIdKey& k : ejected) ++now[k.svc_id];
  for (auto& [labels, on] : ejected_series_) on = false;
  for (const auto& [svc_id, n] : now) {
    auto s = info.service_info.find(svc_id);
    if (s == info.service_info.end()) continue;
    auto labels = serviceLabels(s->second);
    outlier_ejected_.Add(labels).Set(static_cast<double>(n));
    ejected_series_[labels] = true;
  }
  for (auto& [labels, on] : ejected_series_) {
    if (!on) outlier_ejected_.Add(labels).Set(0);  // back to 0, the series stays
  }
}

void Metrics::collect(Datapath& dp, const std::vector<ConnEntry>& conns_in,
                      const DesiredDatapath& info, const Snapshot& snapshot) {
  const std::vector<ConnEntry>* conns = &conns_in;
  // The records by key, for a new record's peer (the other end of a same-node pair).
  std::vector<const ConnEntry*> by_key;
  by_key.reserve(conns->size());
  for (const auto& c : *conns) by_key.push_back(&c);
  auto key_less = [](const ConnEntry* a, const ConnEntry* b) {
    return BytesLess<meshlet_sock_key>()(a->key, b->key);
  };
  std::sort(by_key.begin(), by_key.end(), key_less);
  auto find_peer = [&](const meshlet_sock_key& k) -> const ConnEntry* {
    ConnEntry probe;
    probe.key = peerKey(k);
    auto it = std::lower_bound(by_key.begin(), by_key.end(), &probe, key_less);
    return it != by_key.end() && !key_less(&probe, *it) ? *it : nullptr;
  };

  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t now_ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
  decltype(seen_) next;
  std::vector<meshlet_sock_key> erase;  // records done with, deleted in batches at the end
  for (const auto& c : *conns) {
    if (c.value.path == MESHLET_PATH_TUNNEL || c.value.path == MESHLET_PATH_L7) {
      // The app's leg of a tunnelled or proxied connection: the mesh proxy reports it.
      if (c.value.flags & MESHLET_CONN_CLOSED) erase.push_back(c.key);
      continue;
    }
    if (c.value.flags & MESHLET_CONN_DENIED) {
      // Counted from the verdict's own counter (setKernelCounters); the record of the last
      // denied attempt of a pair stays a minute for `meshlet connections`.
      if (now_ns > c.value.end_ns + 60ull * 1000000000ull) erase.push_back(c.key);
      continue;
    }
    auto it = seen_.find(c.key);
    Seen s;
    if (it == seen_.end()) {
      s.series = kernelSeries(c, find_peer(c.key), info, snapshot);
      if (!(c.value.flags & MESHLET_CONN_FAILED)) s.series.opened->Increment();
    } else {
      s = it->second;
    }
    uint64_t sent = c.value.flags & MESHLET_CONN_SPLICED
                        ? std::max(c.value.bytes_sent, c.value.spliced_bytes)
                        : c.value.bytes_sent;
    uint64_t received = c.value.bytes_received;
    if (sent > s.sent) s.series.sent->Increment(static_cast<double>(sent - s.sent));
    if (received > s.received) {
      s.series.received->Increment(static_cast<double>(received - s.received));
    }
    s.sent = std::max(s.sent, sent);
    s.received = std::max(s.received, received);
    if (c.value.flags & MESHLET_CONN_CLOSED) {
      if (!(c.value.flags & MESHLET_CONN_FAILED)) s.series.closed->Increment();
      erase.push_back(c.key);
      continue;
    }
    next.emplace(c.key, std::move(s));
  }
  seen_ = std::move(next);  // entries the kernel evicted are forgotten
  dp.eraseConns(std::move(erase));
}

void Metrics::setConfig(uint64_t generation, bool ok, double sync_seconds) {
  generation_.Add({}).Set(static_cast<double>(generation));
  config_ok_.Add({}).Set(ok ? 1 : 0);
  if (ok) sync_seconds_.Add({}).Set(sync_seconds);
}

void Metrics::configRejected() {
  rejected_.Add({}).Increment();
  config_ok_.Add({}).Set(0);
}

void Metrics::mapUpdateError(const std::string& map) {
  map_errors_.Add({{"map", map}}).Increment();
}

void Metrics::setMaps(const std::vector<MapUsage>& usage) {
  for (const auto& u : usage) {
    map_entries_.Add({{"map", u.name}}).Set(static_cast<double>(u.entries));
    map_capacity_.Add({{"map", u.name}}).Set(static_cast<double>(u.capacity));
  }
}

void Metrics::setKernelCounters(Datapath& dp, const DesiredDatapath& info,
                                const Snapshot& snapshot) {
  auto g = dp.globalCounters();
  if (last_globals_.size() != g.size()) last_globals_.assign(g.size(), 0);
  auto bump = [&](prometheus::Family<prometheus::Counter>& f,
                  const std::map<std::string, std::string>& labels, uint64_t now, uint64_t& last) {
    auto& c = f.Add(labels);
    if (now > last) c.Increment(static_cast<double>(now - last));
    last = std::max(last, now);
  };
  bump(spliced_, {}, g[MESHLET_G_SPLICED], last_globals_[MESHLET_G_SPLICED]);
  bump(kernel_map_full_, {{"map", "meshlet_conns_v1"}}, g[MESHLET_G_CONNS_FULL],
       last_globals_[MESHLET_G_CONNS_FULL]);
  bump(kernel_map_full_, {{"map", "meshlet_origins_v1"}}, g[MESHLET_G_ORIGINS_FULL],
       last_globals_[MESHLET_G_ORIGINS_FULL]);
  bump(kernel_map_full_, {{"map", "meshlet_socks_v1"}}, g[MESHLET_G_SOCKS_FULL],
       last_globals_[MESHLET_G_SOCKS_FULL]);

  // Same-node denials, by verdict: labelled like the agent's own (tunnel) denials.
  std::map<std::tuple<uint32_t, uint32_t, uint16_t>, uint64_t> denials;
  for (const auto& [k, n] : dp.authzDenials()) {
    auto key = std::make_tuple(k.src_pod, k.dst_pod, k.port);
    denials[key] = n;
    uint64_t last = last_denials_[key];
    uint64_t delta = n >= last ? n - last : n;  // a rewritten verdict starts again at 0
    if (delta == 0) continue;
    auto v = info.authz.find(k);
    uint32_t policy = v == info.authz.end() ? MESHLET_NO_ID : v->second.policy;
    Workload src = workloadOfPodId(k.src_pod, info, snapshot, trust_domain_);
    Workload dst = workloadOfPodId(k.dst_pod, info, snapshot, trust_domain_);
    authz_denied_
        .Add({{"policy", authzPolicyName(info, policy).empty() ? "-" : authzPolicyName(info, policy)},
              {"source_principal", src.principal},
              {"destination_workload", dst.name},
              {"destination_workload_namespace", dst.ns}})
        .Increment(static_cast<double>(delta));
  }
  last_denials_ = std::move(denials);

  for (const auto& [id, s] : info.service_info) {
    SvcCounters now = dp.svcCounters(id);
    // Most services are idle: touch the (label-hashing) Prometheus families only on a change,
    // and keep no entry for a service whose counters are all still 0.
    auto last_it = last_svc_.find(id);
    const SvcCounters zero;
    const SvcCounters& seen = last_it == last_svc_.end() ? zero : last_it->second;
    if (now.connects + now.udp_msgs == seen.connects && now.no_backend == seen.no_backend &&
        now.failed_connects == seen.failed_connects) {
      continue;
    }
    auto& last = last_it == last_svc_.end() ? last_svc_[id] : last_it->second;
    std::map<std::string, std::string> l = {
        {"destination_service", s.name + "." + s.ns + ".svc.cluster.local"},
        {"destination_service_name", s.name},
        {"destination_service_namespace", s.ns},
        {"service_address", endpointString(s.cluster_ip, s.port)},
        {"protocol", s.protocol == Protocol::kUDP ? "udp" : "tcp"}};
    bump(svc_connects_, l, now.connects + now.udp_msgs, last.connects);
    bump(svc_refused_, l, now.no_backend, last.no_backend);
    bump(svc_failed_, l, now.failed_connects, last.failed_connects);
  }
}

Metrics::TcpSeries Metrics::kernelSeries(const ConnEntry& c, const ConnEntry* peer,
                                         const DesiredDatapath& info, const Snapshot& snapshot) {
  if (snapshot.generation != kernel_series_generation_ || kernel_series_.size() > 10000) {
    kernel_series_.clear();  // workload and service names come from the configuration
    kernel_series_generation_ = snapshot.generation;
  }
  // Everything istioTcpLabels reads from the record and its peer's.
  const auto& v = c.value;
  bool active = v.flags & MESHLET_CONN_ACTIVE;
  uint32_t svc_id = v.svc_id, backend_id = v.backend_id;
  if (!active && peer) {
    svc_id = peer->value.svc_id;
    backend_id = peer->value.backend_id;
  }
  // The backend names the other workload only for a client whose peer is not on this node.
  if (!active || v.peer_pod_id != MESHLET_NO_ID) backend_id = MESHLET_NO_ID;
  const uint32_t inputs[] = {v.pod_id, v.peer_pod_id, svc_id, backend_id,
                             (active ? 1u : 0u) | ((v.flags & MESHLET_CONN_FAILED) ? 2u : 0u) |
                                 static_cast<uint32_t>(v.path) << 8};
  std::string key(reinterpret_cast<const char*>(inputs), sizeof(inputs));
  auto it = kernel_series_.find(key);
  if (it != kernel_series_.end()) return it->second;
  auto labels = istioTcpLabels(c, peer, info, snapshot);
  TcpSeries series{&tcp_opened_.Add(labels), &tcp_closed_.Add(labels), &tcp_sent_.Add(labels),
                   &tcp_received_.Add(labels)};
  kernel_series_.emplace(std::move(key), series);
  return series;
}

// Called with tunnel_mu_ held.
Metrics::TcpSeries Metrics::tunnelSeries(const proxy::TunnelConn& c, const Snapshot* s) {
  uint64_t generation = s ? s->generation : 0;
  if (generation != series_generation_ || tunnel_series_.size() > 10000) {
    tunnel_series_.clear();  // workload names come from the snapshot
    series_generation_ = generation;
  }
  // Everything istioTunnelLabels reads from the connection.
  std::string key;
  for (const std::string* part :
       {&c.pod, &c.peer_pod, &c.local_id, &c.peer_id, &c.service, &c.path}) {
    key += *part;
    key += '\n';
  }
  key += c.inbound ? 'i' : 'o';
  auto it = tunnel_series_.find(key);
  if (it != tunnel_series_.end()) return it->second;
  auto labels = istioTunnelLabels(c, s);
  TcpSeries series{&tcp_opened_.Add(labels), &tcp_closed_.Add(labels), &tcp_sent_.Add(labels),
                   &tcp_received_.Add(labels)};
  tunnel_series_.emplace(std::move(key), series);
  return series;
}

proxy::TunnelEvents Metrics::tunnelEvents() {
  proxy::TunnelEvents ev;
  ev.opened = [this](const proxy::TunnelConn& c, const Snapshot* s) {
    std::lock_guard<std::mutex> l(tunnel_mu_);
    TcpSeries series = tunnelSeries(c, s);
    series.opened->Increment();
    tunnel_conns_[c.id] = series;
  };
  ev.bytes = [this](const proxy::TunnelConn& c, uint64_t sent, uint64_t received) {
    std::lock_guard<std::mutex> l(tunnel_mu_);
    auto it = tunnel_conns_.find(c.id);
    if (it == tunnel_conns_.end()) return;
    if (sent) it->second.sent->Increment(static_cast<double>(sent));
    if (received) it->second.received->Increment(static_cast<double>(received));
  };
  ev.closed = [this](const proxy::TunnelConn& c) {
    std::lock_guard<std::mutex> l(tunnel_mu_);
    auto it = tunnel_conns_.find(c.id);
    if (it == tunnel_conns_.end()) return;
    it->second.closed->Increment();
    tunnel_conns_.erase(it);
  };
  auto refusal = [](prometheus::Family<prometheus::Counter>& family) {
    return [&family](const proxy::TunnelConn& c, const Snapshot* s) {
      auto labels = istioTunnelLabels(c, s);
      family
          .Add({{"policy", c.policy_name.empty() ? "-" : c.policy_name},
                {"source_principal", labels["source_principal"]},
                {"destination_workload", labels["destination_workload"]},
                {"destination_workload_namespace", labels["destination_workload_namespace"]}})
          .Increment();
    };
  };
  ev.denied = refusal(authz_denied_);
  ev.rejected = refusal(mtls_rejected_);
  ev.request = [this](const l7::RequestRecord& r, const Snapshot* s) { request(r, s); };
  return ev;
}

void Metrics::request(const l7::RequestRecord& r, const Snapshot* s) {
  std::lock_guard<std::mutex> l(request_mu_);
  uint64_t generation = s ? s->generation : 0;
  if (generation != request_generation_ || request_series_.size() > 10000) {
    request_series_.clear();
    request_generation_ = generation;
  }
  // Everything istioRequestLabels reads from the record (into one buffer kept between calls).
  std::string& key = request_key_;
  key.clear();
  for (const std::string* part :
       {&r.source_pod, &r.source_principal, &r.upstream_pod, &r.service_host, &r.service_name,
        &r.service_namespace, &r.protocol, &r.flags, &r.grpc_status}) {
    key += *part;
    key += '\n';
  }
  key += std::to_string(r.status);
  key += r.mutual_tls ? 'm' : 'p';
  auto it = request_series_.find(key);
  if (it == request_series_.end()) {
    auto labels = istioRequestLabels(r, s);
    RequestSeries series{&requests_.Add(labels), &request_duration_.Add(labels, kDurationBuckets),
                         &request_bytes_.Add(labels, kBytesBuckets),
                         &response_bytes_.Add(labels, kBytesBuckets)};
    it = request_series_.emplace(key, series).first;
  }
  it->second.requests->Increment();
  it->second.duration->Observe(r.duration_ms);
  it->second.request_bytes->Observe(static_cast<double>(r.request_bytes));
  it->second.response_bytes->Observe(static_cast<double>(r.response_bytes));
}

}  // namespace meshlet
