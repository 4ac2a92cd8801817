#pragma once
// Typed Istio resources in cluster state: security.istio.io AuthorizationPolicy and
// PeerAuthentication, networking.istio.io VirtualService and DestinationRule. The sources
// (agent/sources/parse_istio_*.cc) validate them strictly, so the fields here are already in
// the form enforcement uses: ports as ints, CIDRs parsed, durations in milliseconds,
// percentages as doubles, wildcard patterns split into kind + literal. Nothing is re-parsed
// later; regexes are validated at parse time and compiled by whoever evaluates them.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/common/ip.h"
#include "agent/state/meta.h"
#include "agent/state/rate_limit.h"

namespace meshlet {

// Istio's root namespace: a PeerAuthentication there without a selector is mesh-wide.
inline constexpr const char* kIstioRootNamespace = "istio-system";

// ---------------------------------------------------------------------------------------------
// Shared value types

// An AuthorizationPolicy string with Istio's wildcard rule: "*" (any value), "abc*" (prefix),
// "*abc" (suffix) or "abc" (exact). `value` holds the literal part without the '*'. Used for
// principals, namespaces, hosts, methods, paths and `when` values. Note for enforcement: Istio
// applies a pattern only to an attribute that is present, so `principals: ["*"]` means "any
// authenticated peer", not "anyone".
struct StringPattern {
  enum class Kind : uint8_t { kExact, kPrefix, kSuffix, kAny };
  Kind kind = Kind::kExact;
  std::string value;

  bool matches(std::string_view s) const {
    switch (kind) {
      case Kind::kAny:
        return true;
      case Kind::kPrefix:
        return s.substr(0, value.size()) == value;
      case Kind::kSuffix:
        return s.size() >= value.size() && s.substr(s.size() - value.size()) == value;
      case Kind::kExact:
        break;
    }
    return s == value;
  }
  bool operator==(const StringPattern&) const = default;
};

// An address block: "198.18.0.0/15" or a single address (prefix_len 32 or 128). Host bits
// after the prefix are kept as written (Istio allows them); `contains` ignores them.
struct Cidr {
  IpAddr addr;
  int prefix_len = 0;

  bool contains(const IpAddr& ip) const {
    if (ip.family != addr.family) return false;
    int full = prefix_len / 8, rest = prefix_len % 8;
    for (int i = 0; i < full; ++i) {
      if (ip.bytes[i] != addr.bytes[i]) return false;
    }
    if (rest == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (ip.bytes[full] & mask) == (addr.bytes[full] & mask);
  }
  bool operator==(const Cidr&) const = default;
};

// A VirtualService string match: {exact|prefix|regex}. kPresent is `{}` in headers and
// withoutHeaders (the header merely has to be present). Regexes were checked to compile with
// std::regex (ECMAScript) at parse time.
struct StringMatch {
  enum class Kind : uint8_t { kExact, kPrefix, kRegex, kPresent };
  Kind kind = Kind::kExact;
  std::string value;
  bool operator==(const StringMatch&) const = default;
};

// ---------------------------------------------------------------------------------------------
// security.istio.io

enum class MtlsMode : uint8_t { kUnset, kDisable, kPermissive, kStrict };

// Where a security policy applies: the whole mesh (root namespace, no selector), its namespace
// (no selector), or the workloads its selector matches.
enum class PolicyScope : uint8_t { kMesh, kNamespace, kWorkload };

inline PolicyScope policyScope(const ObjectMeta& meta, bool has_selector,
                               std::string_view root_namespace) {
  if (has_selector) return PolicyScope::kWorkload;
  return meta.ns == root_namespace ? PolicyScope::kMesh : PolicyScope::kNamespace;
}

// PeerAuthentication: scope follows from namespace and selector (see scope()).
struct PeerAuthentication {
  ObjectMeta meta;
  std::optional<Labels> selector;      // spec.selector.matchLabels; nullopt: no selector
  MtlsMode mode = MtlsMode::kUnset;    // spec.mtls.mode (UNSET: inherit from the parent scope)
  std::map<int, MtlsMode> port_modes;  // spec.portLevelMtls: port → mode (needs a selector)

