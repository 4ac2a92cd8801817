// `/v1/routes` and `/v1/routes/explain` (routes_view.cc) on the scenario's cluster with a
// VirtualService and a DestinationRule on demo/web, compiled by the real compileL7.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/admin/views.h"
#include "agent/l7/routes.h"
#include "tests/unit/admin/scenario.h"

namespace meshlet {
namespace {

StringMatch exact(std::string v) { return StringMatch{StringMatch::Kind::kExact, std::move(v)}; }
StringMatch prefix(std::string v) { return StringMatch{StringMatch::Kind::kPrefix, std::move(v)}; }

HttpRouteDestination to(std::string subset, int weight = 100) {
  return HttpRouteDestination{RouteDestinationTarget{"web", std::move(subset), 0}, weight, {}};
}

// demo/web's routes: canary (header), old (redirect), api (two entries, split, rewrite, timeout,
// retries, header rules), fault; nothing matches "/".
std::vector<HttpRoute> webRoutes() {
  std::vector<HttpRoute> out;
  HttpRoute canary;
  canary.name = "canary";
  canary.match.emplace_back().headers["x-canary"] = exact("yes");
  canary.route.push_back(to("v3"));
  out.push_back(canary);

  HttpRoute old;
  old.name = "old";
  old.match.emplace_back().uri = prefix("/old/");
  old.redirect = HttpRedirect{"/new/place", "", "", 0, 301};
  out.push_back(old);

  HttpRoute api;
  api.name = "api";
  api.match.emplace_back().uri = prefix("/api/");
  HttpMatch post;
  post.uri = exact("/v1");
  post.method = exact("POST");
  api.match.push_back(post);
  api.route.push_back(to("legacy", 80));
  api.route.push_back(to("v3", 20));
  api.rewrite = HttpRewrite{"/v1/", "", std::nullopt};
  api.timeout_ms = 300;
  api.retries = HttpRetry{3, 2000, {RetryOn::k5xx, RetryOn::kConnectFailure}, {}};
  api.headers.request.set["x-added"] = "yes";
  api.headers.request.remove.push_back("x-drop");
  api.headers.response.add["x-served-by"] = "meshlet";
  out.push_back(api);

  HttpRoute fault;
  fault.match.emplace_back().uri = exact("/fault");
  fault.fault = HttpFault{std::nullopt, HttpFault::Abort{418, 50}};
  fault.route.push_back(to(""));
  fault.mirrors.push_back(HttpMirror{RouteDestinationTarget{"web", "v3", 0}, 12.5});
  out.push_back(fault);
  return out;
}

class AdminRoutesViewTest : public ::testing::Test {
 protected:
  void SetUp() override { build(webRoutes()); }

  // The scenario's snapshot plus a DestinationRule (subsets v3, legacy) and VirtualService
  // demo/web with `routes`, translated and compiled as the agent does.
  void build(std::vector<HttpRoute> routes, bool extra_web = false) {
    auto s = scenario::makeSnapshot();
    DestinationRule dr;
    dr.meta.ns = "demo";
    dr.meta.name = "web";
    dr.host = "web";
    dr.subsets.push_back(Subset{"v3", {{"version", "v3"}}, std::nullopt});
    dr.subsets.push_back(Subset{"legacy", {{"app", "web-legacy"}}, std::nullopt});
    s->destination_rules.push_back(dr);
    VirtualService vs;
    vs.meta.ns = "demo";
    vs.meta.name = "web";
    vs.hosts = {"web"};
    vs.http = std::move(routes);
    s->virtual_services.push_back(vs);
    if (extra_web) {
      Service other;
      other.meta.ns = "plain";
      other.meta.name = "web";
      other.cluster_ips = {scenario::ip("198.19.0.50")};
      other.ports.push_back(scenario::svcPort("tcp", 80, Protocol::kTCP));
      s->services.push_back(other);
    }
    auto desired = std::make_shared<DesiredDatapath>(scenario::translateSnapshot(*s));
    view_ = AgentView{};
    view_.snapshot = s;
    view_.desired = desired;
    view_.status.node_name = scenario::kNode;
    view_.l7 = l7::compileL7(s, *desired);
  }

