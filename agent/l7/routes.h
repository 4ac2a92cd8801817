#pragma once
// L7 routing tables: which service ports take the L7 path, and, for each, the VirtualService
// `http` routes compiled against the destinations they name (DestinationRule subsets and
// traffic policies resolved, endpoints listed). A pure function of the snapshot and the
// translated datapath, like translate(); the proxy matches requests against its result.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/ip.h"
#include "agent/l7/http1.h"
#include "agent/state/types.h"
#include "agent/translate/translate.h"

namespace meshlet::l7 {

// "name.ns.svc.cluster.local"
std::string serviceFqdn(std::string_view name, std::string_view ns);
// A host as written in a VirtualService or DestinationRule of namespace `ns`, made an FQDN:
// "reviews" -> "reviews.<ns>.svc.cluster.local", "reviews.prod" ->
// "reviews.prod.svc.cluster.local", FQDNs and wildcards ("*.example.com") unchanged.
std::string qualifyHost(std::string_view host, std::string_view ns);

// Why a service port takes the L7 path, "" when it does not: "VirtualService ns/name",
// "DestinationRule ns/name", "appProtocol http2", "port name http-web". A VirtualService
// counts when one of its hosts names the service and it has `http` routes; a DestinationRule
// when its host names the service and it sets HTTP settings (connectionPool.http,
// outlierDetection, a LEAST_REQUEST or consistentHash load balancer), at top level or for the
// port. appProtocol http, http2, grpc, kubernetes.io/h2c; names "http", "http-*", "http2",
// "http2-*", "grpc", "grpc-*" (Istio's protocol selection: appProtocol when set, else the
// name; case-insensitive).
// Never a UDP port or one whose appProtocol or name declares another protocol (tcp, tls,
// https, mongo, mysql, redis: Istio routes only HTTP ports), and a VirtualService only when
// one of its http routes can match on this port (no match, or a match with no port or this
// one).
std::string l7Reason(const Snapshot& s, const Service& svc, const ServicePort& port);

// The outlierDetection the DestinationRule of `svc` sets for `port` (its port-level setting
// replacing the whole policy's), nullopt when none. For ports on the kernel path (L4 outlier
// detection); subsets do not apply there.
std::optional<OutlierDetection> l4OutlierDetection(const Snapshot& s, const Service& svc,
                                                   const ServicePort& port);

// A ready endpoint of a destination.
struct L7Endpoint {
  IpAddr ip;
  int port = 0;
  std::string pod;   // "ns/name" of the target pod, "" when unknown
  std::string node;  // nodeName
  Labels labels;     // the target pod's labels (subsets select on them)
  bool tunnel = false;  // an enrolled pod on another node: reached over HBONE (mutual TLS)
  // "ip:port" ("[ip]:port" for IPv6), made once with the route table: the proxy's pool, load and
  // outlier keys (empty in endpoints made by hand: the proxy makes it then).
  std::string key;
};

// A destination as Istio's clusters name it: "outbound|<port>|<subset>|<fqdn>".
struct L7Cluster {
  std::string name;
  std::string host;  // FQDN
  std::string service_ns, service_name;
  int port = 0;                       // service port
  std::string subset;                 // "" for the whole service
  std::vector<L7Endpoint> endpoints;  // ready only, sorted by (ip, port): deterministic
  // Effective DestinationRule settings for this port and subset (subset over port-level over
  // top-level, per field group, as Istio merges them).
  LoadBalancerSettings lb;
  ConnectionPoolSettings pool;
  std::optional<OutlierDetection> outlier;
  std::string destination_rule;  // "ns/name" that supplied them, "" for none
  bool http2 = false;            // the port speaks HTTP/2 (appProtocol http2/grpc/h2c, name)
};

struct L7WeightedCluster {
  uint32_t cluster = 0;  // index into L7Config::clusters
  int weight = 100;
  const HeaderRules* headers = nullptr;  // the route destination's header rules (may be null)
};

struct L7Mirror {
  uint32_t cluster = 0;
  double percentage = 100.0;
};

// A StringMatch ready to evaluate: its regex compiled once (compileMatch), never per request.
struct L7StringMatcher {
  StringMatch::Kind kind = StringMatch::Kind::kExact;
  std::string value;
  bool ignore_case = false;  // exact and prefix only (a uri match with ignoreUriCase)
  // kRegex: the compiled pattern, matched against the whole value (std::regex_match, as Envoy
  // does); null when it does not compile, and then it matches nothing.
  std::shared_ptr<const std::regex> regex;

