// networking.istio.io VirtualService and DestinationRule through parseYaml: every field into
// its model value, Istio's documented shapes, and bad input rejected with the exact path.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "agent/sources/file_source.h"
#include "agent/translate/translate.h"

namespace meshlet {
namespace {

Snapshot parseOk(const std::string& text) {
  Snapshot s;
  Status st = parseYaml(text, "routes.yaml", s);
  EXPECT_TRUE(st.ok()) << st.error().message();
  return s;
}

std::string parseError(const std::string& text) {
  Snapshot s;
  Status st = parseYaml(text, "routes.yaml", s);
  EXPECT_FALSE(st.ok()) << "accepted:\n" << text;
  EXPECT_TRUE(s.virtual_services.empty() && s.destination_rules.empty());
  return st.ok() ? "" : st.error().message();
}

std::string vs(const std::string& spec, const std::string& version = "v1") {
  return "apiVersion: networking.istio.io/" + version +
         "\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop}\nspec: " + spec + "\n";
}

std::string dr(const std::string& spec, const std::string& version = "v1") {
  return "apiVersion: networking.istio.io/" + version +
         "\nkind: DestinationRule\nmetadata: {name: reviews, namespace: shop}\nspec: " + spec +
         "\n";
}

// A VirtualService with one HTTP route whose body is `route` (flow YAML, without braces).
std::string http(const std::string& route) {
  return vs("{hosts: [reviews], http: [{" + route + "}]}");
}

const std::string kRoute = "route: [{destination: {host: reviews}}]";

StringMatch exact(const char* v) { return {StringMatch::Kind::kExact, v}; }
StringMatch prefix(const char* v) { return {StringMatch::Kind::kPrefix, v}; }
StringMatch regex(const char* v) { return {StringMatch::Kind::kRegex, v}; }
StringMatch present() { return {StringMatch::Kind::kPresent, ""}; }

// The shape of Istio's "request routing" and "fault injection" task examples, every field set.
constexpr const char* kVirtualService = R"(apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
  generation: 2
  resourceVersion: "777"
  uid: 7e0b7c8f-0000-4000-8000-000000000001
spec:
  hosts:
  - reviews
  - reviews.shop.svc.cluster.local
  - "*.example.com"
  gateways: [mesh]
  exportTo: [".", "prod"]
  http:
  - name: jason
    match:
    - name: m1
      uri:
        prefix: /api/
      scheme: {exact: http}
      method: {exact: GET}
      authority: {regex: "reviews(:[0-9]{2,5})?(x{900}|y{900}|[a-z]{900})?"}
      headers:
        End-User: {exact: jason}
        x-present: {}
      withoutHeaders:
        x-debug: {prefix: "1"}
      queryParams:
        v: {exact: "2"}
        q: {regex: "^a+$"}
      port: 9080
      sourceLabels: {app: productpage}
      sourceNamespace: web
      ignoreUriCase: true
      gateways: [mesh]
    route:
    - destination:
        host: reviews
        subset: v2
        port: {number: 9080}
      weight: 75
      headers:
        request:
          set: {X-Version: v2}
    - destination: {host: reviews, subset: v3}
      weight: 25
    rewrite:
      uri: /v2/
      authority: reviews-v2
    timeout: 1.5s
    retries:
      attempts: 3
      perTryTimeout: 250ms
      retryOn: gateway-error,connect-failure, refused-stream,503
    fault:
      delay:
        fixedDelay: 7s
        percentage: {value: 0.1}
      abort:
        httpStatus: 500
        percentage: {value: 50}
    mirror:
      host: reviews
      subset: shadow
    mirrorPercentage: {value: 12.5}
    headers:
      request:
        set: {x-a: "1"}
        add: {x-b: "2"}
        remove: [X-Internal]
      response:
        remove: [server]
  - name: moved
    match: [{uri: {exact: /old}}]
    redirect:
      uri: /new
      authority: new.example.com
      port: 8443
      scheme: https
      redirectCode: 308
  - name: regex-rewrite
    match: [{uri: {regex: "^/service/([^/]+)(/.*)$"}}]
    route: [{destination: {host: reviews}}]
    rewrite:
      uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: "\\2/instance/\\1"}
    mirrors:
    - destination: {host: shadow}
      percentage: {value: 5}
    - destination: {host: shadow2}
    timeout: 0s
  - route: [{destination: {host: reviews, subset: v1}}]
  tcp:
  - match: [{port: 27017, sourceLabels: {app: client}, sourceNamespace: db}]
    route:
    - destination: {host: mongo, port: {number: 5555}}
      weight: 60
    - destination: {host: mongo-backup}
      weight: 40
  - route: [{destination: {host: mongo}}]
status: {}
)";