  Json explain(const std::string& method, const std::string& url,
               std::vector<std::string> headers = {}, const std::string& source = "") {
    auto out = explainRouteJson(view_, RouteQuery{method, url, std::move(headers), source});
    EXPECT_TRUE(out.ok()) << out.error().message();
    return out.ok() ? *out : Json();
  }
  std::string explainError(const std::string& url, std::vector<std::string> headers = {},
                           const std::string& source = "") {
    auto out = explainRouteJson(view_, RouteQuery{"GET", url, std::move(headers), source});
    EXPECT_FALSE(out.ok()) << out->dump();
    return out.ok() ? "" : out.error().message();
  }

  AgentView view_;
};

std::vector<std::string> keysOf(const Json& obj) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : obj.items()) keys.push_back(k);
  return keys;
}

TEST_F(AdminRoutesViewTest, RoutesOneRowPerRouteInOrderWithDocumentedColumns) {
  Json j = routesJson(view_, "");
  ASSERT_TRUE(j.is_array());
  // demo/api (port name grpc: the default route to itself), then demo/web's four routes once,
  // although web is dual-stack (two service ids with the same routes).
  ASSERT_EQ(j.size(), 5u) << j.dump(2);
  EXPECT_EQ(keysOf(j[0]),
            (std::vector<std::string>{"kind", "service", "port", "l7_reason", "route",
                                      "virtual_service", "match", "endpoints", "action"}));
  EXPECT_EQ(j[0]["kind"], "route");
  EXPECT_EQ(j[0]["service"], "api.demo");
  EXPECT_EQ(j[0]["port"], 8080);
  EXPECT_EQ(j[0]["l7_reason"], "port name grpc");
  EXPECT_EQ(j[0]["route"], "default");
  EXPECT_EQ(j[0]["virtual_service"], "");
  EXPECT_EQ(j[0]["match"], "any");
  EXPECT_EQ(j[0]["action"], "route api.demo.svc.cluster.local 100%");
  EXPECT_EQ(j[0]["endpoints"], Json::array({1}));

  std::vector<std::string> names;
  for (size_t i = 1; i < j.size(); ++i) {
    EXPECT_EQ(j[i]["service"], "web.demo");
    EXPECT_EQ(j[i]["port"], 80);
    EXPECT_EQ(j[i]["l7_reason"], "VirtualService demo/web");
    EXPECT_EQ(j[i]["virtual_service"], "demo/web");
    names.push_back(j[i]["route"].get<std::string>());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"canary", "old", "api", "demo/web/http[3]"}));

  EXPECT_EQ(j[1]["match"], "header x-canary=yes");
  EXPECT_EQ(j[1]["action"], "route web.demo.svc.cluster.local|v3 100%");
  EXPECT_EQ(j[1]["endpoints"], Json::array({1}));  // web-2 (version v3)

  EXPECT_EQ(j[2]["match"], "uri prefix /old/");
  EXPECT_EQ(j[2]["action"], "redirect /new/place 301");
  EXPECT_EQ(j[2]["endpoints"], Json::array());

  EXPECT_EQ(j[3]["match"], "uri prefix /api/ | uri exact /v1, method exact POST");
  EXPECT_EQ(j[3]["action"],
            "route web.demo.svc.cluster.local|legacy 80%, web.demo.svc.cluster.local|v3 20%; "
            "rewrite uri /v1/; timeout 300ms; retries 3 on 5xx,connect-failure per try 2s; "
            "headers request set x-added, remove x-drop; response add x-served-by");
  EXPECT_EQ(j[3]["endpoints"], Json::array({2, 1}));  // web-1 on IPv4 and IPv6; web-2

  EXPECT_EQ(j[4]["match"], "uri exact /fault");
  EXPECT_EQ(j[4]["action"],
            "route web.demo.svc.cluster.local 100%; fault abort 418 50%; "
            "mirror web.demo.svc.cluster.local|v3 12.5%");
  EXPECT_EQ(j[4]["endpoints"], Json::array({3}));
}