  PolicyScope scope(std::string_view root_namespace = kIstioRootNamespace) const {
    return policyScope(meta, selector.has_value(), root_namespace);
  }
};

enum class AuthzAction : uint8_t { kAllow, kDeny, kAudit };

// rules[].from[].source. Each list is an OR of its entries; the lists AND together.
struct AuthzSource {
  std::vector<StringPattern> principals, not_principals;  // "cluster.local/ns/x/sa/y"
  std::vector<StringPattern> request_principals, not_request_principals;  // "iss/sub"
  std::vector<StringPattern> namespaces, not_namespaces;
  std::vector<Cidr> ip_blocks, not_ip_blocks;                // the peer address
  std::vector<Cidr> remote_ip_blocks, not_remote_ip_blocks;  // the original client (XFF)
};

// rules[].to[].operation.
struct AuthzOperation {
  std::vector<StringPattern> hosts, not_hosts;
  std::vector<int> ports, not_ports;
  std::vector<StringPattern> methods, not_methods;
  std::vector<StringPattern> paths, not_paths;
};

// rules[].when[]: key plus values/notValues, parsed by what the key compares.
struct AuthzCondition {
  enum class Key : uint8_t {
    kRequestHeader,         // request.headers[NAME]       (string patterns)
    kSourceIp,              // source.ip                   (CIDRs)
    kRemoteIp,              // remote.ip                   (CIDRs)
    kSourceNamespace,       // source.namespace            (string patterns)
    kSourcePrincipal,       // source.principal            (string patterns)
    kRequestAuthPrincipal,  // request.auth.principal      (string patterns)
    kRequestAuthAudiences,  // request.auth.audiences      (string patterns)
    kRequestAuthPresenter,  // request.auth.presenter      (string patterns)
    kRequestAuthClaims,     // request.auth.claims[a][b]   (string patterns)
    kDestinationIp,         // destination.ip              (CIDRs)
    kDestinationPort,       // destination.port            (ports)
    kConnectionSni,         // connection.sni              (string patterns)
  };
  Key key = Key::kRequestHeader;
  std::string key_text;            // as written, for messages and `meshlet policies`
  std::string header;              // kRequestHeader: the header name, lower-cased
  std::vector<std::string> claim;  // kRequestAuthClaims: the claim path ("a", "b")
  // Exactly one family is filled, by key: patterns, CIDRs or ports.
  std::vector<StringPattern> values, not_values;
  std::vector<Cidr> cidr_values, not_cidr_values;
  std::vector<int> port_values, not_port_values;
};

// One rule: matches when every present part matches. A rule with no from, to or when matches
// every request; within `from` (and `to`) any entry matching is enough.
struct AuthzRule {
  std::vector<AuthzSource> from;
  std::vector<AuthzOperation> to;
  std::vector<AuthzCondition> when;
};

struct AuthorizationPolicy {
  ObjectMeta meta;
  std::optional<Labels> selector;  // spec.selector.matchLabels; nullopt: whole namespace
                                   // (or the whole mesh in the root namespace)
  AuthzAction action = AuthzAction::kAllow;
  // Istio's semantics, kept as is: no rules with ALLOW matches nothing (an allow-nothing
  // policy, which denies everything it selects); a rule with nothing in it matches everything.
  std::vector<AuthzRule> rules;