TEST(VirtualServiceParse, EveryField) {
  Snapshot s = parseOk(kVirtualService);
  ASSERT_EQ(s.virtual_services.size(), 1u);
  const VirtualService& v = s.virtual_services[0];
  EXPECT_EQ(v.meta.name, "reviews");
  EXPECT_EQ(v.meta.ns, "shop");
  EXPECT_EQ(v.meta.uid, "7e0b7c8f-0000-4000-8000-000000000001");
  EXPECT_EQ(v.hosts, (std::vector<std::string>{"reviews", "reviews.shop.svc.cluster.local",
                                               "*.example.com"}));
  EXPECT_EQ(v.export_to, (std::vector<std::string>{".", "prod"}));
  ASSERT_EQ(v.http.size(), 4u);

  const HttpRoute& h = v.http[0];
  EXPECT_EQ(h.name, "jason");
  ASSERT_EQ(h.match.size(), 1u);
  const HttpMatch& m = h.match[0];
  EXPECT_EQ(m.name, "m1");
  EXPECT_EQ(m.uri, prefix("/api/"));
  EXPECT_EQ(m.scheme, exact("http"));
  EXPECT_EQ(m.method, exact("GET"));
  EXPECT_EQ(m.authority, regex("reviews(:[0-9]{2,5})?(x{900}|y{900}|[a-z]{900})?"));
  EXPECT_EQ(m.headers, (std::map<std::string, StringMatch>{{"end-user", exact("jason")},
                                                           {"x-present", present()}}));
  EXPECT_EQ(m.without_headers, (std::map<std::string, StringMatch>{{"x-debug", prefix("1")}}));
  EXPECT_EQ(m.query_params,
            (std::map<std::string, StringMatch>{{"v", exact("2")}, {"q", regex("^a+$")}}));
  EXPECT_EQ(m.port, 9080);
  EXPECT_EQ(m.source_labels, (Labels{{"app", "productpage"}}));
  EXPECT_EQ(m.source_namespace, "web");
  EXPECT_TRUE(m.ignore_uri_case);

  ASSERT_EQ(h.route.size(), 2u);
  EXPECT_EQ(h.route[0].destination.host, "reviews");
  EXPECT_EQ(h.route[0].destination.subset, "v2");
  EXPECT_EQ(h.route[0].destination.port, 9080);
  EXPECT_EQ(h.route[0].weight, 75);
  EXPECT_EQ(h.route[0].headers.request.set,
            (std::map<std::string, std::string>{{"x-version", "v2"}}));
  EXPECT_EQ(h.route[1].destination.subset, "v3");
  EXPECT_EQ(h.route[1].destination.port, 0);
  EXPECT_EQ(h.route[1].weight, 25);
  ASSERT_TRUE(h.rewrite.has_value());
  EXPECT_EQ(h.rewrite->uri, "/v2/");
  EXPECT_EQ(h.rewrite->authority, "reviews-v2");
  EXPECT_FALSE(h.rewrite->uri_regex.has_value());
  EXPECT_EQ(h.timeout_ms, 1500);
  ASSERT_TRUE(h.retries.has_value());
  EXPECT_EQ(h.retries->attempts, 3);
  EXPECT_EQ(h.retries->per_try_timeout_ms, 250);
  EXPECT_EQ(h.retries->retry_on,
            (std::vector<RetryOn>{RetryOn::kGatewayError, RetryOn::kConnectFailure,
                                  RetryOn::kRefusedStream}));
  EXPECT_EQ(h.retries->retriable_status_codes, std::vector<int>{503});
  ASSERT_TRUE(h.fault.has_value());
  ASSERT_TRUE(h.fault->delay.has_value());
  EXPECT_EQ(h.fault->delay->fixed_delay_ms, 7000);
  EXPECT_DOUBLE_EQ(h.fault->delay->percentage, 0.1);
  ASSERT_TRUE(h.fault->abort.has_value());
  EXPECT_EQ(h.fault->abort->http_status, 500);
  EXPECT_DOUBLE_EQ(h.fault->abort->percentage, 50);
  ASSERT_EQ(h.mirrors.size(), 1u);
  EXPECT_EQ(h.mirrors[0].destination.host, "reviews");
  EXPECT_EQ(h.mirrors[0].destination.subset, "shadow");
  EXPECT_DOUBLE_EQ(h.mirrors[0].percentage, 12.5);
  EXPECT_EQ(h.headers.request.set, (std::map<std::string, std::string>{{"x-a", "1"}}));
  EXPECT_EQ(h.headers.request.add, (std::map<std::string, std::string>{{"x-b", "2"}}));
  EXPECT_EQ(h.headers.request.remove, std::vector<std::string>{"x-internal"});
  EXPECT_EQ(h.headers.response.remove, std::vector<std::string>{"server"});

  const HttpRoute& moved = v.http[1];
  EXPECT_TRUE(moved.route.empty());
  ASSERT_TRUE(moved.redirect.has_value());
  EXPECT_EQ(moved.redirect->uri, "/new");
  EXPECT_EQ(moved.redirect->authority, "new.example.com");
  EXPECT_EQ(moved.redirect->port, 8443);
  EXPECT_EQ(moved.redirect->scheme, "https");
  EXPECT_EQ(moved.redirect->redirect_code, 308);
  EXPECT_FALSE(moved.timeout_ms.has_value());

  const HttpRoute& rr = v.http[2];
  ASSERT_TRUE(rr.rewrite.has_value() && rr.rewrite->uri_regex.has_value());
  EXPECT_EQ(rr.rewrite->uri_regex->first, "^/service/([^/]+)(/.*)$");
  EXPECT_EQ(rr.rewrite->uri_regex->second, "\\2/instance/\\1");
  ASSERT_EQ(rr.mirrors.size(), 2u);
  EXPECT_DOUBLE_EQ(rr.mirrors[0].percentage, 5);
  EXPECT_DOUBLE_EQ(rr.mirrors[1].percentage, 100);  // absent: every request
  EXPECT_EQ(rr.timeout_ms, 0);                      // 0s: no timeout
  EXPECT_EQ(rr.route.at(0).weight, 100);            // a lone destination takes everything

  const HttpRoute& fallback = v.http[3];
  EXPECT_TRUE(fallback.match.empty());
  EXPECT_EQ(fallback.route.at(0).destination.subset, "v1");

  ASSERT_EQ(v.tcp.size(), 2u);
  ASSERT_EQ(v.tcp[0].match.size(), 1u);
  EXPECT_EQ(v.tcp[0].match[0].port, 27017);
  EXPECT_EQ(v.tcp[0].match[0].source_labels, (Labels{{"app", "client"}}));
  EXPECT_EQ(v.tcp[0].match[0].source_namespace, "db");
  ASSERT_EQ(v.tcp[0].route.size(), 2u);
  EXPECT_EQ(v.tcp[0].route[0].destination.port, 5555);
  EXPECT_EQ(v.tcp[0].route[0].weight, 60);
  EXPECT_EQ(v.tcp[0].route[1].weight, 40);
  EXPECT_EQ(v.tcp[1].route.at(0).weight, 100);
}

TEST(VirtualServiceParse, EveryApiVersion) {
  for (const char* version : {"v1", "v1beta1", "v1alpha3"}) {
    Snapshot s = parseOk(vs("{hosts: [reviews], http: [{" + kRoute + "}]}", version) + "---\n" +
                         dr("{host: reviews}", version));
    EXPECT_EQ(s.virtual_services.size(), 1u) << version;
    EXPECT_EQ(s.destination_rules.size(), 1u) << version;
  }
}

TEST(VirtualServiceParse, Durations) {
  struct Case {
    const char* text;
    int64_t ms;
  } cases[] = {{"1s", 1000},     {"1.5s", 1500},     {"250ms", 250},    {"1m", 60000},
               {"1h", 3600000},  {"1h30m", 5400000}, {"0.001s", 1},     {"1000us", 1},
               {"2000000ns", 2}, {"+3s", 3000},      {"1m0.5s", 60500}, {"0", 0}};
  for (const Case& c : cases) {
    Snapshot s = parseOk(http(kRoute + ", timeout: \"" + c.text + "\""));
    ASSERT_EQ(s.virtual_services.size(), 1u) << c.text;
    EXPECT_EQ(s.virtual_services[0].http[0].timeout_ms, c.ms) << c.text;
  }
}

