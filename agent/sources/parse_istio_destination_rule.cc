// Parser for networking.istio.io DestinationRule (v1, v1beta1, v1alpha3).
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "agent/sources/istio_fields.h"
#include "agent/sources/k8s_objects.h"

namespace meshlet::file_source_internal {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

Status loadBalancer(const Reader& r, const Field& f, LoadBalancerSettings& out) {
  MESHLET_SOURCES_TRY(
      strictMap(r, f, true, {"simple", "consistentHash"},
                {{"localityLbSetting", "locality-aware load balancing is not implemented"},
                 {"warmupDurationSecs", "slow-start warm-up is not implemented"},
                 {"warmup", "slow-start warm-up is not implemented"}}));
  Field simple = f.child("simple"), hash = f.child("consistentHash");
  if (simple.present() && hash.present()) {
    return r.error(hash, "simple and consistentHash are mutually exclusive");
  }
  if (simple.present()) {
    std::string text;
    MESHLET_SOURCES_TRY(r.string(simple, text, true));
    if (text == "UNSPECIFIED") {
      out.policy = LbPolicy::kUnspecified;
    } else if (text == "ROUND_ROBIN") {
      out.policy = LbPolicy::kRoundRobin;
    } else if (text == "LEAST_REQUEST" || text == "LEAST_CONN") {
      out.policy = LbPolicy::kLeastRequest;  // LEAST_CONN: Istio's deprecated alias
    } else if (text == "RANDOM") {
      out.policy = LbPolicy::kRandom;
    } else if (text == "PASSTHROUGH") {
      out.policy = LbPolicy::kPassthrough;
    } else {
      return r.error(simple, quote(text) +
                                 " is not a valid policy (ROUND_ROBIN, LEAST_REQUEST, "
                                 "RANDOM or PASSTHROUGH)");
    }
    return Status::Ok();
  }
  if (!hash.present()) return Status::Ok();
  constexpr const char* kRing = "the hash ring is not configurable";
  MESHLET_SOURCES_TRY(strictMap(
      r, hash, true, {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"},
      {{"minimumRingSize", kRing}, {"ringHash", kRing}, {"maglev", kRing}}));
  int set = 0;
  for (const char* k : {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"}) {
    set += hash.child(k).present() ? 1 : 0;
  }
  if (set != 1) {
    return r.error(hash,
                   "exactly one of httpHeaderName, httpCookie, useSourceIp or "
                   "httpQueryParameterName must be set");
  }
  ConsistentHash ch;
  if (Field h = hash.child("httpHeaderName"); h.present()) {
    ch.kind = ConsistentHash::Kind::kHeader;
    MESHLET_SOURCES_TRY(r.string(h, ch.name, true));
    if (std::string why = checkHeaderName(ch.name); !why.empty()) {
      return r.error(h, quote(ch.name) + " " + why);
    }
    ch.name = lower(ch.name);
  } else if (Field q = hash.child("httpQueryParameterName"); q.present()) {
    ch.kind = ConsistentHash::Kind::kQueryParameter;
    MESHLET_SOURCES_TRY(r.string(q, ch.name, true));
    if (ch.name.empty()) return r.error(q, "must not be empty");
  } else if (Field s = hash.child("useSourceIp"); s.present()) {
    ch.kind = ConsistentHash::Kind::kSourceIp;
    bool on = false;
    MESHLET_SOURCES_TRY(r.boolean(s, on));
    if (!on) return r.error(s, "must be true when set (or set another hash key)");
  } else {
    Field c = hash.child("httpCookie");
    ch.kind = ConsistentHash::Kind::kCookie;
    MESHLET_SOURCES_TRY(strictMap(r, c, true, {"name", "path", "ttl"},
                                  {{"attributes", "cookie attributes are not implemented"}}));
    MESHLET_SOURCES_TRY(r.string(c.child("name"), ch.name, true));
    if (ch.name.empty()) return r.error(c.child("name"), "must not be empty");
    MESHLET_SOURCES_TRY(r.string(c.child("path"), ch.cookie_path, false));
    std::optional<int64_t> ttl;
    MESHLET_SOURCES_TRY(durationMs(r, c.child("ttl"), 0, ttl));
    ch.cookie_ttl_ms = ttl.value_or(0);
  }
  out.policy = LbPolicy::kConsistentHash;
  out.consistent_hash = std::move(ch);
  return Status::Ok();
}

Status connectionPool(const Reader& r, const Field& f, ConnectionPoolSettings& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"tcp", "http"}));
  Field tcp = f.child("tcp"), http = f.child("http");
  MESHLET_SOURCES_TRY(
      strictMap(r, tcp, false, {"maxConnections", "connectTimeout"},
                {{"tcpKeepalive", "TCP keepalive settings are not implemented"},
                 {"maxConnectionDuration", "a maximum connection duration is not implemented"},
                 {"idleTimeout", "a TCP idle timeout is not implemented (http.idleTimeout is)"}}));
  MESHLET_SOURCES_TRY(intRange(r, tcp.child("maxConnections"), 0, kInt32Max, out.max_connections));
  std::optional<int64_t> ms;
  MESHLET_SOURCES_TRY(durationMs(r, tcp.child("connectTimeout"), 1, ms));
  out.connect_timeout_ms = ms.value_or(0);
  MESHLET_SOURCES_TRY(
      strictMap(r, http, false,
                {"http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection",
                 "maxRetries", "idleTimeout", "h2UpgradePolicy", "useClientProtocol"},
                {{"maxConcurrentStreams", "a per-connection stream limit is not implemented"}}));
  // Their no-op values (common in real configurations) are accepted; anything else is refused.
  Field upgrade = http.child("h2UpgradePolicy");
  std::string policy = "DEFAULT";
  MESHLET_SOURCES_TRY(r.string(upgrade, policy, false));
  if (policy != "DEFAULT") {
    return r.error(upgrade, quote(policy) +
                                " is not supported: HTTP/2 upgrade of HTTP/1.1 connections is not "
                                "implemented (only DEFAULT)");
  }
  Field client_protocol = http.child("useClientProtocol");
  bool use_client = false;
  MESHLET_SOURCES_TRY(r.boolean(client_protocol, use_client));
  if (use_client) {
    return r.error(client_protocol,
                   "true is not supported: the upstream protocol follows the service port's "
                   "protocol (only false)");
  }
  MESHLET_SOURCES_TRY(intRange(r, http.child("http1MaxPendingRequests"), 0, kInt32Max,
                               out.http1_max_pending_requests));
  MESHLET_SOURCES_TRY(
      intRange(r, http.child("http2MaxRequests"), 0, kInt32Max, out.http2_max_requests));
  MESHLET_SOURCES_TRY(intRange(r, http.child("maxRequestsPerConnection"), 0, kInt32Max,
                               out.max_requests_per_connection));
  MESHLET_SOURCES_TRY(intRange(r, http.child("maxRetries"), 0, kInt32Max, out.max_retries));
  ms.reset();
  MESHLET_SOURCES_TRY(durationMs(r, http.child("idleTimeout"), 1, ms));
  out.idle_timeout_ms = ms.value_or(0);
  return Status::Ok();
}