  bool matches(std::string_view s) const;
};

// A header or query parameter condition: `name` (headers lower-cased) and its matcher.
struct L7NamedMatcher {
  std::string name;
  L7StringMatcher match;
};

// One HttpMatch entry, compiled: the fields of the entry AND together; unset ones match all.
struct L7Match {
  std::optional<L7StringMatcher> uri, scheme, method, authority;
  std::vector<L7NamedMatcher> headers;          // each present and matching (kPresent: present)
  std::vector<L7NamedMatcher> without_headers;  // each absent or not matching
  std::vector<L7NamedMatcher> query_params;
  int port = 0;  // 0: any
  Labels source_labels;
  std::string source_namespace;
};

// Compiles one HttpMatch. A regex that does not compile (the sources reject those, so only a
// hand-built snapshot has one) leaves its matcher matching nothing; *error says which, when
// given.
L7Match compileMatch(const HttpMatch& m, std::string* error = nullptr);

struct L7Route {
  std::string virtual_service;      // "ns/name"; "" for the default route (no VirtualService)
  int index = -1;                   // position in the VirtualService's http list
  std::string name;                 // the route's name, or "<vs>/http[<index>]" when unnamed
  const HttpRoute* spec = nullptr;  // into the snapshot L7Config keeps; null for the default
  // spec->match compiled (compileL7 fills it, one entry per spec->match entry); matchRoute
  // reads this, not spec->match. Empty: the route matches every request.
  std::vector<L7Match> matches;
  std::vector<L7WeightedCluster> clusters;  // empty for redirect routes
  std::vector<L7Mirror> mirrors;
  std::optional<LocalRateLimit> rate_limit;  // meshlet.io/local-rate-limit.<name>
};

// The routes of one service port.
struct L7Service {
  std::string host;  // FQDN
  std::string ns, name;
  int port = 0;
  std::string reason;           // l7Reason()
  std::optional<LocalRateLimit> rate_limit;  // the Service's meshlet.io/local-rate-limit
  std::vector<L7Route> routes;  // VirtualService http routes in order; with no VirtualService,
                                // one default route to the service itself
};

struct L7Config {
  std::shared_ptr<const Snapshot> snapshot;  // keeps L7Route::spec valid
  std::map<uint32_t, L7Service> services;    // by svc_id (DesiredDatapath::service_info)
  std::vector<L7Cluster> clusters;
  // Problems that leave a route unusable but the rest in force, e.g. "VirtualService ns/vs
  // http[1]: destination reviews.ns.svc.cluster.local subset v3: no DestinationRule defines
  // it" (that destination then has no endpoints: requests to it get 503).
  std::vector<std::string> warnings;
};

// Builds the L7 configuration for every service port of `desired` whose ServiceInfo says l7.
std::shared_ptr<const L7Config> compileL7(std::shared_ptr<const Snapshot> snapshot,
                                          const DesiredDatapath& desired);

// A request as matching sees it.
struct RequestAttrs {
  std::string_view method;
  std::string_view path;   // without the query
  std::string_view query;  // without '?'
  std::string_view authority;
  const HeaderList* headers = nullptr;
  int port = 0;  // the service port dialled
  const Labels* source_labels = nullptr;
  std::string_view source_namespace;
};

// The first route whose match list is empty or has a matching entry (Istio: entries OR, the
// fields of one entry AND). *match_index: which entry matched (-1 for an empty list). nullptr:
// no route matches (the proxy answers 404, flag NR).
const L7Route* matchRoute(const L7Service& svc, const RequestAttrs& req,
                          int* match_index = nullptr);

// One of the route's weighted clusters for a uniform random number `r` in [0, 100).
const L7WeightedCluster* pickCluster(const L7Route& route, uint32_t r);

// Why the match entry `m` does not match `req`: "" when it matches (exactly when matchRoute
// takes that entry), else the first condition that fails, checked in matchRoute's order (port,
// source namespace, source labels, uri, scheme, method, authority, headers, withoutHeaders,
// queryParams), e.g. `uri: "/x" is not prefix "/api/"` or `header x-canary: absent (want exact
// "yes")`. For `meshlet routes --explain`; the proxy only calls matchRoute.
std::string explainMatch(const L7Match& m, const RequestAttrs& req);

// `m`'s conditions in a compact human form: `uri prefix /api/, header x-canary=yes`; "any" for
// an entry with none.
std::string describeMatch(const L7Match& m);

}  // namespace meshlet::l7
