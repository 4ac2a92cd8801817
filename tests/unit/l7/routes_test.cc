// L7 routing tables: which service ports take the L7 path (l7Reason), and the routes, clusters
// and endpoints compileL7 builds from VirtualServices and DestinationRules written as users
// write them (YAML through the file source's parser, then the real translate()), plus the
// request matching and weighted picks the proxy runs on the result.
#include "agent/l7/routes.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/sources/file_source.h"
#include "agent/translate/translate.h"

namespace meshlet::l7 {
namespace {

constexpr const char* kReviews = "reviews.shop.svc.cluster.local";

// ---------------------------------------------------------------------------------------------
// YAML builders (flow style), one document each, "---" separated.

std::string nsYaml(const std::string& name) {
  return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + "}\n---\n";
}

// ports: flow entries without braces, e.g. "{name: http, port: 9080}".
std::string svcYaml(const std::string& ns, const std::string& name, const std::string& ips,
                    const std::string& ports) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\nspec: {clusterIPs: [" + ips + "], selector: {app: " + name + "}, ports: [" + ports +
         "]}\n---\n";
}

std::string podYaml(const std::string& ns, const std::string& name, const std::string& app,
                    const std::string& version, const std::string& ips, bool ready = true) {
  std::string out = "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: " + ns +
                    ", labels: {app: " + app + ", version: " + version +
                    "}}\nspec: {nodeName: node-a}\nstatus: {phase: Running, podIPs: [";
  std::string sep;
  for (size_t start = 0; start < ips.size();) {
    size_t comma = ips.find(',', start);
    if (comma == std::string::npos) comma = ips.size();
    out += sep + "{ip: \"" + ips.substr(start, comma - start) + "\"}";
    sep = ", ";
    start = comma + 1;
  }
  out += "], conditions: [{type: Ready, status: \"" + std::string(ready ? "True" : "False") +
         "\"}]}\n---\n";
  return out;
}

std::string vsYaml(const std::string& ns, const std::string& name, const std::string& spec) {
  return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: " + name +
         ", namespace: " + ns + "}\nspec: " + spec + "\n---\n";
}

std::string drYaml(const std::string& ns, const std::string& name, const std::string& spec) {
  return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: " + name +
         ", namespace: " + ns + "}\nspec: " + spec + "\n---\n";
}

// shop: reviews (9080, and 9081 for the port tests) with v1 (two pods) and v2 (one not ready,
// one ready), ratings (one port, 8080), details (two TCP ports, not
// L7).
std::string baseYaml() {
  return nsYaml("shop") + nsYaml("other") + nsYaml("istio-system") +
         svcYaml("shop", "reviews", "198.18.0.10",
                 "{name: http, port: 9080, targetPort: 9080}, {name: tcp-admin, port: 9081}") +
         podYaml("shop", "reviews-v1-a", "reviews", "v1", "198.19.0.12") +
         podYaml("shop", "reviews-v1-b", "reviews", "v1", "198.19.0.11") +
         podYaml("shop", "reviews-v2-a", "reviews", "v2", "198.19.0.21") +
         podYaml("shop", "reviews-v2-b", "reviews", "v2", "198.19.0.22", false) +
         svcYaml("shop", "ratings", "198.18.0.20", "{name: http, port: 8080}") +
         podYaml("shop", "ratings-1", "ratings", "v1", "198.19.0.31") +
         svcYaml("shop", "details", "198.18.0.30",
                 "{name: tcp-a, port: 7000}, {name: tcp-b, port: 7001}") +
         podYaml("shop", "details-1", "details", "v1", "198.19.0.41");
}

struct World {
  std::shared_ptr<const Snapshot> snapshot;
  TranslateOutput translated;
  std::shared_ptr<const L7Config> config;

  // The L7Service of host `name`.shop and `port` (the first svc_id: IPv4 when dual-stack).
  const L7Service& service(const std::string& name, int port,
                           const std::string& ns = "shop") const {
    for (const auto& [id, s] : config->services) {
      if (s.name == name && s.ns == ns && s.port == port) return s;
    }
    ADD_FAILURE() << "no L7 service " << ns << "/" << name << ":" << port;
    static const L7Service kNone;
    return kNone;
  }
  const L7Cluster& cluster(uint32_t index) const { return config->clusters.at(index); }
  const L7Cluster* clusterNamed(const std::string& name) const {
    for (const L7Cluster& c : config->clusters) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }
  bool warned(const std::string& part) const {
    for (const std::string& w : config->warnings) {
      if (w.find(part) != std::string::npos) return true;
    }
    return false;
  }
};

// Parses `yaml` like the file source does (parse, validate, synthesize EndpointSlices from the
// pods), translates it, marks the service ports named in `l7` ("name:port") as L7 on top of
// what l7Reason decided, and compiles.
World build(const std::string& yaml, const std::vector<std::string>& l7 = {}) {
  World w;
  auto s = std::make_shared<Snapshot>();
  Status st = parseYaml(yaml, "routes.yaml", *s);
  EXPECT_TRUE(st.ok()) << st.error().message() << "\n" << yaml;
  st = validateSnapshot(*s);
  EXPECT_TRUE(st.ok()) << st.error().message();
  synthesizeEndpointSlices(*s);
  TranslateInput in;
  in.snapshot = s.get();
  in.node_name = "node-a";
  w.translated = translate(in, {});
  for (auto& [id, si] : w.translated.desired.service_info) {
    for (const std::string& name : l7) {
      if (name == si.name.str() + ":" + std::to_string(si.port)) si.l7 = true;
    }
  }
  w.snapshot = s;
  w.config = compileL7(s, w.translated.desired);
  return w;
}

std::vector<std::string> ips(const L7Cluster& c) {
  std::vector<std::string> out;
  for (const L7Endpoint& e : c.endpoints)
    out.push_back(e.ip.toString() + ":" + std::to_string(e.port));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hosts and reasons

TEST(L7RoutesHost, QualifyHost) {
  EXPECT_EQ(serviceFqdn("reviews", "shop"), kReviews);
  EXPECT_EQ(qualifyHost("reviews", "shop"), kReviews);
  EXPECT_EQ(qualifyHost("reviews.prod", "shop"), "reviews.prod.svc.cluster.local");
  EXPECT_EQ(qualifyHost("reviews.prod.svc", "shop"), "reviews.prod.svc.cluster.local");
  EXPECT_EQ(qualifyHost("reviews.prod.svc.cluster.local", "shop"),
            "reviews.prod.svc.cluster.local");
  EXPECT_EQ(qualifyHost("*.example.com", "shop"), "*.example.com");
  EXPECT_EQ(qualifyHost("*", "shop"), "*");
  EXPECT_EQ(qualifyHost("api.example.com", "shop"), "api.example.com");
}

struct ReasonCase {
  const char* what;
  std::string istio;  // VirtualService / DestinationRule documents
  std::string app_protocol;
  std::string port_name;
  std::string want;
  Protocol protocol = Protocol::kTCP;
};

TEST(L7RoutesReason, EveryCase) {
  const std::string route = "http: [{route: [{destination: {host: reviews}}]}]";
  const std::string tcp_only = "tcp: [{route: [{destination: {host: reviews}}]}]";
  const ReasonCase cases[] = {
      {"plain TCP", "", "", "tcp", ""},
      {"unnamed", "", "", "", ""},
      {"VirtualService, short host", vsYaml("shop", "vs", "{hosts: [reviews], " + route + "}"), "",
       "web", "VirtualService shop/vs"},
      {"VirtualService, FQDN from another namespace",
       vsYaml("other", "vs", std::string("{hosts: [") + kReviews + "], " + route + "}"), "", "web",
       "VirtualService other/vs"},
      {"VirtualService, ns-qualified host",
       vsYaml("other", "vs", "{hosts: [reviews.shop], " + route + "}"), "", "web",
       "VirtualService other/vs"},
      {"VirtualService short host in another namespace names another service",
       vsYaml("other", "vs", "{hosts: [reviews], " + route + "}"), "", "web", ""},
      {"VirtualService, namespace wildcard",
       vsYaml("istio-system", "wild", "{hosts: [\"*.shop.svc.cluster.local\"], " + route + "}"), "",
       "web", "VirtualService istio-system/wild"},
      {"VirtualService, wildcard of another namespace",
       vsYaml("istio-system", "wild", "{hosts: [\"*.other.svc.cluster.local\"], " + route + "}"),
       "", "web", ""},
      {"VirtualService without http routes",
       vsYaml("shop", "vs", "{hosts: [reviews], " + tcp_only + "}"), "", "web", ""},
      {"first VirtualService by namespace/name",
       vsYaml("shop", "b", "{hosts: [reviews], " + route + "}") +
           vsYaml("shop", "a", "{hosts: [reviews], " + route + "}"),
       "", "web", "VirtualService shop/a"},
      {"VirtualService before DestinationRule and port name",
       drYaml("shop", "dr", "{host: reviews, trafficPolicy: {outlierDetection: {interval: 1s}}}") +
           vsYaml("shop", "vs", "{hosts: [reviews], " + route + "}"),
       "http", "http", "VirtualService shop/vs"},
      {"DestinationRule connectionPool.http",
       drYaml("shop", "dr",
              "{host: reviews, trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: "
              "1}}}}"),
       "", "web", "DestinationRule shop/dr"},
      {"DestinationRule connectionPool.tcp only",
       drYaml("shop", "dr",
              "{host: reviews, trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}}"),
       "", "web", ""},
      {"DestinationRule LEAST_REQUEST",
       drYaml("shop", "dr",
              "{host: reviews, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}"),
       "", "web", "DestinationRule shop/dr"},
      {"DestinationRule ROUND_ROBIN",
       drYaml("shop", "dr",
              "{host: reviews, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}"),
       "", "web", ""},
      {"DestinationRule consistentHash",
       drYaml("shop", "dr",
              "{host: reviews, trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: "
              "x-user}}}}"),
       "", "web", "DestinationRule shop/dr"},
      {"DestinationRule outlierDetection",
       drYaml("shop", "dr",
              "{host: reviews, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}}"),
       "", "web", "DestinationRule shop/dr"},
      {"DestinationRule HTTP settings for this port",
       drYaml("shop", "dr",
              "{host: reviews, trafficPolicy: {portLevelSettings: [{port: {number: 9080}, "
              "outlierDetection: {consecutive5xxErrors: 3}}]}}"),
       "", "web", "DestinationRule shop/dr"},
      {"DestinationRule HTTP settings for another port",
       drYaml("shop", "dr",
              "{host: reviews, trafficPolicy: {portLevelSettings: [{port: {number: 9081}, "
              "outlierDetection: {consecutive5xxErrors: 3}}]}}"),
       "", "web", ""},
      {"DestinationRule of another host",
       drYaml("shop", "dr", "{host: ratings, trafficPolicy: {outlierDetection: {interval: 1s}}}"),
       "", "web", ""},
      {"DestinationRule before appProtocol",
       drYaml("shop", "dr", "{host: reviews, trafficPolicy: {outlierDetection: {interval: 1s}}}"),
       "http", "web", "DestinationRule shop/dr"},
      {"appProtocol http", "", "http", "web", "appProtocol http"},
      {"appProtocol http2", "", "http2", "", "appProtocol http2"},
      {"appProtocol grpc", "", "grpc", "", "appProtocol grpc"},
      {"appProtocol h2c", "", "kubernetes.io/h2c", "", "appProtocol kubernetes.io/h2c"},
      {"appProtocol wins over the name (Istio)", "", "web", "http", ""},
      {"appProtocol https is TLS", "", "https", "", ""},
      {"port name http", "", "", "http", "port name http"},
      {"port name http-web", "", "", "http-web", "port name http-web"},
      {"port name HTTP-web", "", "", "HTTP-web", "port name HTTP-web"},
      {"port name http2", "", "", "http2", "port name http2"},
      {"port name http2-x", "", "", "http2-x", "port name http2-x"},
      {"port name grpc", "", "", "grpc", "port name grpc"},
      {"port name grpc-web", "", "", "grpc-web", "port name grpc-web"},
      {"port name httpx", "", "", "httpx", ""},
      {"port name https", "", "", "https", ""},
      {"port name tcp-http", "", "", "tcp-http", ""},
      {"VirtualService on an unnamed port (Istio would sniff HTTP)",
       vsYaml("shop", "vs", "{hosts: [reviews], " + route + "}"), "", "", "VirtualService shop/vs"},
      {"VirtualService on a port named tcp-*",
       vsYaml("shop", "vs", "{hosts: [reviews], " + route + "}"), "", "tcp-db", ""},
      {"VirtualService on appProtocol mysql",
       vsYaml("shop", "vs", "{hosts: [reviews], " + route + "}"), "mysql", "web", ""},
      {"DestinationRule on a port named redis",
       drYaml("shop", "dr", "{host: reviews, trafficPolicy: {outlierDetection: {interval: 1s}}}"),
       "", "redis", ""},
      {"VirtualService whose routes all match another port",
       vsYaml("shop", "vs",
              "{hosts: [reviews], http: [{match: [{port: 9081}], route: [{destination: {host: "
              "reviews}}]}]}"),
       "", "web", ""},
      {"VirtualService with a route for this port",
       vsYaml("shop", "vs",
              "{hosts: [reviews], http: [{match: [{port: 9081}], route: [{destination: {host: "
              "reviews}}]}, {match: [{port: 9081}, {port: 9080}], route: [{destination: {host: "
              "reviews}}]}]}"),
       "", "web", "VirtualService shop/vs"},
      {"VirtualService with a route for any port",
       vsYaml("shop", "vs",
              "{hosts: [reviews], http: [{match: [{port: 9081}], route: [{destination: {host: "
              "reviews}}]}, {match: [{uri: {prefix: /}}], route: [{destination: {host: "
              "reviews}}]}]}"),
       "", "web", "VirtualService shop/vs"},
      {"UDP", vsYaml("shop", "vs", "{hosts: [reviews], " + route + "}"), "", "http", "",
       Protocol::kUDP},
  };
  for (const ReasonCase& c : cases) {
    Snapshot s;
    Status st = parseYaml(c.istio, "istio.yaml", s);
    ASSERT_TRUE(st.ok()) << c.what << ": " << st.error().message();
    Service svc;
    svc.meta.ns = "shop";
    svc.meta.name = "reviews";
    ServicePort p;
    p.name = c.port_name;
    p.port = 9080;
    p.protocol = c.protocol;
    p.app_protocol = c.app_protocol;
    svc.ports.push_back(p);
    EXPECT_EQ(l7Reason(s, svc, p), c.want) << c.what;
  }

  // "*" (only valid for gateways: the parser rejects it in a mesh VirtualService, so by hand).
  Snapshot s;
  VirtualService all;
  all.meta.ns = "istio-system";
  all.meta.name = "all";
  all.hosts = {"*"};
  all.http.emplace_back();
  s.virtual_services.push_back(all);
  Service svc;
  svc.meta.ns = "shop";
  svc.meta.name = "reviews";
  ServicePort p;
  p.port = 9080;
  EXPECT_EQ(l7Reason(s, svc, p), "VirtualService istio-system/all");
}

TEST(L7RoutesReason, TranslateMarksL7Ports) {
  World w = build(baseYaml() + vsYaml("shop", "vs",
                                      "{hosts: [ratings], http: [{route: "
                                      "[{destination: {host: ratings}}]}]}"));
  std::map<std::string, bool> l7;
  for (const auto& [id, si] : w.translated.desired.service_info) {
    l7[si.name.str() + ":" + std::to_string(si.port)] = si.l7;
  }
  EXPECT_EQ(l7, (std::map<std::string, bool>{{"details:7000", false},
                                             {"details:7001", false},
                                             {"ratings:8080", true},
                                             {"reviews:9080", true},
                                             {"reviews:9081", false}}));
  ASSERT_EQ(w.config->services.size(), 2u);
  EXPECT_EQ(w.service("ratings", 8080).reason, "VirtualService shop/vs");
  EXPECT_EQ(w.service("reviews", 9080).reason, "port name http");
}

// ---------------------------------------------------------------------------------------------
// Compilation

TEST(L7RoutesCompile, DefaultRouteToTheServiceItself) {
  World w = build(baseYaml());
  const L7Service& s = w.service("reviews", 9080);
  EXPECT_EQ(s.host, kReviews);
  EXPECT_EQ(s.reason, "port name http");
  ASSERT_EQ(s.routes.size(), 1u);
  const L7Route& r = s.routes[0];
  EXPECT_EQ(r.virtual_service, "");
  EXPECT_EQ(r.spec, nullptr);
  EXPECT_TRUE(r.matches.empty());
  EXPECT_TRUE(r.mirrors.empty());
  ASSERT_EQ(r.clusters.size(), 1u);
  EXPECT_EQ(r.clusters[0].weight, 100);
  const L7Cluster& c = w.cluster(r.clusters[0].cluster);
  EXPECT_EQ(c.name, std::string("outbound|9080||") + kReviews);
  EXPECT_EQ(c.host, kReviews);
  EXPECT_EQ(c.service_ns, "shop");
  EXPECT_EQ(c.service_name, "reviews");
  EXPECT_EQ(c.port, 9080);
  EXPECT_EQ(c.subset, "");
  EXPECT_FALSE(c.http2);
  EXPECT_EQ(c.destination_rule, "");
  // Ready endpoints only (reviews-v2-b is not ready), sorted by address.
  EXPECT_EQ(ips(c),
            (std::vector<std::string>{"198.19.0.11:9080", "198.19.0.12:9080", "198.19.0.21:9080"}));
  EXPECT_EQ(c.endpoints[0].pod, "shop/reviews-v1-b");
  EXPECT_EQ(c.endpoints[0].node, "node-a");
  EXPECT_EQ(c.endpoints[0].key, "198.19.0.11:9080");  // the proxy's pool and outlier key
  EXPECT_EQ(endpointString(*IpAddr::parse("fd00::1"), 80), "[fd00::1]:80");
  EXPECT_EQ(c.endpoints[0].labels, (Labels{{"app", "reviews"}, {"version", "v1"}}));
  EXPECT_TRUE(w.config->warnings.empty()) << w.config->warnings.at(0);
  RequestAttrs req;
  req.method = "GET";
  req.path = "/";
  EXPECT_EQ(matchRoute(s, req), &r);
}

TEST(L7RoutesCompile, Http2Ports) {
  World w = build(nsYaml("shop") +
                  svcYaml("shop", "api", "198.18.0.40",
                          "{name: grpc, port: 50051}, {name: web, port: 8080, appProtocol: "
                          "kubernetes.io/h2c}, {name: plain, port: 8081, appProtocol: http}"));
  auto first = [&](int port) {
    return w.cluster(w.service("api", port).routes.at(0).clusters.at(0).cluster);
  };
  EXPECT_TRUE(first(50051).http2);
  EXPECT_TRUE(first(8080).http2);
  EXPECT_FALSE(first(8081).http2);
}

TEST(L7RoutesCompile, RoutesInOrderNamedAndSpecPointers) {
  World w = build(baseYaml() +
                  vsYaml("shop", "reviews",
                         "{hosts: [reviews], http: [{name: api, match: [{uri: {prefix: /api}}], "
                         "route: [{destination: {host: reviews}}]}, {route: [{destination: "
                         "{host: ratings}}]}]}"));
  const L7Service& s = w.service("reviews", 9080);
  EXPECT_EQ(s.reason, "VirtualService shop/reviews");
  ASSERT_EQ(s.routes.size(), 2u);
  EXPECT_EQ(s.routes[0].name, "api");
  EXPECT_EQ(s.routes[0].virtual_service, "shop/reviews");
  EXPECT_EQ(s.routes[0].index, 0);
  EXPECT_EQ(s.routes[0].spec, &w.snapshot->virtual_services[0].http[0]);
  EXPECT_EQ(s.routes[1].name, "shop/reviews/http[1]");
  EXPECT_EQ(s.routes[1].index, 1);
  ASSERT_EQ(s.routes[1].clusters.size(), 1u);
  // ratings has one port (8080): the destination without a port takes it.
  EXPECT_EQ(w.cluster(s.routes[1].clusters[0].cluster).name,
            "outbound|8080||ratings.shop.svc.cluster.local");
  EXPECT_EQ(ips(w.cluster(s.routes[1].clusters[0].cluster)),
            std::vector<std::string>{"198.19.0.31:8080"});
  EXPECT_EQ(s.routes[1].clusters[0].headers,
            &w.snapshot->virtual_services[0].http[1].route[0].headers);
  EXPECT_TRUE(w.config->warnings.empty());
}

TEST(L7RoutesCompile, DestinationPorts) {
  World w =
      build(baseYaml() +
                vsYaml("shop", "reviews",
                       "{hosts: [reviews], http: ["
                       "{match: [{uri: {exact: /same}}], route: [{destination: {host: reviews}}]},"
                       "{match: [{uri: {exact: /explicit}}], route: [{destination: {host: "
                       "reviews, port: {number: 9081}}}]},"
                       "{match: [{uri: {exact: /several}}], route: [{destination: {host: "
                       "details}}]},"
                       "{match: [{uri: {exact: /missing}}], route: [{destination: {host: "
                       "ratings, port: {number: 1234}}}]}]}"),
            {"reviews:9081"});
  const L7Service& s = w.service("reviews", 9080);
  ASSERT_EQ(s.routes.size(), 4u);
  auto name = [&](int route) { return w.cluster(s.routes[route].clusters.at(0).cluster).name; };
  EXPECT_EQ(name(0), std::string("outbound|9080||") + kReviews);
  EXPECT_EQ(name(1), std::string("outbound|9081||") + kReviews);
  EXPECT_EQ(name(2), "outbound|0||details.shop.svc.cluster.local");
  EXPECT_TRUE(w.cluster(s.routes[2].clusters[0].cluster).endpoints.empty());
  EXPECT_TRUE(
      w.warned("VirtualService shop/reviews http[2]: destination "
               "details.shop.svc.cluster.local: service shop/details has several ports"));
  EXPECT_EQ(name(3), "outbound|1234||ratings.shop.svc.cluster.local");
  EXPECT_TRUE(w.cluster(s.routes[3].clusters[0].cluster).endpoints.empty());
  EXPECT_TRUE(
      w.warned("http[3]: destination ratings.shop.svc.cluster.local: service shop/ratings "
               "has no TCP port 1234"));

  // Routed from port 9081 the same VirtualService sends /same to 9081 (the routed port).
  const L7Service& admin = w.service("reviews", 9081);
  EXPECT_EQ(w.cluster(admin.routes.at(0).clusters.at(0).cluster).name,
            std::string("outbound|9081||") + kReviews);
}

TEST(L7RoutesCompile, UnknownHostGetsAnEmptyClusterAndAWarning) {
  World w = build(baseYaml() + vsYaml("shop", "reviews",
                                      "{hosts: [reviews], http: [{route: [{destination: {host: "
                                      "nope}}]}]}"));
  const L7Route& r = w.service("reviews", 9080).routes.at(0);
  ASSERT_EQ(r.clusters.size(), 1u);
  const L7Cluster& c = w.cluster(r.clusters[0].cluster);
  EXPECT_EQ(c.name, "outbound|9080||nope.shop.svc.cluster.local");
  EXPECT_EQ(c.service_name, "");
  EXPECT_TRUE(c.endpoints.empty());
  EXPECT_EQ(w.config->warnings,
            std::vector<std::string>{"VirtualService shop/reviews http[0]: destination "
                                     "nope.shop.svc.cluster.local: no service has this host "
                                     "(requests to it get 503)"});
  EXPECT_EQ(pickCluster(r, 0), &r.clusters[0]);
}

TEST(L7RoutesCompile, ClustersAreShared) {
  World w = build(
      baseYaml() +
      drYaml("shop", "reviews", "{host: reviews, subsets: [{name: v1, labels: {version: v1}}]}") +
      vsYaml("shop", "reviews",
             "{hosts: [reviews], http: ["
             "{match: [{uri: {prefix: /a}}], route: [{destination: {host: reviews, "
             "subset: v1}}]},"
             "{match: [{uri: {prefix: /b}}], route: [{destination: {host: "
             "reviews.shop.svc.cluster.local, subset: v1}}], mirror: {host: "
             "reviews}},"
             "{route: [{destination: {host: reviews}}]}]}") +
      vsYaml("shop", "ratings",
             "{hosts: [ratings], http: [{route: [{destination: {host: reviews, "
             "port: {number: 9080}}}]}]}"));
  const L7Service& s = w.service("reviews", 9080);
  ASSERT_EQ(s.routes.size(), 3u);
  EXPECT_EQ(s.routes[0].clusters.at(0).cluster, s.routes[1].clusters.at(0).cluster);
  EXPECT_EQ(s.routes[1].mirrors.at(0).cluster, s.routes[2].clusters.at(0).cluster);
  EXPECT_EQ(w.service("ratings", 8080).routes.at(0).clusters.at(0).cluster,
            s.routes[2].clusters.at(0).cluster);
  EXPECT_EQ(w.config->clusters.size(), 2u);
  EXPECT_TRUE(w.config->warnings.empty());
}

TEST(L7RoutesCompile, SubsetsSelectEndpointsByPodLabels) {
  World w = build(baseYaml() +
                  drYaml("shop", "reviews",
                         "{host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, "
                         "labels: {version: v2, app: reviews}}, {name: none, labels: {version: "
                         "v9}}]}") +
                  vsYaml("shop", "reviews",
                         "{hosts: [reviews], http: [{route: [{destination: {host: reviews, "
                         "subset: v1}, weight: 50}, {destination: {host: reviews, subset: v2}, "
                         "weight: 40}, {destination: {host: reviews, subset: none}, weight: "
                         "10}]}]}"));
  const L7Route& r = w.service("reviews", 9080).routes.at(0);
  ASSERT_EQ(r.clusters.size(), 3u);
  const L7Cluster& v1 = w.cluster(r.clusters[0].cluster);
  EXPECT_EQ(v1.name, std::string("outbound|9080|v1|") + kReviews);
  EXPECT_EQ(v1.subset, "v1");
  EXPECT_EQ(v1.destination_rule, "shop/reviews");
  EXPECT_EQ(ips(v1), (std::vector<std::string>{"198.19.0.11:9080", "198.19.0.12:9080"}));
  EXPECT_EQ(v1.endpoints[1].pod, "shop/reviews-v1-a");
  const L7Cluster& v2 = w.cluster(r.clusters[1].cluster);
  EXPECT_EQ(ips(v2), std::vector<std::string>{"198.19.0.21:9080"});  // v2-b is not ready
  EXPECT_TRUE(w.cluster(r.clusters[2].cluster).endpoints.empty());   // defined, selects nothing
  EXPECT_TRUE(w.config->warnings.empty());
}

TEST(L7RoutesCompile, UndefinedSubsetWarnsAndHasNoEndpoints) {
  const std::string vs = vsYaml("shop", "reviews",
                                "{hosts: [reviews], http: [{route: [{destination: {host: "
                                "reviews, subset: v3}}]}]}");
  World with_dr = build(
      baseYaml() + vs +
      drYaml("shop", "reviews", "{host: reviews, subsets: [{name: v1, labels: {version: v1}}]}"));
  const L7Cluster& c =
      with_dr.cluster(with_dr.service("reviews", 9080).routes.at(0).clusters.at(0).cluster);
  EXPECT_EQ(c.name, std::string("outbound|9080|v3|") + kReviews);
  EXPECT_TRUE(c.endpoints.empty());
  EXPECT_EQ(with_dr.config->warnings,
            std::vector<std::string>{
                std::string("VirtualService shop/reviews http[0]: destination ") + kReviews +
                " subset v3: DestinationRule shop/reviews does not define it "
                "(requests to it get 503)"});

  World without_dr = build(baseYaml() + vs);
  EXPECT_TRUE(
      without_dr.cluster(without_dr.service("reviews", 9080).routes.at(0).clusters.at(0).cluster)
          .endpoints.empty());
  EXPECT_EQ(without_dr.config->warnings,
            std::vector<std::string>{
                std::string("VirtualService shop/reviews http[0]: destination ") + kReviews +
                " subset v3: no DestinationRule defines it (requests to it "
                "get 503)"});
}

TEST(L7RoutesCompile, TrafficPolicyPrecedence) {
  World w = build(baseYaml() +
                  drYaml("shop", "reviews",
                         "{host: reviews, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}, "
                         "connectionPool: {tcp: {maxConnections: 10}}, outlierDetection: "
                         "{consecutive5xxErrors: 5}, portLevelSettings: [{port: {number: 9080}, "
                         "loadBalancer: {simple: LEAST_REQUEST}, connectionPool: {http: "
                         "{http1MaxPendingRequests: 7}}}]}, subsets: ["
                         "{name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: "
                         "RANDOM}, portLevelSettings: [{port: {number: 9080}, outlierDetection: "
                         "{consecutive5xxErrors: 9}}]}},"
                         "{name: v2, labels: {version: v2}}]}") +
                  vsYaml("shop", "reviews",
                         "{hosts: [reviews], http: [{route: ["
                         "{destination: {host: reviews}, weight: 40},"
                         "{destination: {host: reviews, subset: v1}, weight: 30},"
                         "{destination: {host: reviews, subset: v2}, weight: 20},"
                         "{destination: {host: reviews, subset: v1, port: {number: 9081}}, weight: "
                         "10}]}]}"));
  const L7Route& r = w.service("reviews", 9080).routes.at(0);
  ASSERT_EQ(r.clusters.size(), 4u);
  // Whole service, port 9080: port-level replaces lb and pool (the pool as a group: no
  // maxConnections), the top-level outlier detection stays.
  const L7Cluster& all = w.cluster(r.clusters[0].cluster);
  EXPECT_EQ(all.destination_rule, "shop/reviews");
  EXPECT_EQ(all.lb.policy, LbPolicy::kLeastRequest);
  EXPECT_EQ(all.pool.http1_max_pending_requests, 7);
  EXPECT_EQ(all.pool.max_connections, 0);
  ASSERT_TRUE(all.outlier.has_value());
  EXPECT_EQ(all.outlier->consecutive_5xx_errors, 5);
  // Subset v1: its lb over the port level, its port-level outlier detection over the top level.
  const L7Cluster& v1 = w.cluster(r.clusters[1].cluster);
  EXPECT_EQ(v1.lb.policy, LbPolicy::kRandom);
  EXPECT_EQ(v1.pool.http1_max_pending_requests, 7);
  ASSERT_TRUE(v1.outlier.has_value());
  EXPECT_EQ(v1.outlier->consecutive_5xx_errors, 9);
  // Subset v2 has no policy of its own: as the whole service.
  const L7Cluster& v2 = w.cluster(r.clusters[2].cluster);
  EXPECT_EQ(v2.lb.policy, LbPolicy::kLeastRequest);
  EXPECT_EQ(v2.pool.http1_max_pending_requests, 7);
  EXPECT_EQ(v2.outlier->consecutive_5xx_errors, 5);
  // Subset v1 on port 9081: no port-level settings apply anywhere.
  const L7Cluster& v1_admin = w.cluster(r.clusters[3].cluster);
  EXPECT_EQ(v1_admin.port, 9081);
  EXPECT_EQ(v1_admin.lb.policy, LbPolicy::kRandom);
  EXPECT_EQ(v1_admin.pool.max_connections, 10);
  EXPECT_EQ(v1_admin.pool.http1_max_pending_requests, 0);
  EXPECT_EQ(v1_admin.outlier->consecutive_5xx_errors, 5);
}

TEST(L7RoutesCompile, DestinationRuleChoice) {
  auto dr = [](const std::string& ns, const std::string& name, const std::string& host,
               const char* lb) {
    return drYaml(ns, name,
                  "{host: " + host + ", trafficPolicy: {loadBalancer: {simple: " + lb + "}}}");
  };
  auto chosen = [](const World& w) {
    const L7Cluster* c = w.clusterNamed(std::string("outbound|9080||") + kReviews);
    return c ? c->destination_rule : "(no cluster)";
  };
  const std::string fqdn = kReviews;
  // Own namespace first, then the root namespace, then any other (first by namespace/name); an
  // exact host before a wildcard.
  EXPECT_EQ(
      chosen(build(baseYaml() + dr("other", "a", fqdn, "RANDOM") +
                   dr("istio-system", "b", fqdn, "RANDOM") + dr("shop", "z", "reviews", "RANDOM"))),
      "shop/z");
  EXPECT_EQ(chosen(build(baseYaml() + dr("other", "a", fqdn, "RANDOM") +
                         dr("istio-system", "b", fqdn, "RANDOM"))),
            "istio-system/b");
  EXPECT_EQ(chosen(build(baseYaml() + dr("other", "b", fqdn, "RANDOM") +
                         dr("other", "a", fqdn, "RANDOM"))),
            "other/a");
  EXPECT_EQ(chosen(build(baseYaml() + dr("shop", "wild", "\"*.shop.svc.cluster.local\"", "RANDOM") +
                         dr("other", "exact", fqdn, "RANDOM"))),
            "other/exact");
  EXPECT_EQ(
      chosen(build(baseYaml() + dr("shop", "wild", "\"*.shop.svc.cluster.local\"", "RANDOM"))),
      "shop/wild");
  // A short host in another namespace names that namespace's service.
  EXPECT_EQ(chosen(build(baseYaml() + dr("other", "a", "reviews", "RANDOM"))), "");
}

TEST(L7RoutesCompile, Mirrors) {
  World w =
      build(baseYaml() +
            vsYaml("shop", "reviews",
                   "{hosts: [reviews], http: ["
                   "{match: [{uri: {prefix: /one}}], route: [{destination: {host: reviews}}], "
                   "mirror: {host: ratings}, mirrorPercentage: {value: 12.5}},"
                   "{route: [{destination: {host: reviews}}], mirrors: [{destination: "
                   "{host: ratings}, percentage: {value: 5}}, {destination: {host: shadow}}]}]}"));
  const L7Service& s = w.service("reviews", 9080);
  ASSERT_EQ(s.routes.size(), 2u);
  ASSERT_EQ(s.routes[0].mirrors.size(), 1u);
  EXPECT_EQ(w.cluster(s.routes[0].mirrors[0].cluster).name,
            "outbound|8080||ratings.shop.svc.cluster.local");
  EXPECT_DOUBLE_EQ(s.routes[0].mirrors[0].percentage, 12.5);
  ASSERT_EQ(s.routes[1].mirrors.size(), 2u);
  EXPECT_EQ(s.routes[1].mirrors[0].cluster, s.routes[0].mirrors[0].cluster);
  EXPECT_DOUBLE_EQ(s.routes[1].mirrors[0].percentage, 5);
  EXPECT_DOUBLE_EQ(s.routes[1].mirrors[1].percentage, 100);
  EXPECT_EQ(w.cluster(s.routes[1].mirrors[1].cluster).name,
            "outbound|9080||shadow.shop.svc.cluster.local");
  EXPECT_TRUE(
      w.warned("VirtualService shop/reviews http[1] mirror: destination "
               "shadow.shop.svc.cluster.local: no service has this host"));
}

TEST(L7RoutesCompile, RedirectRoutesHaveNoClusters) {
  World w = build(baseYaml() +
                  vsYaml("shop", "reviews", "{hosts: [reviews], http: [{redirect: {uri: /new}}]}"));
  const L7Route& r = w.service("reviews", 9080).routes.at(0);
  EXPECT_TRUE(r.clusters.empty());
  EXPECT_EQ(pickCluster(r, 42), nullptr);
  for (const L7Cluster& c : w.config->clusters) EXPECT_NE(c.host, kReviews) << c.name;
}

TEST(L7RoutesCompile, SeveralVirtualServicesConcatenateWithAWarning) {
  World w = build(
      baseYaml() +
      vsYaml("shop", "b", "{hosts: [reviews], http: [{route: [{destination: {host: ratings}}]}]}") +
      vsYaml("other", "a",
             std::string("{hosts: [") + kReviews +
                 "], http: [{match: [{uri: {prefix: /x}}], route: [{destination: "
                 "{host: reviews.shop}}]}]}"));
  const L7Service& s = w.service("reviews", 9080);
  ASSERT_EQ(s.routes.size(), 2u);
  EXPECT_EQ(s.routes[0].virtual_service, "other/a");
  EXPECT_EQ(s.routes[1].virtual_service, "shop/b");
  EXPECT_EQ(s.reason, "VirtualService other/a");
  EXPECT_EQ(w.config->warnings,
            std::vector<std::string>{"service shop/reviews: VirtualServices other/a, shop/b all "
                                     "name it; their http routes are concatenated in that order "
                                     "(Istio merges VirtualServices only for gateways)"});
}

TEST(L7RoutesCompile, DualStackSharesClustersWithEveryFamilyOnce) {
  World w =
      build(nsYaml("shop") +
            svcYaml("shop", "web", "198.18.0.50, \"2001:db8::50\"", "{name: http, port: 80}") +
            podYaml("shop", "web-2", "web", "v1", "198.19.0.52,2001:db8:1::52") +
            podYaml("shop", "web-1", "web", "v1", "198.19.0.51,2001:db8:1::51"));
  ASSERT_EQ(w.config->services.size(), 2u);  // one per cluster-IP family
  const L7Service& v4 = w.config->services.begin()->second;
  const L7Service& v6 = std::next(w.config->services.begin())->second;
  EXPECT_EQ(v4.host, "web.shop.svc.cluster.local");
  EXPECT_EQ(v6.host, v4.host);
  ASSERT_EQ(w.config->clusters.size(), 1u);
  EXPECT_EQ(v4.routes.at(0).clusters.at(0).cluster, 0u);
  EXPECT_EQ(v6.routes.at(0).clusters.at(0).cluster, 0u);
  EXPECT_EQ(ips(w.cluster(0)),
            (std::vector<std::string>{"198.19.0.51:80", "198.19.0.52:80", "2001:db8:1::51:80",
                                      "2001:db8:1::52:80"}));
  EXPECT_EQ(w.cluster(0).endpoints[2].pod, "shop/web-1");
}

TEST(L7RoutesCompile, SameEndpointInTwoServiceIdsListedOnce) {
  World w = build(nsYaml("shop") + svcYaml("shop", "web", "198.18.0.50", "{name: http, port: 80}") +
                  podYaml("shop", "web-1", "web", "v1", "198.19.0.51"));
  // A hand-built datapath: the same backend under a second svc_id of the same service port.
  DesiredDatapath d = w.translated.desired;
  ASSERT_EQ(d.service_info.size(), 1u);
  ServiceInfo second = d.service_info.begin()->second;
  d.service_info.emplace(77, second);
  BackendInfo copy = d.backend_info.begin()->second;
  copy.svc_id = 77;
  d.backend_info.emplace(99, copy);
  auto config = compileL7(w.snapshot, d);
  ASSERT_EQ(config->services.size(), 2u);
  ASSERT_EQ(config->clusters.size(), 1u);
  EXPECT_EQ(ips(config->clusters[0]), std::vector<std::string>{"198.19.0.51:80"});
}

TEST(L7RoutesCompile, OnlyL7ServicePorts) {
  World w = build(baseYaml());
  EXPECT_EQ(w.config->services.size(), 2u);  // reviews:9080, ratings:8080
  for (const auto& [id, s] : w.config->services) EXPECT_NE(s.port, 9081);
  auto none = compileL7(w.snapshot, DesiredDatapath{});
  EXPECT_TRUE(none->services.empty());
  EXPECT_EQ(none->snapshot, w.snapshot);
}

// ---------------------------------------------------------------------------------------------
// Matching

struct Req {
  std::string method = "GET";
  std::string path = "/";
  std::string query;
  std::string authority = "reviews:9080";
  HeaderList headers;
  int port = 9080;
  std::optional<Labels> source_labels;
  std::string source_namespace;

  RequestAttrs attrs() const {
    RequestAttrs a;
    a.method = method;
    a.path = path;
    a.query = query;
    a.authority = authority;
    a.headers = &headers;
    a.port = port;
    a.source_labels = source_labels ? &*source_labels : nullptr;
    a.source_namespace = source_namespace;
    return a;
  }
};

Req get(std::string path, std::vector<HeaderList::Field> headers = {}) {
  Req r;
  const size_t q = path.find('?');
  if (q != std::string::npos) {
    r.query = path.substr(q + 1);
    path.resize(q);
  }
  r.path = path;
  r.headers.fields = std::move(headers);
  return r;
}

// A VirtualService on reviews whose one route has the match list `match` (flow YAML).
class L7RoutesMatch : public ::testing::Test {
 protected:
  void use(const std::string& match) {
    world_ = build(baseYaml() + vsYaml("shop", "reviews",
                                       "{hosts: [reviews], http: [{match: " + match +
                                           ", route: [{destination: {host: reviews}}]}]}"));
  }
  bool matches(const Req& r, int* index = nullptr) {
    return matchRoute(world_.service("reviews", 9080), r.attrs(), index) != nullptr;
  }
  World world_;
};

TEST_F(L7RoutesMatch, Uri) {
  use("[{uri: {exact: /api}}]");
  EXPECT_TRUE(matches(get("/api")));
  EXPECT_TRUE(matches(get("/api?x=1")));  // the query is not part of the path
  EXPECT_FALSE(matches(get("/api/")));
  EXPECT_FALSE(matches(get("/API")));

  use("[{uri: {prefix: /api}}]");
  EXPECT_TRUE(matches(get("/api")));
  EXPECT_TRUE(matches(get("/api/v1")));
  EXPECT_FALSE(matches(get("/ap")));
  EXPECT_FALSE(matches(get("/Api/v1")));

  use("[{uri: {prefix: /api}, ignoreUriCase: true}]");
  EXPECT_TRUE(matches(get("/API/v1")));
  use("[{uri: {exact: /api}, ignoreUriCase: true}]");
  EXPECT_TRUE(matches(get("/aPi")));
  EXPECT_FALSE(matches(get("/aPi/")));

  // A regex matches the whole path, not a part of it.
  use("[{uri: {regex: \"/v[0-9]+/items\"}}]");
  EXPECT_TRUE(matches(get("/v12/items")));
  EXPECT_FALSE(matches(get("/v12/items/3")));
  EXPECT_FALSE(matches(get("/api/v12/items")));
  use("[{uri: {regex: \"/items.*\"}, ignoreUriCase: true}]");  // no effect on regexes
  EXPECT_TRUE(matches(get("/items/3")));
  EXPECT_FALSE(matches(get("/ITEMS/3")));
}

TEST_F(L7RoutesMatch, SchemeMethodAuthority) {
  use("[{scheme: {exact: http}}]");
  EXPECT_TRUE(matches(get("/")));
  use("[{scheme: {exact: https}}]");
  EXPECT_FALSE(matches(get("/")));

  use("[{method: {exact: POST}}]");
  Req post = get("/");
  post.method = "POST";
  EXPECT_TRUE(matches(post));
  EXPECT_FALSE(matches(get("/")));
  use("[{method: {regex: \"GET|HEAD\"}}]");
  EXPECT_TRUE(matches(get("/")));
  EXPECT_FALSE(matches(post));

  use("[{authority: {prefix: reviews}}]");
  EXPECT_TRUE(matches(get("/")));
  Req other = get("/");
  other.authority = "ratings:8080";
  EXPECT_FALSE(matches(other));
  use("[{authority: {regex: \"reviews(:[0-9]+)?\"}}]");
  EXPECT_TRUE(matches(get("/")));
  other.authority = "reviews.shop:9080x";
  EXPECT_FALSE(matches(other));
}

TEST_F(L7RoutesMatch, Headers) {
  use("[{headers: {End-User: {exact: jason}}}]");
  EXPECT_TRUE(matches(get("/", {{"end-user", "jason"}})));
  EXPECT_TRUE(matches(get("/", {{"END-USER", "jason"}})));   // names ignore case
  EXPECT_FALSE(matches(get("/", {{"end-user", "Jason"}})));  // values do not
  EXPECT_FALSE(matches(get("/")));

  use("[{headers: {x-v: {prefix: \"2.\"}, x-id: {regex: \"[a-f0-9]{4}\"}}}]");
  EXPECT_TRUE(matches(get("/", {{"x-v", "2.1"}, {"x-id", "beef"}})));
  EXPECT_FALSE(matches(get("/", {{"x-v", "2.1"}, {"x-id", "beef0"}})));  // full match
  EXPECT_FALSE(matches(get("/", {{"x-v", "3.1"}, {"x-id", "beef"}})));
  EXPECT_FALSE(matches(get("/", {{"x-id", "beef"}})));  // every header must match

  use("[{headers: {x-debug: {}}}]");
  EXPECT_TRUE(matches(get("/", {{"x-debug", ""}})));
  EXPECT_TRUE(matches(get("/", {{"X-Debug", "anything"}})));
  EXPECT_FALSE(matches(get("/", {{"x-debug2", "1"}})));
}

TEST_F(L7RoutesMatch, WithoutHeaders) {
  use("[{withoutHeaders: {x-canary: {exact: \"yes\"}}}]");
  EXPECT_TRUE(matches(get("/")));                          // absent
  EXPECT_TRUE(matches(get("/", {{"x-canary", "no"}})));    // present, not matching
  EXPECT_FALSE(matches(get("/", {{"X-Canary", "yes"}})));  // matching

  use("[{withoutHeaders: {x-canary: {}}}]");
  EXPECT_TRUE(matches(get("/")));
  EXPECT_FALSE(matches(get("/", {{"x-canary", ""}})));
}

TEST_F(L7RoutesMatch, QueryParams) {
  use("[{queryParams: {v: {exact: \"2\"}}}]");
  EXPECT_TRUE(matches(get("/?v=2")));
  EXPECT_TRUE(matches(get("/?a=1&v=2&b")));
  EXPECT_FALSE(matches(get("/?v=22")));
  EXPECT_FALSE(matches(get("/?vv=2")));
  EXPECT_FALSE(matches(get("/")));
  EXPECT_FALSE(matches(get("/?v")));  // no '=': an empty value

  use("[{queryParams: {q: {regex: \"a+\"}}}]");
  EXPECT_TRUE(matches(get("/?q=aaa")));
  EXPECT_FALSE(matches(get("/?q=aab")));

  use("[{queryParams: {debug: {}}}]");
  EXPECT_TRUE(matches(get("/?debug")));
  EXPECT_TRUE(matches(get("/?x=1&debug=0")));
  EXPECT_FALSE(matches(get("/?x=debug")));
}

TEST_F(L7RoutesMatch, Port) {
  use("[{port: 9081}]");
  Req r = get("/");
  EXPECT_FALSE(matches(r));
  r.port = 9081;
  EXPECT_TRUE(matches(r));
}

TEST_F(L7RoutesMatch, SourceLabelsAndNamespace) {
  use("[{sourceLabels: {app: productpage, version: v1}}]");
  Req r = get("/");
  EXPECT_FALSE(matches(r));  // no source labels known
  r.source_labels = Labels{{"app", "productpage"}};
  EXPECT_FALSE(matches(r));
  r.source_labels = Labels{{"app", "productpage"}, {"version", "v1"}, {"extra", "x"}};
  EXPECT_TRUE(matches(r));

  use("[{sourceNamespace: web}]");
  r = get("/");
  EXPECT_FALSE(matches(r));
  r.source_namespace = "web";
  EXPECT_TRUE(matches(r));
}

TEST_F(L7RoutesMatch, EntriesOrFieldsAnd) {
  use("[{name: a, uri: {prefix: /a}, method: {exact: POST}}, {name: b, uri: {prefix: /b}}]");
  int index = 7;
  EXPECT_FALSE(matches(get("/a"), &index));  // uri matches, method does not
  EXPECT_EQ(index, -1);
  Req post = get("/a");
  post.method = "POST";
  EXPECT_TRUE(matches(post, &index));
  EXPECT_EQ(index, 0);
  EXPECT_TRUE(matches(get("/b"), &index));
  EXPECT_EQ(index, 1);
}

TEST(L7RoutesMatchOrder, FirstMatchWins) {
  World w = build(baseYaml() +
                  drYaml("shop", "reviews",
                         "{host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, "
                         "labels: {version: v2}}]}") +
                  vsYaml("shop", "reviews",
                         "{hosts: [reviews], http: ["
                         "{name: jason, match: [{headers: {end-user: {exact: jason}}}], route: "
                         "[{destination: {host: reviews, subset: v2}}]},"
                         "{name: api, match: [{uri: {prefix: /api}}], route: [{destination: "
                         "{host: ratings}}]},"
                         "{name: api-v1, match: [{uri: {prefix: /api/v1}}], route: "
                         "[{destination: {host: reviews, subset: v1}}]},"
                         "{name: rest, route: [{destination: {host: reviews, subset: v1}}]}]}"));
  const L7Service& s = w.service("reviews", 9080);
  auto name = [&](const Req& r) {
    int index = 9;
    const L7Route* route = matchRoute(s, r.attrs(), &index);
    return route ? route->name + "#" + std::to_string(index) : "none";
  };
  EXPECT_EQ(name(get("/api/v1/x", {{"end-user", "jason"}})), "jason#0");
  EXPECT_EQ(name(get("/api/v1/x")), "api#0");  // the earlier, broader route shadows api-v1
  EXPECT_EQ(name(get("/other")), "rest#-1");

  World no_fallback =
      build(baseYaml() + vsYaml("shop", "reviews",
                                "{hosts: [reviews], http: [{match: [{uri: {prefix: /api}}], "
                                "route: [{destination: {host: reviews}}]}]}"));
  int index = 5;
  EXPECT_EQ(matchRoute(no_fallback.service("reviews", 9080), get("/other").attrs(), &index),
            nullptr);
  EXPECT_EQ(index, -1);
}

TEST(L7RoutesMatchCompile, RegexesCompiledOnceAndBadOnesMatchNothing) {
  HttpMatch m;
  m.uri = StringMatch{StringMatch::Kind::kRegex, "/a.*"};
  m.headers["x"] = StringMatch{StringMatch::Kind::kRegex, "(unclosed"};
  std::string error;
  L7Match c = compileMatch(m, &error);
  ASSERT_TRUE(c.uri.has_value());
  ASSERT_NE(c.uri->regex, nullptr);
  EXPECT_TRUE(c.uri->matches("/abc"));
  ASSERT_EQ(c.headers.size(), 1u);
  EXPECT_EQ(c.headers[0].match.regex, nullptr);
  EXPECT_FALSE(c.headers[0].match.matches("(unclosed"));
  EXPECT_NE(error.find("headers[x] regex \"(unclosed\" does not compile"), std::string::npos)
      << error;

  // In a snapshot built by hand (the sources reject such a regex): a warning, and the entry
  // never matches.
  World w = build(baseYaml());
  auto s = std::make_shared<Snapshot>(*w.snapshot);
  VirtualService vs;
  vs.meta.ns = "shop";
  vs.meta.name = "bad";
  vs.hosts = {"reviews"};
  HttpRoute route;
  route.match.push_back(m);
  route.route.push_back(HttpRouteDestination{RouteDestinationTarget{"reviews", "", 0}, 100, {}});
  vs.http.push_back(route);
  s->virtual_services.push_back(vs);
  auto config = compileL7(s, w.translated.desired);
  ASSERT_EQ(config->warnings.size(), 1u);
  EXPECT_NE(config->warnings[0].find("VirtualService shop/bad http[0] match[0]: headers[x] regex"),
            std::string::npos)
      << config->warnings[0];
  for (const auto& [id, svc] : config->services) {
    if (svc.name != "reviews") continue;
    Req r = get("/abc", {{"x", "(unclosed"}});
    EXPECT_EQ(matchRoute(svc, r.attrs()), nullptr);
    EXPECT_NE(svc.routes.at(0).matches.at(0).uri->regex, nullptr);
  }
}

// ---------------------------------------------------------------------------------------------
// Explaining a match (meshlet routes --explain)

// One route whose match list is `match` (flow YAML); why() explains its first entry and checks
// that the explanation agrees with matchRoute.
class L7RoutesExplain : public ::testing::Test {
 protected:
  void use(const std::string& match) {
    world_ = build(baseYaml() + vsYaml("shop", "reviews",
                                       "{hosts: [reviews], http: [{match: " + match +
                                           ", route: [{destination: {host: reviews}}]}]}"));
  }
  const L7Match& entry() { return world_.service("reviews", 9080).routes.at(0).matches.at(0); }
  std::string why(const Req& r) {
    std::string out = explainMatch(entry(), r.attrs());
    const bool matched = matchRoute(world_.service("reviews", 9080), r.attrs()) != nullptr;
    EXPECT_EQ(out.empty(), matched) << out;
    return out;
  }
  std::string describe() { return describeMatch(entry()); }
  World world_;
};

TEST_F(L7RoutesExplain, UriSchemeMethodAuthority) {
  use("[{uri: {prefix: /api/}}]");
  EXPECT_EQ(why(get("/api/x")), "");
  EXPECT_EQ(why(get("/x")), "uri: \"/x\" is not prefix \"/api/\"");
  use("[{uri: {exact: /api}, ignoreUriCase: true}]");
  EXPECT_EQ(why(get("/API")), "");
  EXPECT_EQ(why(get("/API/")), "uri: \"/API/\" is not exact \"/api\" (any case)");
  use("[{uri: {regex: \"/v[0-9]+\"}}]");
  EXPECT_EQ(why(get("/v1/x")), "uri: \"/v1/x\" is not regex \"/v[0-9]+\"");
  use("[{scheme: {exact: https}}]");
  EXPECT_EQ(why(get("/")), "scheme: \"http\" is not exact \"https\"");
  use("[{method: {exact: POST}}]");
  EXPECT_EQ(why(get("/")), "method: \"GET\" is not exact \"POST\"");
  use("[{authority: {prefix: ratings}}]");
  EXPECT_EQ(why(get("/")), "authority: \"reviews:9080\" is not prefix \"ratings\"");
}

TEST_F(L7RoutesExplain, HeadersWithoutHeadersAndQueryParams) {
  use("[{headers: {x-canary: {exact: \"yes\"}, x-debug: {}}}]");
  EXPECT_EQ(why(get("/", {{"X-Canary", "yes"}, {"x-debug", ""}})), "");
  EXPECT_EQ(why(get("/", {{"x-debug", ""}})), "header x-canary: absent (want exact \"yes\")");
  EXPECT_EQ(why(get("/", {{"x-canary", "no"}})), "header x-canary: \"no\" is not exact \"yes\"");
  EXPECT_EQ(why(get("/", {{"x-canary", "yes"}})), "header x-debug: absent (want present)");

  use("[{withoutHeaders: {x-canary: {exact: \"yes\"}, x-debug: {}}}]");
  EXPECT_EQ(why(get("/", {{"x-canary", "no"}})), "");
  EXPECT_EQ(why(get("/", {{"x-canary", "yes"}})),
            "without header x-canary: \"yes\" is exact \"yes\"");
  EXPECT_EQ(why(get("/", {{"x-debug", "1"}})), "without header x-debug: present");

  use("[{queryParams: {v: {exact: \"2\"}}}]");
  EXPECT_EQ(why(get("/?a=1&v=2")), "");
  EXPECT_EQ(why(get("/?a=1")), "query v: absent (want exact \"2\")");
  EXPECT_EQ(why(get("/?v=22")), "query v: \"22\" is not exact \"2\"");
}

TEST_F(L7RoutesExplain, PortAndSource) {
  use("[{port: 9081}]");
  EXPECT_EQ(why(get("/")), "port: 9080 is not 9081");
  use("[{sourceNamespace: web}]");
  Req r = get("/");
  EXPECT_EQ(why(r), "source namespace: unknown (want \"web\")");
  r.source_namespace = "shop";
  EXPECT_EQ(why(r), "source namespace: \"shop\" is not \"web\"");
  r.source_namespace = "web";
  EXPECT_EQ(why(r), "");
  use("[{sourceLabels: {app: productpage, version: v1}}]");
  r = get("/");
  EXPECT_EQ(why(r), "source labels: unknown (want app=productpage,version=v1)");
  r.source_labels = Labels{{"app", "productpage"}};
  EXPECT_EQ(why(r), "source label version: absent (want \"v1\")");
  r.source_labels = Labels{{"app", "productpage"}, {"version", "v2"}};
  EXPECT_EQ(why(r), "source label version: \"v2\" is not \"v1\"");
  r.source_labels = Labels{{"app", "productpage"}, {"version", "v1"}, {"x", "y"}};
  EXPECT_EQ(why(r), "");
}

TEST_F(L7RoutesExplain, FirstFailingConditionInMatchOrder) {
  // matchRoute's order: port, source, uri, scheme, method, authority, headers, without, query.
  use("[{port: 9081, uri: {prefix: /a}, headers: {x: {exact: \"1\"}}}]");
  EXPECT_EQ(why(get("/b")), "port: 9080 is not 9081");
  use("[{uri: {prefix: /a}, method: {exact: POST}, headers: {x: {exact: \"1\"}}}]");
  EXPECT_EQ(why(get("/b")), "uri: \"/b\" is not prefix \"/a\"");
  EXPECT_EQ(why(get("/a")), "method: \"GET\" is not exact \"POST\"");
  Req post = get("/a");
  post.method = "POST";
  EXPECT_EQ(why(post), "header x: absent (want exact \"1\")");
  post.headers.fields.push_back({"x", "1"});
  EXPECT_EQ(why(post), "");
}

TEST_F(L7RoutesExplain, BadRegexNeverMatches) {
  L7Match m;
  m.uri = L7StringMatcher{StringMatch::Kind::kRegex, "(unclosed", false, nullptr};
  Req r = get("/x");
  EXPECT_EQ(explainMatch(m, r.attrs()),
            "uri: \"/x\" is not regex \"(unclosed\" (does not compile)");
  EXPECT_EQ(explainMatch(L7Match{}, r.attrs()), "");
}

TEST_F(L7RoutesExplain, DescribeMatch) {
  EXPECT_EQ(describeMatch(L7Match{}), "any");
  use("[{uri: {prefix: /api/}, headers: {x-canary: {exact: \"yes\"}}}]");
  EXPECT_EQ(describe(), "uri prefix /api/, header x-canary=yes");
  use("[{uri: {exact: /API}, ignoreUriCase: true, scheme: {exact: http}, method: {regex: "
      "\"GET|HEAD\"}, authority: {prefix: reviews}, headers: {x-v: {prefix: \"2.\"}, x-d: {}}, "
      "withoutHeaders: {x-canary: {exact: \"yes\"}}, queryParams: {v: {regex: \"[0-9]+\"}}, "
      "port: 9080, sourceLabels: {app: a, v: \"1\"}, sourceNamespace: web}]");
  EXPECT_EQ(describe(),
            "uri exact /API (any case), scheme exact http, method regex GET|HEAD, authority prefix "
            "reviews, header x-d present, header x-v prefix 2., without header x-canary=yes, query "
            "v regex [0-9]+, port 9080, source labels app=a,v=1, source namespace web");
}

// ---------------------------------------------------------------------------------------------
// Weighted picks

L7Route weighted(std::vector<int> weights) {
  L7Route r;
  for (size_t i = 0; i < weights.size(); ++i) {
    r.clusters.push_back(L7WeightedCluster{static_cast<uint32_t>(i), weights[i], nullptr});
  }
  return r;
}

std::vector<int> distribution(const L7Route& r) {
  std::vector<int> counts(r.clusters.size(), 0);
  for (uint32_t x = 0; x < 100; ++x) {
    const L7WeightedCluster* c = pickCluster(r, x);
    EXPECT_NE(c, nullptr);
    if (c) ++counts[c->cluster];
  }
  return counts;
}

TEST(L7RoutesPick, WeightsExactlyOverHundredDraws) {
  EXPECT_EQ(distribution(weighted({100})), std::vector<int>{100});
  EXPECT_EQ(distribution(weighted({75, 25})), (std::vector<int>{75, 25}));
  EXPECT_EQ(distribution(weighted({50, 30, 20})), (std::vector<int>{50, 30, 20}));
  EXPECT_EQ(distribution(weighted({0, 100, 0})), (std::vector<int>{0, 100, 0}));
  EXPECT_EQ(distribution(weighted({1, 98, 1})), (std::vector<int>{1, 98, 1}));
  // Not summing to 100: scaled.
  EXPECT_EQ(distribution(weighted({30, 20})), (std::vector<int>{60, 40}));
  EXPECT_EQ(distribution(weighted({100, 100, 200})), (std::vector<int>{25, 25, 50}));
  EXPECT_EQ(pickCluster(L7Route{}, 0), nullptr);
}

TEST(L7RoutesPick, CompiledWeights) {
  World w =
      build(baseYaml() + vsYaml("shop", "reviews",
                                "{hosts: [reviews], http: [{route: [{destination: {host: reviews}, "
                                "weight: 75}, {destination: {host: ratings}, weight: 25, headers: "
                                "{request: {set: {x-to: ratings}}}}]}]}"));
  const L7Route& r = w.service("reviews", 9080).routes.at(0);
  ASSERT_EQ(r.clusters.size(), 2u);
  EXPECT_EQ(r.clusters[0].weight, 75);
  EXPECT_EQ(r.clusters[1].weight, 25);
  ASSERT_NE(r.clusters[1].headers, nullptr);
  EXPECT_EQ(r.clusters[1].headers->request.set.at("x-to"), "ratings");
  std::map<std::string, int> counts;
  for (uint32_t x = 0; x < 100; ++x) ++counts[w.cluster(pickCluster(r, x)->cluster).service_name];
  EXPECT_EQ(counts, (std::map<std::string, int>{{"ratings", 25}, {"reviews", 75}}));
}

}  // namespace
}  // namespace meshlet::l7