// The shape of Istio's DestinationRule reference examples, every field set.
constexpr const char* kDestinationRule = R"(apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
  annotations: {team: reviews}
  managedFields: [{manager: kubectl}]
spec:
  host: reviews.shop.svc.cluster.local
  exportTo: ["*"]
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 30ms
      http:
        http1MaxPendingRequests: 10
        http2MaxRequests: 1000
        maxRequestsPerConnection: 10
        maxRetries: 3
        idleTimeout: 1h
        h2UpgradePolicy: DEFAULT
        useClientProtocol: false
    outlierDetection:
      consecutive5xxErrors: 7
      consecutiveGatewayErrors: 0
      interval: 5m
      baseEjectionTime: 15m
      maxEjectionPercent: 50
      minHealthPercent: 10
    tls:
      mode: ISTIO_MUTUAL
    portLevelSettings:
    - port: {number: 80}
      loadBalancer: {simple: ROUND_ROBIN}
      tls: {mode: DISABLE}
    - port: {number: 9080}
      loadBalancer:
        consistentHash:
          httpCookie: {name: user, path: /, ttl: 0s}
      connectionPool: {tcp: {maxConnections: 5}}
      outlierDetection: {consecutive5xxErrors: 1}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: X-User}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true}}
  - name: v4
    trafficPolicy:
      loadBalancer: {consistentHash: {httpQueryParameterName: session}}
  - name: v5
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
  - name: v6
    trafficPolicy:
      loadBalancer: {simple: PASSTHROUGH}
)";

TEST(DestinationRuleParse, EveryField) {
  Snapshot s = parseOk(kDestinationRule);
  ASSERT_EQ(s.destination_rules.size(), 1u);
  const DestinationRule& d = s.destination_rules[0];
  EXPECT_EQ(d.meta.name, "reviews");
  EXPECT_EQ(d.meta.annotations.at("team"), "reviews");
  EXPECT_EQ(d.host, "reviews.shop.svc.cluster.local");
  EXPECT_EQ(d.export_to, std::vector<std::string>{"*"});
  ASSERT_TRUE(d.traffic_policy.has_value());
  const TrafficPolicy& tp = *d.traffic_policy;
  ASSERT_TRUE(tp.load_balancer.has_value());
  EXPECT_EQ(tp.load_balancer->policy, LbPolicy::kLeastRequest);
  ASSERT_TRUE(tp.connection_pool.has_value());
  EXPECT_EQ(tp.connection_pool->max_connections, 100);
  EXPECT_EQ(tp.connection_pool->connect_timeout_ms, 30);
  EXPECT_EQ(tp.connection_pool->http1_max_pending_requests, 10);
  EXPECT_EQ(tp.connection_pool->http2_max_requests, 1000);
  EXPECT_EQ(tp.connection_pool->max_requests_per_connection, 10);
  EXPECT_EQ(tp.connection_pool->max_retries, 3);
  EXPECT_EQ(tp.connection_pool->idle_timeout_ms, 3600000);
  ASSERT_TRUE(tp.outlier_detection.has_value());
  EXPECT_EQ(tp.outlier_detection->consecutive_5xx_errors, 7);
  EXPECT_EQ(tp.outlier_detection->consecutive_gateway_errors, 0);
  EXPECT_EQ(tp.outlier_detection->interval_ms, 300000);
  EXPECT_EQ(tp.outlier_detection->base_ejection_time_ms, 900000);
  EXPECT_EQ(tp.outlier_detection->max_ejection_percent, 50);
  EXPECT_EQ(tp.outlier_detection->min_health_percent, 10);
  EXPECT_EQ(tp.tls, TlsMode::kIstioMutual);
  ASSERT_EQ(tp.port_level_settings.size(), 2u);
  EXPECT_EQ(tp.port_level_settings[0].port, 80);
  EXPECT_EQ(tp.port_level_settings[0].load_balancer->policy, LbPolicy::kRoundRobin);
  EXPECT_EQ(tp.port_level_settings[0].tls, TlsMode::kDisable);
  const PortTrafficPolicy& p9080 = tp.port_level_settings[1];
  EXPECT_EQ(p9080.port, 9080);
  EXPECT_EQ(p9080.load_balancer->policy, LbPolicy::kConsistentHash);
  EXPECT_EQ(p9080.load_balancer->consistent_hash->kind, ConsistentHash::Kind::kCookie);
  EXPECT_EQ(p9080.load_balancer->consistent_hash->name, "user");
  EXPECT_EQ(p9080.load_balancer->consistent_hash->cookie_path, "/");
  EXPECT_EQ(p9080.load_balancer->consistent_hash->cookie_ttl_ms, 0);
  EXPECT_EQ(p9080.connection_pool->max_connections, 5);
  EXPECT_EQ(p9080.outlier_detection->consecutive_5xx_errors, 1);
  EXPECT_FALSE(p9080.outlier_detection->interval_ms.has_value());
  EXPECT_EQ(p9080.tls, TlsMode::kUnset);

  ASSERT_EQ(d.subsets.size(), 6u);
  EXPECT_EQ(d.subsets[0].name, "v1");
  EXPECT_EQ(d.subsets[0].labels, (Labels{{"version", "v1"}}));
  EXPECT_FALSE(d.subsets[0].traffic_policy.has_value());
  const ConsistentHash& header = *d.subsets[1].traffic_policy->load_balancer->consistent_hash;
  EXPECT_EQ(header.kind, ConsistentHash::Kind::kHeader);
  EXPECT_EQ(header.name, "x-user");
  EXPECT_EQ(d.subsets[2].traffic_policy->load_balancer->consistent_hash->kind,
            ConsistentHash::Kind::kSourceIp);
  const ConsistentHash& query = *d.subsets[3].traffic_policy->load_balancer->consistent_hash;
  EXPECT_EQ(query.kind, ConsistentHash::Kind::kQueryParameter);
  EXPECT_EQ(query.name, "session");
  EXPECT_TRUE(d.subsets[3].labels.empty());
  EXPECT_EQ(d.subsets[4].traffic_policy->load_balancer->policy, LbPolicy::kRandom);
  EXPECT_EQ(d.subsets[5].traffic_policy->load_balancer->policy, LbPolicy::kPassthrough);
}