Status outlierDetection(const Reader& r, const Field& f, OutlierDetection& out) {
  constexpr const char* kLocal = "local-origin failure tracking is not implemented";
  MESHLET_SOURCES_TRY(strictMap(r, f, true,
                                {"consecutive5xxErrors", "consecutiveGatewayErrors", "interval",
                                 "baseEjectionTime", "maxEjectionPercent", "minHealthPercent"},
                                {{"consecutiveErrors", "deprecated; use consecutive5xxErrors"},
                                 {"splitExternalLocalOriginErrors", kLocal},
                                 {"consecutiveLocalOriginFailures", kLocal}}));
  struct IntField {
    const char* key;
    int64_t max;
    std::optional<int>& target;
  };
  for (IntField i :
       {IntField{"consecutive5xxErrors", kInt32Max, out.consecutive_5xx_errors},
        IntField{"consecutiveGatewayErrors", kInt32Max, out.consecutive_gateway_errors},
        IntField{"maxEjectionPercent", 100, out.max_ejection_percent},
        IntField{"minHealthPercent", 100, out.min_health_percent}}) {
    Field v = f.child(i.key);
    if (!v.present()) continue;
    int n = 0;
    MESHLET_SOURCES_TRY(intRange(r, v, 0, i.max, n));
    i.target = n;
  }
  MESHLET_SOURCES_TRY(durationMs(r, f.child("interval"), 1, out.interval_ms));
  MESHLET_SOURCES_TRY(durationMs(r, f.child("baseEjectionTime"), 1, out.base_ejection_time_ms));
  return Status::Ok();
}

Status tlsSettings(const Reader& r, const Field& f, TlsMode& out) {
  constexpr const char* kOnlyMode =
      "only mode (DISABLE or ISTIO_MUTUAL) is supported; meshlet does not originate TLS with "
      "user-provided certificates";
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"mode"},
                                {{"clientCertificate", kOnlyMode},
                                 {"privateKey", kOnlyMode},
                                 {"caCertificates", kOnlyMode},
                                 {"credentialName", kOnlyMode},
                                 {"subjectAltNames", kOnlyMode},
                                 {"sni", kOnlyMode},
                                 {"insecureSkipVerify", kOnlyMode},
                                 {"caCrl", kOnlyMode}}));
  Field mode = f.child("mode");
  std::string text;
  MESHLET_SOURCES_TRY(r.string(mode, text, true));
  if (text == "DISABLE") {
    out = TlsMode::kDisable;
  } else if (text == "ISTIO_MUTUAL") {
    out = TlsMode::kIstioMutual;
  } else if (text == "SIMPLE" || text == "MUTUAL") {
    return r.error(mode, text +
                             " is not supported: meshlet does not originate TLS to "
                             "destinations outside the mesh (DISABLE or ISTIO_MUTUAL)");
  } else {
    return r.error(mode, quote(text) + " is not a valid mode (DISABLE or ISTIO_MUTUAL)");
  }
  return Status::Ok();
}