  PolicyScope scope(std::string_view root_namespace = kIstioRootNamespace) const {
    return policyScope(meta, selector.has_value(), root_namespace);
  }
};

// ---------------------------------------------------------------------------------------------
// networking.istio.io

// A destination: host (short name or FQDN of a Service), optional subset and port.
struct RouteDestinationTarget {
  std::string host;
  std::string subset;  // empty: none
  int port = 0;        // 0: not set
};

struct HeaderOperations {
  std::map<std::string, std::string> set, add;  // header names lower-cased
  std::vector<std::string> remove;
};

struct HeaderRules {
  HeaderOperations request, response;
};

struct HttpMatch {
  std::string name;
  std::optional<StringMatch> uri, scheme, method, authority;
  std::map<std::string, StringMatch> headers;          // lower-cased names
  std::map<std::string, StringMatch> without_headers;  // lower-cased names
  std::map<std::string, StringMatch> query_params;     // exact or regex (or kPresent)
  int port = 0;                                        // 0: any
  Labels source_labels;
  std::string source_namespace;
  bool ignore_uri_case = false;
};

struct HttpRouteDestination {
  RouteDestinationTarget destination;
  int weight = 100;  // 0-100; a lone destination is 100; several sum to 100
  HeaderRules headers;
};

struct HttpRedirect {
  std::string uri, authority, scheme;  // empty: keep the request's
  int port = 0;                        // 0: keep
  int redirect_code = 301;
};

struct HttpRewrite {
  std::string uri;  // replaces the matched prefix (or the whole path for exact)
  std::string authority;
  // uriRegexRewrite: std::regex-checked `match`, and the substitution.
  std::optional<std::pair<std::string, std::string>> uri_regex;
};

// Retry conditions meshlet implements (retryOn).
enum class RetryOn : uint8_t {
  k5xx,
  kGatewayError,
  kConnectFailure,
  kReset,
  kRetriable4xx,
  kRefusedStream,
  kRetriableStatusCodes,
};

struct HttpRetry {
  int attempts = 0;  // 0: no retries
  std::optional<int64_t> per_try_timeout_ms;
  std::vector<RetryOn> retry_on;            // empty: meshlet's default
  std::vector<int> retriable_status_codes;  // numeric entries of retryOn
};

struct HttpFault {
  struct Delay {
    int64_t fixed_delay_ms = 0;
    double percentage = 100.0;  // absent: every request
  };
  struct Abort {
    int http_status = 0;
    double percentage = 100.0;
  };
  std::optional<Delay> delay;
  std::optional<Abort> abort;
};

struct HttpMirror {
  RouteDestinationTarget destination;
  double percentage = 100.0;
};

struct HttpRoute {
  std::string name;
  std::vector<HttpMatch> match;  // empty: matches every request
  std::vector<HttpRouteDestination> route;
  std::optional<HttpRedirect> redirect;  // exclusive with route
  std::optional<HttpRewrite> rewrite;
  std::optional<int64_t> timeout_ms;  // 0: no timeout
  std::optional<HttpRetry> retries;
  std::optional<HttpFault> fault;
  std::vector<HttpMirror> mirrors;  // `mirror` (+mirrorPercentage) and `mirrors`
  HeaderRules headers;
};

struct TcpMatch {
  int port = 0;  // 0: any
  Labels source_labels;
  std::string source_namespace;
};

struct TcpRouteDestination {
  RouteDestinationTarget destination;
  int weight = 100;
};

struct TcpRoute {
  std::vector<TcpMatch> match;
  std::vector<TcpRouteDestination> route;
};

struct VirtualService {
  ObjectMeta meta;
  std::vector<std::string> hosts;
  std::vector<std::string> export_to;  // empty: everywhere ("*")
  std::vector<HttpRoute> http;         // first match wins
  std::vector<TcpRoute> tcp;
  // meshlet.io/local-rate-limit.ROUTE annotations, by route name (agent/state/rate_limit.h).
  std::map<std::string, LocalRateLimit> route_rate_limits;
};

enum class LbPolicy : uint8_t {
  kUnspecified,  // not set: meshlet's default
  kRoundRobin,
  kLeastRequest,
  kRandom,
  kPassthrough,
  kConsistentHash,
};

struct ConsistentHash {
  enum class Kind : uint8_t { kHeader, kCookie, kSourceIp, kQueryParameter };
  Kind kind = Kind::kSourceIp;
  std::string name;           // header, cookie or query parameter name
  std::string cookie_path;    // kCookie
  int64_t cookie_ttl_ms = 0;  // kCookie; 0: session cookie
};

struct LoadBalancerSettings {
  LbPolicy policy = LbPolicy::kUnspecified;
  std::optional<ConsistentHash> consistent_hash;  // with kConsistentHash
};

// Connection pool limits; 0 means "not set" (Istio's default), as in the proto.
struct ConnectionPoolSettings {
  int max_connections = 0;
  int64_t connect_timeout_ms = 0;
  int http1_max_pending_requests = 0;
  int http2_max_requests = 0;
  int max_requests_per_connection = 0;
  int max_retries = 0;
  int64_t idle_timeout_ms = 0;
};

struct OutlierDetection {
  std::optional<int> consecutive_5xx_errors;      // 0 disables
  std::optional<int> consecutive_gateway_errors;  // 0 disables
  std::optional<int64_t> interval_ms;
  std::optional<int64_t> base_ejection_time_ms;
  std::optional<int> max_ejection_percent;  // 0-100
  std::optional<int> min_health_percent;    // 0-100
};

enum class TlsMode : uint8_t { kUnset, kDisable, kIstioMutual };

struct PortTrafficPolicy {
  int port = 0;
  std::optional<LoadBalancerSettings> load_balancer;
  std::optional<ConnectionPoolSettings> connection_pool;
  std::optional<OutlierDetection> outlier_detection;
  TlsMode tls = TlsMode::kUnset;
};

struct TrafficPolicy {
  std::optional<LoadBalancerSettings> load_balancer;
  std::optional<ConnectionPoolSettings> connection_pool;
  std::optional<OutlierDetection> outlier_detection;
  TlsMode tls = TlsMode::kUnset;
  std::vector<PortTrafficPolicy> port_level_settings;  // ports unique
};

struct Subset {
  std::string name;
  Labels labels;
  std::optional<TrafficPolicy> traffic_policy;
};

struct DestinationRule {
  ObjectMeta meta;
  std::string host;
  std::vector<std::string> export_to;
  std::optional<TrafficPolicy> traffic_policy;
  std::vector<Subset> subsets;  // names unique
};

}  // namespace meshlet
