// L4 authorization: policies parsed from YAML by the real parser, decisions for connections.
#include "agent/policy/authz.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "agent/sources/file_source.h"

namespace meshlet {
namespace {

std::string policy(const std::string& ns, const std::string& name, const std::string& spec) {
  return "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " +
         name + ", namespace: " + ns + "}\nspec: " + spec + "\n";
}

Snapshot load(const std::string& yaml) {
  Snapshot s;
  Status st = parseYaml(yaml, "policies.yaml", s);
  EXPECT_TRUE(st.ok()) << st.error().message();
  return s;
}

// A connection to the `db` workload (namespace shop, label app=db) on port 5432.
L4Connection to(const std::string& principal, const std::string& src_ip = "198.18.0.2",
                int port = 5432) {
  L4Connection c;
  c.source_principal = principal;
  c.source_ip = *IpAddr::parse(src_ip);
  c.destination_ip = *IpAddr::parse("198.18.0.9");
  c.destination_port = port;
  c.destination_namespace = "shop";
  c.destination_labels = {{"app", "db"}};
  return c;
}

const char* kWeb = "cluster.local/ns/shop/sa/web";
const char* kOther = "cluster.local/ns/shop/sa/other";
const char* kEvil = "cluster.local/ns/evil/sa/x";

TEST(AuthzL4, NoPolicyAllows) {
  Snapshot s;
  auto d = authorizeL4(s, to(kWeb));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(describe(d), "allowed");
}

TEST(AuthzL4, AllowByPrincipalDeniesEveryoneElseIncludingPlaintext) {
  Snapshot s = load(policy("shop", "db-from-web",
                           "{selector: {matchLabels: {app: db}}, action: ALLOW, rules: [{from: "
                           "[{source: {principals: [\"cluster.local/ns/shop/sa/web\"]}}]}]}"));
  auto ok = authorizeL4(s, to(kWeb));
  EXPECT_TRUE(ok.allowed);
  EXPECT_EQ(describe(ok), "allowed by shop/db-from-web");
  auto other = authorizeL4(s, to(kOther));
  EXPECT_FALSE(other.allowed);
  EXPECT_EQ(describe(other), "denied: no ALLOW policy matched");
  EXPECT_FALSE(authorizeL4(s, to("")).allowed);  // plaintext has no principal
}

TEST(AuthzL4, SelectorLimitsThePolicyToItsWorkloads) {
  Snapshot s = load(policy("shop", "cache-only",
                           "{selector: {matchLabels: {app: cache}}, rules: [{from: [{source: "
                           "{principals: [\"cluster.local/ns/nobody/sa/none\"]}}]}]}"));
  EXPECT_TRUE(authorizeL4(s, to(kOther)).allowed);  // db is not selected
  L4Connection c = to(kOther);
  c.destination_labels = {{"app", "cache"}};
  EXPECT_FALSE(authorizeL4(s, c).allowed);
}

TEST(AuthzL4, MeshWideDenyInTheRootNamespaceWinsOverAnAllow) {
  Snapshot s =
      load(policy("istio-system", "no-evil",
                  "{action: DENY, rules: [{from: [{source: {namespaces: [\"evil\"]}}]}]}") +
           policy("shop", "allow-all", "{rules: [{}]}"));
  auto d = authorizeL4(s, to(kEvil));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(describe(d), "denied by istio-system/no-evil");
  EXPECT_EQ(describe(authorizeL4(s, to(kWeb))), "allowed by shop/allow-all");
  // A policy of another namespace does not apply.
  Snapshot other = load(policy("elsewhere", "deny-all", "{action: DENY, rules: [{}]}"));
  EXPECT_TRUE(authorizeL4(other, to(kWeb)).allowed);
}

TEST(AuthzL4, NotPrincipalsStarSelectsPlaintextPeers) {
  Snapshot s =
      load(policy("shop", "mtls-only",
                  "{action: DENY, rules: [{from: [{source: {notPrincipals: [\"*\"]}}]}]}"));
  EXPECT_FALSE(authorizeL4(s, to("")).allowed);
  EXPECT_TRUE(authorizeL4(s, to(kWeb)).allowed);
}

TEST(AuthzL4, PortsIpBlocksAndConditions) {
  Snapshot s = load(policy("shop", "db-port",
                           "{rules: [{from: [{source: {ipBlocks: [\"198.18.0.0/24\"], notIpBlocks: "
                           "[\"198.18.0.66\"]}}], "
                           "to: [{operation: {ports: [\"5432\"]}}], when: [{key: source.namespace, "
                           "values: [\"shop\"]}]}]}"));
  EXPECT_TRUE(authorizeL4(s, to(kWeb)).allowed);
  EXPECT_FALSE(authorizeL4(s, to(kWeb, "198.18.0.2", 22)).allowed);  // port
  EXPECT_FALSE(authorizeL4(s, to(kWeb, "198.18.1.2")).allowed);      // outside the block
  EXPECT_FALSE(authorizeL4(s, to(kWeb, "198.18.0.66")).allowed);     // excluded address
  EXPECT_FALSE(authorizeL4(s, to(kEvil)).allowed);                   // namespace condition
  EXPECT_FALSE(authorizeL4(s, to("")).allowed);  // no principal, so no namespace
}

// HTTP attributes cannot be judged at L4: an ALLOW rule with them never matches, a DENY rule
// with them is judged on its L4 parts (fail safe, as ztunnel does).
TEST(AuthzL4, HttpAttributesFailSafe) {
  Snapshot allow =
      load(policy("shop", "get-only", "{rules: [{to: [{operation: {methods: [\"GET\"]}}]}]}"));
  EXPECT_FALSE(authorizeL4(allow, to(kWeb)).allowed);
  Snapshot deny = load(policy("shop", "no-admin",
                              "{action: DENY, rules: [{from: [{source: {principals: "
                              "[\"cluster.local/ns/shop/sa/other\"]}}], to: [{operation: "
                              "{paths: [\"/admin*\"]}}]}]}"));
  EXPECT_FALSE(authorizeL4(deny, to(kOther)).allowed);
  EXPECT_TRUE(authorizeL4(deny, to(kWeb)).allowed);
}

TEST(AuthzL4, AllowNothingAndAuditOnlyReports) {
  Snapshot nothing = load(policy("shop", "allow-nothing", "{}"));
  EXPECT_FALSE(authorizeL4(nothing, to(kWeb)).allowed);
  Snapshot audit = load(policy("shop", "watch-evil",
                               "{action: AUDIT, rules: [{from: [{source: {namespaces: "
                               "[\"evil\"]}}]}]}"));
  auto d = authorizeL4(audit, to(kEvil));
  EXPECT_TRUE(d.allowed);
  ASSERT_EQ(d.audited.size(), 1u);
  EXPECT_EQ(d.audited[0], "shop/watch-evil");
  EXPECT_TRUE(authorizeL4(audit, to(kWeb)).audited.empty());
}


std::string peerAuth(const std::string& ns, const std::string& name, const std::string& spec) {
  return "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " +
         name + ", namespace: " + ns + "}\nspec: " + spec + "\n";
}

const Labels kDb = {{"app", "db"}};

TEST(EffectiveMtls, DefaultIsPermissive) {
  Snapshot s;
  auto d = effectiveMtls(s, "shop", kDb, 5432);
  EXPECT_EQ(d.mode, MtlsMode::kPermissive);
  EXPECT_EQ(d.policy, "");
}

TEST(EffectiveMtls, MostSpecificWinsAndUnsetInherits) {
  Snapshot s = load(peerAuth("istio-system", "mesh", "{mtls: {mode: STRICT}}") +
                    peerAuth("shop", "ns", "{mtls: {mode: PERMISSIVE}}") +
                    peerAuth("shop", "db",
                             "{selector: {matchLabels: {app: db}}, mtls: {mode: "
                             "UNSET}, portLevelMtls: {\"9090\": {mode: DISABLE}}}"));
  // The workload policy is UNSET for 5432: the namespace decides.
  auto d = effectiveMtls(s, "shop", kDb, 5432);
  EXPECT_EQ(d.mode, MtlsMode::kPermissive);
  EXPECT_EQ(d.policy, "shop/ns");
  // Port 9090 has its own mode.
  auto p = effectiveMtls(s, "shop", kDb, 9090);
  EXPECT_EQ(p.mode, MtlsMode::kDisable);
  EXPECT_EQ(p.policy, "shop/db");
  // Another namespace: only the mesh-wide policy.
  auto other = effectiveMtls(s, "billing", kDb, 5432);
  EXPECT_EQ(other.mode, MtlsMode::kStrict);
  EXPECT_EQ(other.policy, "istio-system/mesh");
  // A workload the selector does not match: the namespace's.
  EXPECT_EQ(effectiveMtls(s, "shop", {{"app", "web"}}, 9090).policy, "shop/ns");
}

}  // namespace
}  // namespace meshlet