TEST_F(AdminRoutesViewTest, RoutesFilterAndWarnings) {
  auto routes = webRoutes();
  routes[0].route[0].destination.subset = "v9";  // no DestinationRule defines it
  build(routes);
  Json all = routesJson(view_, "");
  ASSERT_EQ(all.size(), 6u) << all.dump(2);
  EXPECT_EQ(all[1]["endpoints"], Json::array({0}));
  const Json& w = all.back();
  EXPECT_EQ(keysOf(w), (std::vector<std::string>{"kind", "message"}));
  EXPECT_EQ(w["kind"], "warning");
  EXPECT_NE(w["message"].get<std::string>().find("VirtualService demo/web http[0]: destination "
                                                 "web.demo.svc.cluster.local subset v9"),
            std::string::npos)
      << w.dump();

  Json web = routesJson(view_, "demo/web");
  ASSERT_EQ(web.size(), 5u) << web.dump(2);
  EXPECT_EQ(web[0]["route"], "canary");
  EXPECT_EQ(web.back()["kind"], "warning");
  Json api = routesJson(view_, "demo/api");
  ASSERT_EQ(api.size(), 1u) << api.dump(2);  // the warning is not about api
  EXPECT_EQ(api[0]["service"], "api.demo");
  EXPECT_TRUE(routesJson(view_, "demo/nothing").empty());

  view_.l7 = nullptr;
  EXPECT_TRUE(routesJson(view_, "").empty());
}

TEST_F(AdminRoutesViewTest, AnswerCodes) {
  auto [code, body] = routesAnswer(view_, "/v1/routes", {});
  EXPECT_EQ(code, 200);
  EXPECT_EQ(body.size(), 5u);
  std::tie(code, body) = routesAnswer(view_, "/v1/routes", {{"service", "demo/web"}});
  EXPECT_EQ(code, 200);
  EXPECT_EQ(body.size(), 4u);
  std::tie(code, body) = routesAnswer(view_, "/v1/routes", {{"service", "alpha/zeta"}});
  EXPECT_EQ(code, 404);
  EXPECT_EQ(body["error"],
            "service alpha/zeta has no port on the L7 path: its connections are balanced in the "
            "kernel, without routes");
  std::tie(code, body) = routesAnswer(view_, "/v1/routes", {{"service", "web"}});
  EXPECT_EQ(code, 404);
  EXPECT_EQ(body["error"], "no service default/web");

  std::tie(code, body) = routesAnswer(
      view_, "/v1/routes/explain",
      {{"method", "GET"}, {"url", "http://web.demo/x"}, {"headers", "x-a: 1\nx-canary: yes"}});
  EXPECT_EQ(code, 200);
  EXPECT_EQ(body["route"], "canary") << body.dump(2);
  std::tie(code, body) =
      routesAnswer(view_, "/v1/routes/explain", {{"method", "GET"}, {"url", "http://nope.demo/"}});
  EXPECT_EQ(code, 400);
  EXPECT_EQ(body["error"],
            "no service nope.demo.svc.cluster.local (HOST: NAME, NAME.NAMESPACE, "
            "NAME.NAMESPACE.svc.cluster.local or a cluster IP)");

  view_.l7 = nullptr;
  std::tie(code, body) = routesAnswer(view_, "/v1/routes", {});
  EXPECT_EQ(code, 503);
  EXPECT_EQ(body["error"], "no L7 configuration yet: the mesh proxy has none");
}