TEST(IstioNetworking, ListsAndDuplicates) {
  Snapshot s = parseOk(R"(apiVersion: networking.istio.io/v1
kind: VirtualServiceList
items:
- metadata: {name: a, namespace: shop}
  spec: {hosts: [a], tcp: [{route: [{destination: {host: a}}]}]}
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1beta1
  kind: DestinationRule
  metadata: {name: a, namespace: shop}
  spec: {host: a}
- apiVersion: networking.istio.io/v1beta1
  kind: VirtualService
  metadata: {name: a, namespace: shop}
  spec: {hosts: [b], http: [{route: [{destination: {host: b}}]}]}
)");
  ASSERT_EQ(s.virtual_services.size(), 2u);
  ASSERT_EQ(s.destination_rules.size(), 1u);
  Status st = validateSnapshot(s);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(),
            "routes.yaml (document 2): VirtualService shop/a: duplicate object, also defined in "
            "routes.yaml (document 1)");
}

struct BadInput {
  const char* name;
  std::string yaml;
  std::string expected;  // the whole error message
};

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

const std::string kVS = "routes.yaml (document 1): VirtualService shop/reviews: ";
const std::string kDR = "routes.yaml (document 1): DestinationRule shop/reviews: ";
const std::string kH = kVS + "spec.http[0].";