namespace meshlet {
namespace {

HttpRequestAttrs request(std::string_view method, std::string_view path,
                         std::map<std::string, std::string> headers = {},
                         std::string_view host = "db.shop.svc.cluster.local") {
  HttpRequestAttrs h;
  h.method = method;
  h.path = path;
  h.host = host;
  h.header = [headers](const std::string& name) -> std::optional<std::string> {
    auto it = headers.find(name);
    if (it == headers.end()) return std::nullopt;
    return it->second;
  };
  return h;
}

// On the L7 path every attribute is evaluated: the HTTP parts of a rule match or not, where at
// L4 an ALLOW rule with HTTP parts never matches.
TEST(AuthzL7, MethodsPathsAndHostsInAnAllow) {
  Snapshot s =
      load(policy("shop", "db-read",
                  "{selector: {matchLabels: {app: db}}, action: ALLOW, rules: [{to: "
                  "[{operation: {methods: [GET, HEAD], paths: [\"/api/*\", /health], "
                  "notPaths: [/api/secret], hosts: [\"DB.shop.svc.cluster.local\"]}}]}]}"));
  EXPECT_FALSE(authorizeL4(s, to(kWeb)).allowed);  // L4 cannot see the method: fails safe
  EXPECT_TRUE(authorizeL7(s, to(kWeb), request("GET", "/api/items")).allowed);
  EXPECT_TRUE(authorizeL7(s, to(kWeb), request("HEAD", "/health")).allowed);
  EXPECT_FALSE(authorizeL7(s, to(kWeb), request("POST", "/api/items")).allowed);
  EXPECT_FALSE(authorizeL7(s, to(kWeb), request("GET", "/apix")).allowed);
  EXPECT_FALSE(authorizeL7(s, to(kWeb), request("GET", "/api/secret")).allowed);
  EXPECT_FALSE(authorizeL7(s, to(kWeb), request("GET", "/api/items", {}, "other.shop")).allowed);
  auto d = authorizeL7(s, to(kWeb), request("GET", "/api/x"));
  EXPECT_EQ(describe(d), "allowed by shop/db-read");
}

TEST(AuthzL7, HeaderConditionsAndAbsentJwt) {
  Snapshot s = load(policy("shop", "db-deny-blocked",
                           "{selector: {matchLabels: {app: db}}, action: DENY, rules: [{when: "
                           "[{key: \"request.headers[x-block]\", values: [\"yes\", \"y*\"]}]}]}") +
                    policy("shop", "db-jwt",
                           "{selector: {matchLabels: {app: db}}, action: ALLOW, rules: [{from: "
                           "[{source: {requestPrincipals: [\"*\"]}}]}, {from: [{source: "
                           "{notRequestPrincipals: [\"*\"], principals: [" +
                               std::string("\"") + kWeb + "\"]}}]}]}"));
  // DENY on the header, whatever the ALLOW says.
  auto d = authorizeL7(s, to(kWeb), request("GET", "/", {{"x-block", "yes"}}));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.policy, "shop/db-deny-blocked");
  EXPECT_FALSE(authorizeL7(s, to(kWeb), request("GET", "/", {{"x-block", "yesss"}})).allowed);
  // No JWT: requestPrincipals ["*"] does not match; notRequestPrincipals does.
  EXPECT_TRUE(authorizeL7(s, to(kWeb), request("GET", "/", {{"x-block", "no"}})).allowed);
  EXPECT_FALSE(authorizeL7(s, to(kOther), request("GET", "/")).allowed);
}

// At the destination of an L7-path connection, the client's agent decided the HTTP parts: an
// ALLOW rule counts on its L4 parts, a DENY rule with HTTP parts no longer denies everything.
TEST(AuthzL7, DestinationTrustsTheL7Verdict) {
  Snapshot s =
      load(policy("shop", "db-read",
                  "{selector: {matchLabels: {app: db}}, action: ALLOW, rules: [{from: "
                  "[{source: {principals: [\"" +
                      std::string(kWeb) + "\"]}}], to: [{operation: {methods: [GET]}}]}]}") +
           policy("shop", "db-block",
                  "{selector: {matchLabels: {app: db}}, action: DENY, rules: [{when: "
                  "[{key: \"request.headers[x-block]\", values: [\"yes\"]}]}]}"));
  EXPECT_FALSE(authorizeL4(s, to(kWeb)).allowed);  // plain L4: fails safe
  auto d = authorizeL4AfterL7(s, to(kWeb));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.policy, "shop/db-read");
  EXPECT_FALSE(authorizeL4AfterL7(s, to(kOther)).allowed);  // the L4 parts still count
}

}  // namespace
}  // namespace meshlet