TEST_F(AdminRoutesViewTest, ExplainNamesTheRouteTheEntryAndWhyEarlierOnesFailed) {
  Json j = explain("GET", "http://web.demo/api/x?q=1");
  EXPECT_EQ(keysOf(j),
            (std::vector<std::string>{"request", "service", "port", "l7_reason", "source", "result",
                                      "route", "virtual_service", "match_index", "match", "action",
                                      "destinations", "not_matched"}));
  EXPECT_EQ(j["request"], "GET http://web.demo/api/x?q=1");
  EXPECT_EQ(j["service"], "web.demo");
  EXPECT_EQ(j["port"], 80);
  EXPECT_EQ(j["l7_reason"], "VirtualService demo/web");
  EXPECT_EQ(j["source"], "");
  EXPECT_EQ(j["result"], "matched");
  EXPECT_EQ(j["route"], "api");
  EXPECT_EQ(j["virtual_service"], "demo/web");
  EXPECT_EQ(j["match_index"], 0);
  EXPECT_EQ(j["match"], "uri prefix /api/");
  EXPECT_EQ(j["action"].get<std::string>().rfind("route web.demo.svc.cluster.local|legacy 80%", 0),
            0u);
  ASSERT_EQ(j["destinations"].size(), 2u);
  EXPECT_EQ(j["destinations"][0], (Json{{"destination", "web.demo.svc.cluster.local|legacy"},
                                        {"weight", 80},
                                        {"endpoints", 2},
                                        {"addresses", "198.18.0.10:8080,[2001:db8::10]:8080"}}));
  EXPECT_EQ(j["destinations"][1]["weight"], 20);
  EXPECT_EQ(j["destinations"][1]["addresses"], "198.18.1.10:8080");
  EXPECT_EQ(j["not_matched"],
            (Json::array({Json{{"route", "canary"},
                               {"virtual_service", "demo/web"},
                               {"why", "header x-canary: absent (want exact \"yes\")"}},
                          Json{{"route", "old"},
                               {"virtual_service", "demo/web"},
                               {"why", "uri: \"/api/x\" is not prefix \"/old/\""}}})));

  // The second entry of api; a header (any case, spaces trimmed) picks canary first.
  j = explain("POST", "http://web.demo/v1");
  EXPECT_EQ(j["route"], "api");
  EXPECT_EQ(j["match_index"], 1);
  EXPECT_EQ(j["match"], "uri exact /v1, method exact POST");
  j = explain("POST", "http://web.demo/v1", {"X-Canary:  yes "});
  EXPECT_EQ(j["route"], "canary");
  EXPECT_EQ(j["match_index"], 0);
  EXPECT_TRUE(j["not_matched"].empty());
}

TEST_F(AdminRoutesViewTest, ExplainWithoutAMatchingRoute) {
  Json j = explain("GET", "http://web.demo/");
  EXPECT_EQ(j["result"], "no route: 404 NR");
  EXPECT_EQ(j["route"], "");
  EXPECT_EQ(j["match_index"], -1);
  EXPECT_EQ(j["match"], "");
  EXPECT_EQ(j["action"], "404 (no route)");
  EXPECT_TRUE(j["destinations"].empty());
  ASSERT_EQ(j["not_matched"].size(), 4u);
  EXPECT_EQ(j["not_matched"][2]["why"],
            "match[0]: uri: \"/\" is not prefix \"/api/\"; match[1]: uri: \"/\" is not exact "
            "\"/v1\"");
  EXPECT_EQ(j["not_matched"][3]["route"], "demo/web/http[3]");

  // Redirect and fault routes: the action says so, no destinations for a redirect.
  j = explain("GET", "http://web.demo/old/a");
  EXPECT_EQ(j["action"], "redirect /new/place 301");
  EXPECT_TRUE(j["destinations"].empty());
  j = explain("GET", "http://web.demo/fault");
  EXPECT_EQ(j["route"], "demo/web/http[3]");
  EXPECT_EQ(j["match"], "uri exact /fault");
  EXPECT_NE(j["action"].get<std::string>().find("fault abort 418 50%"), std::string::npos);
  EXPECT_EQ(j["destinations"][0]["endpoints"], 3);
}