const std::vector<BadInput> kBad = {
    // VirtualService shape.
    {"VsWrongVersion", vs("{}", "v2"),
     kVS +
         "apiVersion: \"networking.istio.io/v2\" is not valid for kind VirtualService (expected "
         "networking.istio.io/v1 or networking.istio.io/v1beta1 or networking.istio.io/v1alpha3)"},
    {"VsMissingSpec",
     "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, "
     "namespace: shop}\n",
     kVS + "spec: required field is missing"},
    {"VsUnknownField", vs("{hosts: [a], http: [], host: a}"), kVS + "spec.host: unknown field"},
    {"VsNoHosts", vs("{http: [{" + kRoute + "}]}"), kVS + "spec.hosts: required field is missing"},
    {"VsEmptyHosts", vs("{hosts: [], http: [{" + kRoute + "}]}"),
     kVS + "spec.hosts: must have at least one host"},
    {"VsStarHost", vs("{hosts: [\"*\"], http: [{" + kRoute + "}]}"),
     kVS + "spec.hosts[0]: \"*\" is only valid for gateways; a mesh VirtualService must name its "
           "hosts"},
    {"VsBadHost", vs("{hosts: [a, Bad_Host], http: [{" + kRoute + "}]}"),
     kVS + "spec.hosts[1]: \"Bad_Host\": not a valid host name: a DNS-1123 subdomain must "
           "consist of lower case alphanumeric characters, '-' or '.', and must start and end with "
           "an alphanumeric character"},
    {"VsMiddleWildcardHost", vs("{hosts: [\"a.*.com\"], http: [{" + kRoute + "}]}"),
     kVS + "spec.hosts[0]: \"a.*.com\": a wildcard is only allowed as a whole leading label "
           "(\"*.example.com\")"},
    {"VsDuplicateHost", vs("{hosts: [a, a], http: [{" + kRoute + "}]}"),
     kVS + "spec.hosts[1]: duplicate host \"a\""},
    {"VsGateway",
     vs("{hosts: [a], gateways: [mesh, istio-system/ingress], http: [{" + kRoute + "}]}"),
     kVS + "spec.gateways[1]: \"istio-system/ingress\" is not supported: meshlet has no ingress "
           "or egress gateway, so routes bound to a gateway would never apply; omit gateways or "
           "use \"mesh\""},
    {"VsTls", vs("{hosts: [a], tls: [{match: [{sniHosts: [a]}]}]}"),
     kVS + "spec.tls: is not supported: TLS (SNI) routes are not implemented; route TLS traffic "
           "with tcp routes"},
    {"VsNoRoutes", vs("{hosts: [a]}"), kVS + "spec: http or tcp routes are required"},
    {"VsBadExportTo", vs("{hosts: [a], exportTo: [\"~\", \".\"], http: [{" + kRoute + "}]}"),
     kVS + "spec.exportTo[0]: \"~\" (export nowhere) must be the only entry"},
    {"VsExportToBadNamespace", vs("{hosts: [a], exportTo: [Prod], http: [{" + kRoute + "}]}"),
     kVS + "spec.exportTo[0]: \"Prod\" is not \".\", \"*\", \"~\" or a namespace name: a DNS-1123 "
           "label must consist of lower case alphanumeric characters or '-', and must start and "
           "end with an alphanumeric character"},
    // HTTP routes.
    {"HttpUnknownField", http(kRoute + ", retry: {}"), kH + "retry: unknown field"},
    {"HttpCors", http(kRoute + ", corsPolicy: {allowOrigins: [{exact: a}]}"),
     kH + "corsPolicy: is not supported: CORS is not implemented by meshlet's HTTP proxy"},
    {"HttpDirectResponse", http("directResponse: {status: 503}"),
     kH + "directResponse: is not supported: use a fault abort with percentage 100"},
    {"HttpDelegate", http("delegate: {name: x}"),
     kH + "delegate: is not supported: VirtualService delegation is not implemented"},
    {"HttpNoRoute", http("name: x"), kH + "route: route or redirect is required"},
    {"HttpRouteAndRedirect", http(kRoute + ", redirect: {uri: /x}"),
     kH + "redirect: route and redirect are mutually exclusive"},
    {"HttpRewriteAndRedirect", http("redirect: {uri: /x}, rewrite: {uri: /y}"),
     kH + "rewrite: rewrite and redirect are mutually exclusive"},
    {"HttpDuplicateName",
     vs("{hosts: [a], http: [{name: x, " + kRoute + "}, {name: x, " + kRoute + "}]}"),
     kVS + "spec.http[1].name: duplicate route name \"x\""},
    {"WeightsDontSum",
     http("route: [{destination: {host: a}, weight: 50}, {destination: {host: b}, weight: 40}]"),
     kH + "route: weights sum to 90; with more than one destination they must sum to 100"},
    {"WeightsMissing", http("route: [{destination: {host: a}}, {destination: {host: b}}]"),
     kH + "route: weights sum to 0; with more than one destination they must sum to 100"},
    {"WeightOutOfRange", http("route: [{destination: {host: a}, weight: 101}]"),
     kH + "route[0].weight: 101 is out of range 0-100"},
    {"WeightNegative", http("route: [{destination: {host: a}, weight: -1}]"),
     kH + "route[0].weight: -1 is out of range 0-100"},
    {"DestinationNoHost", http("route: [{destination: {subset: v1}}]"),
     kH + "route[0].destination.host: required field is missing"},
    {"DestinationWildcardHost", http("route: [{destination: {host: \"*.a.com\"}}]"),
     kH + "route[0].destination.host: \"*.a.com\": wildcards are not allowed here"},
    {"DestinationBadSubset", http("route: [{destination: {host: a, subset: V1}}]"),
     kH + "route[0].destination.subset: \"V1\" is not a valid subset name: a DNS-1123 label must "
          "consist of lower case alphanumeric characters or '-', and must start and end with an "
          "alphanumeric character"},
    {"DestinationBadPort", http("route: [{destination: {host: a, port: {number: 0}}}]"),
     kH + "route[0].destination.port.number: 0 is out of range 1-65535"},
    {"DestinationPortName", http("route: [{destination: {host: a, port: {name: http}}}]"),
     kH + "route[0].destination.port.name: unknown field"},
    {"RouteUnknownField", http("route: [{destination: {host: a}, mirror: {}}]"),
     kH + "route[0].mirror: unknown field"},
    // Matches.
    {"MatchUnknownField", http("match: [{path: {exact: /}}], " + kRoute),
     kH + "match[0].path: unknown field"},
    {"MatchUriTwoKinds", http("match: [{uri: {exact: /, prefix: /}}], " + kRoute),
     kH + "match[0].uri: only one of exact, prefix or regex may be set"},
    {"MatchUriEmpty", http("match: [{uri: {}}], " + kRoute),
     kH + "match[0].uri: one of exact, prefix or regex is required"},
    {"MatchUriUnknownKind", http("match: [{uri: {suffix: .html}}], " + kRoute),
     kH + "match[0].uri.suffix: unknown field"},
    {"MatchBadRegex", http("match: [{uri: {regex: \"(unclosed\"}}], " + kRoute),
     kH + "match[0].uri.regex: \"(unclosed\" is not a valid regular expression: "},
    {"MatchRegexTooManyRepeats", http("match: [{uri: {regex: \"/a{2,50000}\"}}], " + kRoute),
     kH + "match[0].uri.regex: \"/a{2,50000}\" is too large once its counted repetitions are "
          "expanded (more than 10000 steps)"},
    {"MatchRegexNestedRepeats", http("match: [{uri: {regex: \"((a{30}){30}){30}\"}}], " + kRoute),
     kH + "match[0].uri.regex: \"((a{30}){30}){30}\" is too large once its counted repetitions "
          "are expanded (more than 10000 steps)"},
    {"MatchRegexTooLong",
     http("match: [{headers: {x: {regex: \"" + std::string(1025, 'a') + "\"}}}], " + kRoute),
     kH + "match[0].headers[\"x\"].regex: \"" + std::string(1025, 'a') +
         "\" is longer than 1024 characters"},
    {"MatchBadHeaderName", http("match: [{headers: {\"bad header\": {exact: a}}}], " + kRoute),
     kH + "match[0].headers[\"bad header\"]: \"bad header\" is not a valid HTTP header name"},
    {"MatchQueryPrefix", http("match: [{queryParams: {v: {prefix: a}}}], " + kRoute),
     kH + "match[0].queryParams[\"v\"].prefix: prefix matching of query parameters is not "
          "supported (as in Istio); use exact or regex"},
    {"MatchBadPort", http("match: [{port: 70000}], " + kRoute),
     kH + "match[0].port: 70000 is out of range 1-65535"},
    {"MatchGateway", http("match: [{gateways: [my-gw]}], " + kRoute),
     kH + "match[0].gateways[0]: \"my-gw\" is not supported: meshlet has no ingress or egress "
          "gateway, so routes bound to a gateway would never apply; omit gateways or use \"mesh\""},
    {"MatchIgnoreUriCaseNotBool", http("match: [{ignoreUriCase: maybe}], " + kRoute),
     kH + "match[0].ignoreUriCase: expected true or false, got \"maybe\""},
    {"MatchStatPrefix", http("match: [{statPrefix: x}], " + kRoute),
     kH + "match[0].statPrefix: is not supported: per-route stats prefixes are not implemented"},
    // Redirect, rewrite.
    {"RedirectBadCode", http("redirect: {uri: /x, redirectCode: 200}"),
     kH + "redirect.redirectCode: 200 is not a redirect status (301, 302, 303, 307 or 308)"},
    {"RedirectBadScheme", http("redirect: {scheme: ftp}"),
     kH + "redirect.scheme: \"ftp\" is not a valid scheme (http or https)"},
    {"RedirectDerivePort", http("redirect: {derivePort: FROM_REQUEST_PORT}"),
     kH + "redirect.derivePort: is not supported: set port explicitly"},
    {"RewriteBoth", http(kRoute + ", rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}"),
     kH + "rewrite.uriRegexRewrite: uri and uriRegexRewrite are mutually exclusive"},
    {"RewriteRegexMissingRewrite", http(kRoute + ", rewrite: {uriRegexRewrite: {match: a}}"),
     kH + "rewrite.uriRegexRewrite.rewrite: required field is missing"},
    {"RewriteBadRegex", http(kRoute + ", rewrite: {uriRegexRewrite: {match: \"[\", rewrite: b}}"),
     kH + "rewrite.uriRegexRewrite.match: \"[\" is not a valid regular expression: "},
    // Durations, retries, faults, mirrors.
    {"TimeoutNoUnit", http(kRoute + ", timeout: 10"),
     kH + "timeout: \"10\": missing unit (ns, us, ms, s, m or h)"},
    {"TimeoutBadUnit", http(kRoute + ", timeout: 10d"),
     kH + "timeout: \"10d\": unknown unit \"d\" (ns, us, ms, s, m or h)"},
    {"TimeoutNegative", http(kRoute + ", timeout: -1s"),
     kH + "timeout: \"-1s\": must not be negative"},
    {"TimeoutSubMillisecond", http(kRoute + ", timeout: 1500us"),
     kH + "timeout: \"1500us\": only whole milliseconds are supported"},
    {"TimeoutGarbage", http(kRoute + ", timeout: fast"),
     kH +
         "timeout: \"fast\": expected a duration such as \"250ms\", \"1.5s\", \"1m\" or \"1h30m\""},
    {"RetriesBadCondition", http(kRoute + ", retries: {attempts: 2, retryOn: \"5xx,timeout\"}"),
     kH + "retries.retryOn: \"timeout\" is not a supported retry condition (5xx, gateway-error, "
          "connect-failure, reset, retriable-4xx, refused-stream, retriable-status-codes or an "
          "HTTP status code)"},
    {"RetriesGrpcCondition", http(kRoute + ", retries: {attempts: 2, retryOn: unavailable}"),
     kH + "retries.retryOn: gRPC retry condition \"unavailable\" is not supported"},
    {"RetriesBadCode", http(kRoute + ", retries: {attempts: 2, retryOn: \"5xx,600\"}"),
     kH + "retries.retryOn: \"600\" is not an HTTP status code (100-599)"},
    {"RetriesEmptyCondition", http(kRoute + ", retries: {attempts: 2, retryOn: \"5xx,,reset\"}"),
     kH + "retries.retryOn: \"5xx,,reset\": empty retry condition"},
    {"RetriesNegative", http(kRoute + ", retries: {attempts: -1}"),
     kH + "retries.attempts: -1 is out of range 0-2147483647"},
    {"RetriesPerTryZero", http(kRoute + ", retries: {attempts: 1, perTryTimeout: 0s}"),
     kH + "retries.perTryTimeout: \"0s\": must be at least 1ms"},
    {"RetriesRemoteLocalities", http(kRoute + ", retries: {retryRemoteLocalities: true}"),
     kH + "retries.retryRemoteLocalities: is not supported: locality-aware retries are not "
          "implemented"},
    {"FaultEmpty", http(kRoute + ", fault: {}"), kH + "fault: delay or abort must be set"},
    {"FaultDelayMissing", http(kRoute + ", fault: {delay: {percentage: {value: 1}}}"),
     kH + "fault.delay.fixedDelay: required field is missing"},
    {"FaultDelayPercent", http(kRoute + ", fault: {delay: {fixedDelay: 1s, percent: 10}}"),
     kH + "fault.delay.percent: is not supported: the deprecated integer percent; use "
          "percentage.value"},
    {"FaultPercentOutOfRange",
     http(kRoute + ", fault: {delay: {fixedDelay: 1s, percentage: {value: 100.5}}}"),
     kH + "fault.delay.percentage.value: 100.5 is out of range 0-100"},
    {"FaultPercentNotANumber",
     http(kRoute + ", fault: {delay: {fixedDelay: 1s, percentage: {value: \"10\"}}}"),
     kH + "fault.delay.percentage.value: expected a number, got string \"10\""},
    {"FaultAbortStatus", http(kRoute + ", fault: {abort: {httpStatus: 99}}"),
     kH + "fault.abort.httpStatus: 99 is out of range 200-599"},
    {"FaultAbortGrpc", http(kRoute + ", fault: {abort: {grpcStatus: UNAVAILABLE}}"),
     kH + "fault.abort.grpcStatus: is not supported: only httpStatus aborts are implemented"},
    {"MirrorAndMirrors", http(kRoute + ", mirror: {host: a}, mirrors: [{destination: {host: b}}]"),
     kH + "mirrors: mirror and mirrors are mutually exclusive"},
    {"MirrorPercentageAlone", http(kRoute + ", mirrorPercentage: {value: 5}"),
     kH + "mirrorPercentage: only valid with mirror"},
    {"MirrorPercentDeprecated", http(kRoute + ", mirror: {host: a}, mirrorPercent: 5"),
     kH + "mirrorPercent: is not supported: the deprecated integer percent; use "
          "mirrorPercentage.value"},
    {"HeadersBadName", http(kRoute + ", headers: {request: {set: {\"a:b\": c}}}"),
     kH + "headers.request.set[\"a:b\"]: \"a:b\" is not a valid HTTP header name"},
    {"HeadersUnknownOp", http(kRoute + ", headers: {request: {append: {a: b}}}"),
     kH + "headers.request.append: unknown field"},
    // TCP routes.
    {"TcpNoRoute", vs("{hosts: [a], tcp: [{match: [{port: 80}]}]}"),
     kVS + "spec.tcp[0].route: required field is missing"},
    {"TcpSubnets",
     vs("{hosts: [a], tcp: [{match: [{destinationSubnets: [198.18.0.0/16]}], "
        "route: [{destination: {host: a}}]}]}"),
     kVS + "spec.tcp[0].match[0].destinationSubnets: is not supported: match on port (and "
           "source) only"},
    {"TcpRouteHeaders", vs("{hosts: [a], tcp: [{route: [{destination: {host: a}, headers: {}}]}]}"),
     kVS + "spec.tcp[0].route[0].headers: unknown field"},
    {"TcpWeights",
     vs("{hosts: [a], tcp: [{route: [{destination: {host: a}, weight: 10}, "
        "{destination: {host: b}, weight: 10}]}]}"),
     kVS + "spec.tcp[0].route: weights sum to 20; with more than one destination they must sum "
           "to 100"},
    // DestinationRule.
    {"DrNoHost", dr("{subsets: []}"), kDR + "spec.host: required field is missing"},
    {"DrBadHost", dr("{host: \"re views\"}"),
     kDR + "spec.host: \"re views\": not a valid host name: a DNS-1123 subdomain must consist of "
           "lower case alphanumeric characters, '-' or '.', and must start and end with an "
           "alphanumeric character"},
    {"DrUnknownField", dr("{host: a, trafficPolicies: {}}"),
     kDR + "spec.trafficPolicies: unknown field"},
    {"DrWorkloadSelector", dr("{host: a, workloadSelector: {matchLabels: {app: a}}}"),
     kDR + "spec.workloadSelector: is not supported: DestinationRules scoped to client workloads "
           "are not implemented"},
    {"DrDuplicateSubset", dr("{host: a, subsets: [{name: v1}, {name: v2}, {name: v1}]}"),
     kDR + "spec.subsets[2].name: duplicate subset name \"v1\" (also spec.subsets[0])"},
    {"DrSubsetNoName", dr("{host: a, subsets: [{labels: {version: v1}}]}"),
     kDR + "spec.subsets[0].name: required field is missing"},
    {"DrSubsetBadName", dr("{host: a, subsets: [{name: V1}]}"),
     kDR + "spec.subsets[0].name: \"V1\" is not a valid subset name: a DNS-1123 label must "
           "consist of lower case alphanumeric characters or '-', and must start and end with an "
           "alphanumeric character"},
    {"DrSubsetBadLabel", dr("{host: a, subsets: [{name: v1, labels: {version: \"v 1\"}}]}"),
     kDR + "spec.subsets[0].labels[\"version\"]: invalid label value \"v 1\": must consist of "
           "alphanumeric characters, '-', '_' or '.'"},
    {"DrBadSimple", dr("{host: a, trafficPolicy: {loadBalancer: {simple: LEAST}}}"),
     kDR + "spec.trafficPolicy.loadBalancer.simple: \"LEAST\" is not a valid policy "
           "(ROUND_ROBIN, LEAST_REQUEST, RANDOM or PASSTHROUGH)"},
    {"DrSimpleAndHash",
     dr("{host: a, trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: "
        "true}}}}"),
     kDR + "spec.trafficPolicy.loadBalancer.consistentHash: simple and consistentHash are "
           "mutually exclusive"},
    {"DrHashTwoKeys",
     dr("{host: a, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, "
        "httpHeaderName: x}}}}"),
     kDR + "spec.trafficPolicy.loadBalancer.consistentHash: exactly one of httpHeaderName, "
           "httpCookie, useSourceIp or httpQueryParameterName must be set"},
    {"DrHashSourceIpFalse",
     dr("{host: a, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: false}}}}"),
     kDR + "spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp: must be true when set (or "
           "set another hash key)"},
    {"DrHashRing",
     dr("{host: a, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, "
        "minimumRingSize: 1024}}}}"),
     kDR + "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize: is not supported: the "
           "hash ring is not configurable"},
    {"DrCookieNoName",
     dr("{host: a, trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: 1s}}}}}"),
     kDR + "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: required field is "
           "missing"},
    {"DrLocality", dr("{host: a, trafficPolicy: {loadBalancer: {localityLbSetting: {}}}}"),
     kDR + "spec.trafficPolicy.loadBalancer.localityLbSetting: is not supported: locality-aware "
           "load balancing is not implemented"},
    {"DrPoolNegative",
     dr("{host: a, trafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}}"),
     kDR + "spec.trafficPolicy.connectionPool.tcp.maxConnections: -1 is out of range "
           "0-2147483647"},
    {"DrPoolBadTimeout",
     dr("{host: a, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 0ms}}}}"),
     kDR + "spec.trafficPolicy.connectionPool.tcp.connectTimeout: \"0ms\": must be at least 1ms"},
    {"DrPoolUnknown", dr("{host: a, trafficPolicy: {connectionPool: {http: {maxRequests: 1}}}}"),
     kDR + "spec.trafficPolicy.connectionPool.http.maxRequests: unknown field"},
    {"DrPoolH2Upgrade",
     dr("{host: a, trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}}"),
     kDR + "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: \"UPGRADE\" is not "
           "supported: HTTP/2 upgrade of HTTP/1.1 connections is not implemented (only DEFAULT)"},
    {"DrPoolUseClientProtocol",
     dr("{host: a, trafficPolicy: {connectionPool: {http: {useClientProtocol: true}}}}"),
     kDR + "spec.trafficPolicy.connectionPool.http.useClientProtocol: true is not supported: the "
           "upstream protocol follows the service port's protocol (only false)"},
    {"DrOutlierPercent",
     dr("{host: a, trafficPolicy: {outlierDetection: {maxEjectionPercent: 101}}}"),
     kDR + "spec.trafficPolicy.outlierDetection.maxEjectionPercent: 101 is out of range 0-100"},
    {"DrOutlierDeprecated",
     dr("{host: a, trafficPolicy: {outlierDetection: {consecutiveErrors: 5}}}"),
     kDR + "spec.trafficPolicy.outlierDetection.consecutiveErrors: is not supported: deprecated; "
           "use consecutive5xxErrors"},
    {"DrOutlierInterval", dr("{host: a, trafficPolicy: {outlierDetection: {interval: 1x}}}"),
     kDR + "spec.trafficPolicy.outlierDetection.interval: \"1x\": unknown unit \"x\" (ns, us, ms, "
           "s, m or h)"},
    {"DrTlsSimple", dr("{host: a, trafficPolicy: {tls: {mode: SIMPLE}}}"),
     kDR + "spec.trafficPolicy.tls.mode: SIMPLE is not supported: meshlet does not originate TLS "
           "to destinations outside the mesh (DISABLE or ISTIO_MUTUAL)"},
    {"DrTlsMutual", dr("{host: a, trafficPolicy: {tls: {mode: MUTUAL}}}"),
     kDR + "spec.trafficPolicy.tls.mode: MUTUAL is not supported: meshlet does not originate TLS "
           "to destinations outside the mesh (DISABLE or ISTIO_MUTUAL)"},
    {"DrTlsBadMode", dr("{host: a, trafficPolicy: {tls: {mode: ON}}}"),
     kDR + "spec.trafficPolicy.tls.mode: \"ON\" is not a valid mode (DISABLE or ISTIO_MUTUAL)"},
    {"DrTlsSni", dr("{host: a, trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: a}}}"),
     kDR + "spec.trafficPolicy.tls.sni: is not supported: only mode (DISABLE or ISTIO_MUTUAL) is "
           "supported; meshlet does not originate TLS with user-provided certificates"},
    {"DrPortLevelNoPort",
     dr("{host: a, trafficPolicy: {portLevelSettings: [{tls: {mode: DISABLE}}]}}"),
     kDR + "spec.trafficPolicy.portLevelSettings[0].port: required field is missing"},
    {"DrPortLevelDuplicate",
     dr("{host: a, trafficPolicy: {portLevelSettings: [{port: {number: 80}}, {port: {number: "
        "80}}]}}"),
     kDR + "spec.trafficPolicy.portLevelSettings[1].port.number: duplicate port 80 (also "
           "spec.trafficPolicy.portLevelSettings[0])"},
    {"DrPortLevelNested",
     dr("{host: a, trafficPolicy: {portLevelSettings: [{port: {number: 80}, portLevelSettings: "
        "[]}]}}"),
     kDR + "spec.trafficPolicy.portLevelSettings[0].portLevelSettings: unknown field"},
    {"DrSubsetPolicyError",
     dr("{host: a, subsets: [{name: v1, trafficPolicy: {loadBalancer: {simple: FASTEST}}}]}"),
     kDR + "spec.subsets[0].trafficPolicy.loadBalancer.simple: \"FASTEST\" is not a valid policy "
           "(ROUND_ROBIN, LEAST_REQUEST, RANDOM or PASSTHROUGH)"},
    {"DrProxyProtocol", dr("{host: a, trafficPolicy: {proxyProtocol: {version: V1}}}"),
     kDR + "spec.trafficPolicy.proxyProtocol: is not supported: PROXY protocol to upstreams is "
           "not implemented"},
};