// The settings a port-level entry and a whole policy share.
template <typename Policy>
Status policyParts(const Reader& r, const Field& f, Policy& out) {
  if (f.child("loadBalancer").present()) {
    LoadBalancerSettings lb;
    MESHLET_SOURCES_TRY(loadBalancer(r, f.child("loadBalancer"), lb));
    out.load_balancer = std::move(lb);
  }
  if (f.child("connectionPool").present()) {
    ConnectionPoolSettings cp;
    MESHLET_SOURCES_TRY(connectionPool(r, f.child("connectionPool"), cp));
    out.connection_pool = cp;
  }
  if (f.child("outlierDetection").present()) {
    OutlierDetection od;
    MESHLET_SOURCES_TRY(outlierDetection(r, f.child("outlierDetection"), od));
    out.outlier_detection = od;
  }
  if (f.child("tls").present()) MESHLET_SOURCES_TRY(tlsSettings(r, f.child("tls"), out.tls));
  return Status::Ok();
}

Status trafficPolicy(const Reader& r, const Field& f, TrafficPolicy& out) {
  MESHLET_SOURCES_TRY(
      strictMap(r, f, true,
                {"loadBalancer", "connectionPool", "outlierDetection", "tls", "portLevelSettings"},
                {{"proxyProtocol", "PROXY protocol to upstreams is not implemented"},
                 {"tunnel", "tunnelling to upstreams is not implemented"},
                 {"retryBudget", "retry budgets are not implemented"}}));
  MESHLET_SOURCES_TRY(policyParts(r, f, out));
  Field ports = f.child("portLevelSettings");
  MESHLET_SOURCES_TRY(r.expectSeq(ports, false));
  for (size_t i = 0; i < ports.size(); ++i) {
    Field e = ports.element(i);
    MESHLET_SOURCES_TRY(strictMap(
        r, e, true, {"port", "loadBalancer", "connectionPool", "outlierDetection", "tls"}));
    PortTrafficPolicy p;
    Field port = e.child("port");
    MESHLET_SOURCES_TRY(strictMap(r, port, true, {"number"}));
    MESHLET_SOURCES_TRY(r.port(port.child("number"), p.port, true));
    for (size_t j = 0; j < out.port_level_settings.size(); ++j) {
      if (out.port_level_settings[j].port == p.port) {
        return r.error(port.child("number"), "duplicate port " + std::to_string(p.port) +
                                                 " (also " + ports.path() + "[" +
                                                 std::to_string(j) + "])");
      }
    }
    MESHLET_SOURCES_TRY(policyParts(r, e, p));
    out.port_level_settings.push_back(std::move(p));
  }
  return Status::Ok();
}

}  // namespace

Status parseDestinationRule(const Reader& r, const Field& root, const Origin& origin,
                            DestinationRule& out) {
  MESHLET_SOURCES_TRY(istioObject(r, root, origin, out.meta));
  Field spec = root.child("spec");
  MESHLET_SOURCES_TRY(strictMap(
      r, spec, true, {"host", "exportTo", "subsets", "trafficPolicy"},
      {{"workloadSelector", "DestinationRules scoped to client workloads are not implemented"}}));
  Field host = spec.child("host");
  MESHLET_SOURCES_TRY(r.string(host, out.host, true));
  if (std::string why = checkHost(out.host, true); !why.empty()) {
    return r.error(host, quote(out.host) + ": " + why);
  }
  MESHLET_SOURCES_TRY(exportTo(r, spec.child("exportTo"), out.export_to));
  if (spec.child("trafficPolicy").present()) {
    TrafficPolicy tp;
    MESHLET_SOURCES_TRY(trafficPolicy(r, spec.child("trafficPolicy"), tp));
    out.traffic_policy = std::move(tp);
  }
  Field subsets = spec.child("subsets");
  MESHLET_SOURCES_TRY(r.expectSeq(subsets, false));
  for (size_t i = 0; i < subsets.size(); ++i) {
    Field e = subsets.element(i);
    MESHLET_SOURCES_TRY(strictMap(r, e, true, {"name", "labels", "trafficPolicy"}));
    Subset s;
    Field name = e.child("name");
    MESHLET_SOURCES_TRY(r.string(name, s.name, true));
    if (std::string why = checkDns1123Label(s.name); !why.empty()) {
      return r.error(name, quote(s.name) + " is not a valid subset name: " + why);
    }
    for (size_t j = 0; j < out.subsets.size(); ++j) {
      if (out.subsets[j].name == s.name) {
        return r.error(name, "duplicate subset name " + quote(s.name) + " (also spec.subsets[" +
                                 std::to_string(j) + "])");
      }
    }
    MESHLET_SOURCES_TRY(r.labels(e.child("labels"), s.labels));
    if (e.child("trafficPolicy").present()) {
      TrafficPolicy tp;
      MESHLET_SOURCES_TRY(trafficPolicy(r, e.child("trafficPolicy"), tp));
      s.traffic_policy = std::move(tp);
    }
    out.subsets.push_back(std::move(s));
  }
  return Status::Ok();
}

}  // namespace meshlet::file_source_internal