TEST_F(AdminRoutesViewTest, ExplainFindsTheServiceByEveryName) {
  for (const char* url :
       {"http://web.demo/api/x", "web.demo/api/x", "http://web/api/x", "http://web.demo.svc/api/x",
        "http://WEB.demo.svc.cluster.local./api/x", "http://web.demo:80/api/x",
        "http://198.19.0.10/api/x", "http://[2001:db8::a:10]:80/api/x#frag"}) {
    Json j = explain("GET", url);
    EXPECT_EQ(j["service"], "web.demo") << url;
    EXPECT_EQ(j["route"], "api") << url;
  }
  // The authority is HOST[:PORT] as written, or the Host header.
  auto routes = webRoutes();
  routes[0].match[0].headers.clear();
  routes[0].match[0].authority = exact("web.demo:80");
  build(routes);
  EXPECT_EQ(explain("GET", "http://web.demo:80/")["route"], "canary");
  EXPECT_EQ(explain("GET", "http://198.19.0.10/", {"Host: web.demo:80"})["route"], "canary");
  Json j = explain("GET", "http://web.demo/");
  EXPECT_EQ(j["not_matched"][0]["why"], "authority: \"web.demo\" is not exact \"web.demo:80\"");

  // A bare name in two namespaces needs the namespace or the client's.
  build(webRoutes(), true);
  EXPECT_EQ(explainError("http://web/"),
            "service name web is ambiguous (web.demo, web.plain): write NAME.NAMESPACE, or give "
            "--source");
  EXPECT_EQ(explain("GET", "http://web/api/", {}, "demo/client-1")["route"], "api");
  EXPECT_EQ(explainError("http://web/", {}, "plain/tool"),
            "service plain/web port 80 is not on the L7 path: its connections are balanced in the "
            "kernel, without routes");
}

TEST_F(AdminRoutesViewTest, ExplainSourceLabelsAndNamespace) {
  std::vector<HttpRoute> routes(1);
  routes[0].name = "from-client";
  HttpMatch& m = routes[0].match.emplace_back();
  m.source_labels = {{"app", "client"}};
  m.source_namespace = "demo";
  routes[0].route.push_back(to(""));
  build(routes);
  Json j = explain("GET", "http://web.demo/", {}, "demo/client-1");
  EXPECT_EQ(j["source"], "demo/client-1");
  EXPECT_EQ(j["route"], "from-client");
  EXPECT_EQ(j["match"], "source labels app=client, source namespace demo");
  j = explain("GET", "http://web.demo/");
  EXPECT_EQ(j["not_matched"][0]["why"], "source namespace: unknown (want \"demo\")");
  j = explain("GET", "http://web.demo/", {}, "demo/web-1");
  EXPECT_EQ(j["not_matched"][0]["why"], "source label app: \"web-legacy\" is not \"client\"");
  j = explain("GET", "http://web.demo/", {}, "plain/tool");
  EXPECT_EQ(j["not_matched"][0]["why"], "source namespace: \"plain\" is not \"demo\"");
}

TEST_F(AdminRoutesViewTest, ExplainUsageErrors) {
  const std::string want = ": want http://HOST[:PORT]/path?query (HOST a service or cluster IP)";
  EXPECT_EQ(explainError("https://web.demo/"),
            "URL \"https://web.demo/\"" + want + "; only http is proxied on the L7 path");
  for (const char* url : {"http:///x", "http://:80/", "http://web.demo:/", "http://web.demo:99999/",
                          "http://web.demo:8o/", "http://[2001:db8::a:10/", "http://u@web/"}) {
    EXPECT_EQ(explainError(url), "URL \"" + std::string(url) + "\"" + want) << url;
  }
  EXPECT_EQ(explainError("http://web.demo:81/"), "service demo/web has no TCP port 81");
  EXPECT_EQ(explainError("http://zeta.alpha:53/"), "service alpha/zeta has no TCP port 53");
  EXPECT_EQ(explainError("http://198.19.0.99/"), "no service has cluster IP 198.19.0.99 port 80");
  EXPECT_EQ(explainError("http://nothing/"), "no service named nothing");
  EXPECT_EQ(explainError("http://web.demo/", {"no-colon"}),
            "header \"no-colon\": want 'Name: value'");
  EXPECT_EQ(explainError("http://web.demo/", {": v"}), "header \": v\": want 'Name: value'");
  EXPECT_EQ(explainError("http://web.demo/", {}, "demo/ghost"),
            "no pod demo/ghost (--source NAMESPACE/POD)");
  EXPECT_EQ(explainError("http://web.demo/", {}, "ghost"),
            "no pod default/ghost (--source NAMESPACE/POD)");
  auto out = explainRouteJson(view_, RouteQuery{"", "http://web.demo/", {}, ""});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().message(), "no METHOD given");
  view_.l7 = nullptr;
  EXPECT_EQ(explainError("http://web.demo/"), "no L7 configuration yet: the mesh proxy has none");
}

}  // namespace
}  // namespace meshlet