class IstioNetworkingErrors : public ::testing::TestWithParam<BadInput> {};

TEST_P(IstioNetworkingErrors, RejectedWithExactMessage) {
  std::string message = parseError(GetParam().yaml);
  const std::string& want = GetParam().expected;
  // Regex errors end in the standard library's own wording; compare up to it.
  if (want.size() >= 2 && want.compare(want.size() - 2, 2, ": ") == 0) {
    EXPECT_EQ(message.substr(0, want.size()), want);
  } else {
    EXPECT_EQ(message, want);
  }
}

INSTANTIATE_TEST_SUITE_P(All, IstioNetworkingErrors, ::testing::ValuesIn(kBad),
                         [](const ::testing::TestParamInfo<BadInput>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace meshlet

namespace meshlet {
namespace {

// The shipped examples: examples/policy/ loads on its own and next to examples/demo/, and the
// Istio objects do not change what the datapath gets (they are not translated yet).
TEST(IstioExamples, LoadWithTheDemoAndTranslateToTheSameDatapath) {
  namespace fs = std::filesystem;
  fs::path dir =
      fs::temp_directory_path() / ("meshlet-istio-examples-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* sub : {"demo"}) {
    for (const auto& e : fs::directory_iterator(fs::path(MESHLET_SOURCE_DIR) / "examples" / sub)) {
      fs::copy_file(e.path(), dir / e.path().filename());
    }
  }
  Result<Snapshot> plain = loadDirectory(dir.string());
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  for (const auto& e : fs::directory_iterator(fs::path(MESHLET_SOURCE_DIR) / "examples/policy")) {
    fs::copy_file(e.path(), dir / ("90-" + e.path().filename().string()));
  }
  Result<Snapshot> with = loadDirectory(dir.string());
  fs::remove_all(dir);
  ASSERT_TRUE(with.ok()) << with.error().message();
  EXPECT_EQ(with->authorization_policies.size(), 2u);
  EXPECT_EQ(with->peer_authentications.size(), 2u);
  EXPECT_EQ(with->virtual_services.size(), 1u);
  EXPECT_EQ(with->destination_rules.size(), 1u);

  TranslateInput a{&*plain, "demo-node", "cluster.local", {}};
  TranslateInput b{&*with, "demo-node", "cluster.local", {}};
  TranslateOutput ta = translate(a, IdTable{});
  TranslateOutput tb = translate(b, IdTable{});
  EXPECT_FALSE(ta.desired.services.empty());
  EXPECT_EQ(ta.desired.services.size(), tb.desired.services.size());
  EXPECT_EQ(ta.desired.backends().size(), tb.desired.backends().size());
  EXPECT_EQ(ta.ids.svc, tb.ids.svc);
  EXPECT_EQ(ta.ids.backend, tb.ids.backend);
  EXPECT_EQ(ta.ids.pod, tb.ids.pod);
}

}  // namespace
}  // namespace meshlet

namespace meshlet {
namespace {

// meshlet.io/local-rate-limit: on a Service for all its L7 requests, on a VirtualService per
// named http route; a bad value or an unknown route name rejects the object.
TEST(LocalRateLimit, ParsesRatesAndBursts) {
  LocalRateLimit l;
  std::string why;
  ASSERT_TRUE(parseLocalRateLimit("100/s", &l, &why)) << why;
  EXPECT_EQ(l.per_second, 100);
  EXPECT_EQ(l.burst, 100);
  ASSERT_TRUE(parseLocalRateLimit("30/m,burst=5", &l, &why)) << why;
  EXPECT_DOUBLE_EQ(l.per_second, 0.5);
  EXPECT_EQ(l.burst, 5);
  ASSERT_TRUE(parseLocalRateLimit("7200/h", &l, &why)) << why;
  EXPECT_DOUBLE_EQ(l.per_second, 2);
  for (const char* bad : {"", "10", "10/d", "0/s", "-1/s", "1.5/s", "10/s,", "10/s,burst=0",
                          "10/s,bursts=2", "10/s burst=2", "9999999999/s"}) {
    EXPECT_FALSE(parseLocalRateLimit(bad, &l, &why)) << bad;
    EXPECT_NE(why.find("\"" + std::string(bad) + "\""), std::string::npos) << why;
  }
}

TEST(LocalRateLimit, AnnotationsAreValidatedWithTheirObject) {
  Snapshot s;
  ASSERT_TRUE(parseYaml("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: "
                        "{name: reviews, namespace: shop, annotations: "
                        "{meshlet.io/local-rate-limit.tight: \"2/m\"}}\nspec: {hosts: [reviews], "
                        "http: [{name: tight, route: [{destination: {host: reviews}}]}]}\n",
                        "routes.yaml", s)
                  .ok());
  ASSERT_EQ(s.virtual_services.size(), 1u);
  EXPECT_EQ(s.virtual_services[0].route_rate_limits.at("tight").burst, 2);

  std::string e = parseError(
      "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, "
      "namespace: shop, annotations: {meshlet.io/local-rate-limit.nope: \"2/m\"}}\nspec: "
      "{hosts: [reviews], http: [{name: tight, route: [{destination: {host: reviews}}]}]}\n");
  EXPECT_NE(e.find("metadata.annotations[\"meshlet.io/local-rate-limit.nope\"]: names no http "
                   "route"),
            std::string::npos)
      << e;
  e = parseError(
      "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, "
      "namespace: shop, annotations: {meshlet.io/local-rate-limit.tight: fast}}\nspec: "
      "{hosts: [reviews], http: [{name: tight, route: [{destination: {host: reviews}}]}]}\n");
  EXPECT_NE(e.find("\"fast\" is not a rate"), std::string::npos) << e;

  Snapshot t;
  Status st = parseYaml(
      "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop, annotations: "
      "{meshlet.io/local-rate-limit: 10/x}}\nspec: {clusterIP: 198.18.10.1, ports: [{port: 80}]}\n",
      "svc.yaml", t);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find(
                "Service shop/web: metadata.annotations[\"meshlet.io/local-rate-limit\"]: "
                "\"10/x\" is not a rate"),
            std::string::npos)
      << st.error().message();
}

}  // namespace
}  // namespace meshlet
