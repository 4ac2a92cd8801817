// security.istio.io AuthorizationPolicy and PeerAuthentication through parseYaml: every field
// into its model value, Istio's documented shapes, and every kind of bad input rejected with
// file, document, object and field.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/sources/file_source.h"
#include "agent/sources/objects.h"

namespace meshlet {
namespace {

IpAddr ip(const char* text) { return *IpAddr::parse(text); }

Snapshot parseOk(const std::string& text) {
  Snapshot s;
  Status st = parseYaml(text, "policy.yaml", s);
  EXPECT_TRUE(st.ok()) << st.error().message();
  return s;
}

std::string parseError(const std::string& text) {
  Snapshot s;
  Status st = parseYaml(text, "policy.yaml", s);
  EXPECT_FALSE(st.ok()) << "accepted:\n" << text;
  EXPECT_TRUE(s.authorization_policies.empty() && s.peer_authentications.empty());
  return st.ok() ? "" : st.error().message();
}

StringPattern exact(const char* v) { return {StringPattern::Kind::kExact, v}; }
StringPattern prefix(const char* v) { return {StringPattern::Kind::kPrefix, v}; }
StringPattern suffix(const char* v) { return {StringPattern::Kind::kSuffix, v}; }
StringPattern any() { return {StringPattern::Kind::kAny, ""}; }

// An AuthorizationPolicy document around `spec` (flow or block YAML).
std::string authz(const std::string& spec, const std::string& version = "v1",
                  const std::string& meta = "{name: httpbin, namespace: foo}") {
  return "apiVersion: security.istio.io/" + version +
         "\nkind: AuthorizationPolicy\nmetadata: " + meta + "\nspec: " + spec + "\n";
}

std::string peer(const std::string& spec, const std::string& meta = "{name: pa, namespace: foo}") {
  return "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: " + meta +
         "\nspec: " + spec + "\n";
}

// Istio's documentation example ("allow requests from ... and with a valid JWT"), as
// `kubectl get -o yaml` prints it, server-side fields included.
constexpr const char* kDocsPolicy = R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy"}
  creationTimestamp: "2024-05-02T09:14:11Z"
  generation: 3
  managedFields:
  - apiVersion: security.istio.io/v1
    fieldsType: FieldsV1
    manager: kubectl-client-side-apply
    operation: Update
  name: httpbin
  namespace: foo
  resourceVersion: "48151"
  uid: 2b1f0c8e-8d53-4a5e-9d0e-5c3e8f2b9a11
spec:
  selector:
    matchLabels:
      app: httpbin
      version: v1
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    - source:
        namespaces: ["dev"]
    to:
    - operation:
        methods: ["GET"]
        paths: ["/info*"]
    - operation:
        methods: ["POST"]
        paths: ["/data"]
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.google.com"]
status:
  validationMessages: []
)";

TEST(AuthorizationPolicyParse, IstioDocsExample) {
  Snapshot s = parseOk(kDocsPolicy);
  ASSERT_EQ(s.authorization_policies.size(), 1u);
  const AuthorizationPolicy& p = s.authorization_policies[0];
  EXPECT_EQ(p.meta.name, "httpbin");
  EXPECT_EQ(p.meta.ns, "foo");
  EXPECT_EQ(p.meta.uid, "2b1f0c8e-8d53-4a5e-9d0e-5c3e8f2b9a11");
  EXPECT_EQ(p.meta.origin.file, "policy.yaml");
  EXPECT_EQ(p.meta.origin.document, 1);
  ASSERT_TRUE(p.selector.has_value());
  EXPECT_EQ(*p.selector, (Labels{{"app", "httpbin"}, {"version", "v1"}}));
  EXPECT_EQ(p.scope(), PolicyScope::kWorkload);
  EXPECT_EQ(p.action, AuthzAction::kAllow);
  ASSERT_EQ(p.rules.size(), 1u);
  const AuthzRule& r = p.rules[0];
  ASSERT_EQ(r.from.size(), 2u);
  EXPECT_EQ(r.from[0].principals,
            std::vector<StringPattern>{exact("cluster.local/ns/default/sa/sleep")});
  EXPECT_EQ(r.from[1].namespaces, std::vector<StringPattern>{exact("dev")});
  ASSERT_EQ(r.to.size(), 2u);
  EXPECT_EQ(r.to[0].methods, std::vector<StringPattern>{exact("GET")});
  EXPECT_EQ(r.to[0].paths, std::vector<StringPattern>{prefix("/info")});
  EXPECT_EQ(r.to[1].paths, std::vector<StringPattern>{exact("/data")});
  ASSERT_EQ(r.when.size(), 1u);
  EXPECT_EQ(r.when[0].key, AuthzCondition::Key::kRequestAuthClaims);
  EXPECT_EQ(r.when[0].key_text, "request.auth.claims[iss]");
  EXPECT_EQ(r.when[0].claim, std::vector<std::string>{"iss"});
  EXPECT_EQ(r.when[0].values, std::vector<StringPattern>{exact("https://accounts.google.com")});
}

TEST(AuthorizationPolicyParse, EverySourceField) {
  Snapshot s = parseOk(authz(R"(
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/a/sa/b", "*", "cluster.local/ns/x/*", "*/sa/admin"]
        notPrincipals: ["cluster.local/ns/a/sa/evil"]
        requestPrincipals: ["https://issuer.example.com/alice", "*"]
        notRequestPrincipals: ["https://issuer.example.com/*"]
        namespaces: ["prod", "team-*", "*-dev"]
        notNamespaces: ["kube-system"]
        ipBlocks: ["198.18.0.0/15", "198.19.1.7", "2001:db8::/32"]
        notIpBlocks: ["198.18.3.4/16"]
        remoteIpBlocks: ["203.0.113.0/24"]
        notRemoteIpBlocks: ["::1"])",
                             "v1beta1"));
  ASSERT_EQ(s.authorization_policies.size(), 1u);
  const AuthorizationPolicy& p = s.authorization_policies[0];
  EXPECT_FALSE(p.selector.has_value());
  EXPECT_EQ(p.action, AuthzAction::kDeny);
  const AuthzSource& src = p.rules.at(0).from.at(0);
  EXPECT_EQ(src.principals,
            (std::vector<StringPattern>{exact("cluster.local/ns/a/sa/b"), any(),
                                        prefix("cluster.local/ns/x/"), suffix("/sa/admin")}));
  EXPECT_EQ(src.not_principals, std::vector<StringPattern>{exact("cluster.local/ns/a/sa/evil")});
  EXPECT_EQ(src.request_principals,
            (std::vector<StringPattern>{exact("https://issuer.example.com/alice"), any()}));
  EXPECT_EQ(src.not_request_principals,
            std::vector<StringPattern>{prefix("https://issuer.example.com/")});
  EXPECT_EQ(src.namespaces,
            (std::vector<StringPattern>{exact("prod"), prefix("team-"), suffix("-dev")}));
  EXPECT_EQ(src.not_namespaces, std::vector<StringPattern>{exact("kube-system")});
  EXPECT_EQ(
      src.ip_blocks,
      (std::vector<Cidr>{{ip("198.18.0.0"), 15}, {ip("198.19.1.7"), 32}, {ip("2001:db8::"), 32}}));
  // Host bits after the prefix are allowed (as in Istio) and ignored when matching.
  EXPECT_EQ(src.not_ip_blocks, (std::vector<Cidr>{{ip("198.18.3.4"), 16}}));
  EXPECT_TRUE(src.not_ip_blocks[0].contains(ip("198.18.200.1")));
  EXPECT_FALSE(src.not_ip_blocks[0].contains(ip("198.19.0.1")));
  EXPECT_EQ(src.remote_ip_blocks, (std::vector<Cidr>{{ip("203.0.113.0"), 24}}));
  EXPECT_EQ(src.not_remote_ip_blocks, (std::vector<Cidr>{{ip("::1"), 128}}));
}

TEST(AuthorizationPolicyParse, EveryOperationField) {
  Snapshot s = parseOk(authz(R"(
  action: AUDIT
  rules:
  - to:
    - operation:
        hosts: ["www.example.com", "*.example.org"]
        notHosts: ["admin.example.com"]
        ports: ["8080", 9090]
        notPorts: ["22"]
        methods: ["GET", "HEAD", "*"]
        notMethods: ["DELETE"]
        paths: ["/api/*", "*.html", "/exact", "*"]
        notPaths: ["/admin*"])"));
  const AuthorizationPolicy& p = s.authorization_policies.at(0);
  EXPECT_EQ(p.action, AuthzAction::kAudit);
  const AuthzOperation& op = p.rules.at(0).to.at(0);
  EXPECT_EQ(op.hosts,
            (std::vector<StringPattern>{exact("www.example.com"), suffix(".example.org")}));
  EXPECT_EQ(op.not_hosts, std::vector<StringPattern>{exact("admin.example.com")});
  EXPECT_EQ(op.ports, (std::vector<int>{8080, 9090}));
  EXPECT_EQ(op.not_ports, std::vector<int>{22});
  EXPECT_EQ(op.methods, (std::vector<StringPattern>{exact("GET"), exact("HEAD"), any()}));
  EXPECT_EQ(op.not_methods, std::vector<StringPattern>{exact("DELETE")});
  EXPECT_EQ(op.paths,
            (std::vector<StringPattern>{prefix("/api/"), suffix(".html"), exact("/exact"), any()}));
  EXPECT_EQ(op.not_paths, std::vector<StringPattern>{prefix("/admin")});
}

TEST(AuthorizationPolicyParse, EveryConditionKey) {
  Snapshot s = parseOk(authz(R"(
  rules:
  - when:
    - {key: "request.headers[X-Token]", values: ["abc*", ""], notValues: ["bad"]}
    - {key: source.ip, values: ["198.18.0.0/16"], notValues: ["198.18.1.1"]}
    - {key: remote.ip, values: ["2001:db8::1"]}
    - {key: source.namespace, values: ["prod"], notValues: ["test-*"]}
    - {key: source.principal, values: ["cluster.local/ns/a/sa/b"]}
    - {key: request.auth.principal, values: ["iss/sub"]}
    - {key: request.auth.audiences, values: ["aud"]}
    - {key: request.auth.presenter, values: ["client*"]}
    - {key: "request.auth.claims[groups][admin]", values: ["true"]}
    - {key: destination.ip, values: ["198.18.10.10"]}
    - {key: destination.port, values: ["80", "8080"], notValues: ["9000"]}
    - {key: connection.sni, values: ["*.example.com"]})"));
  const std::vector<AuthzCondition>& w = s.authorization_policies.at(0).rules.at(0).when;
  ASSERT_EQ(w.size(), 12u);
  using Key = AuthzCondition::Key;
  EXPECT_EQ(w[0].key, Key::kRequestHeader);
  EXPECT_EQ(w[0].header, "x-token");
  EXPECT_EQ(w[0].values, (std::vector<StringPattern>{prefix("abc"), exact("")}));
  EXPECT_EQ(w[0].not_values, std::vector<StringPattern>{exact("bad")});
  EXPECT_EQ(w[1].key, Key::kSourceIp);
  EXPECT_EQ(w[1].cidr_values, (std::vector<Cidr>{{ip("198.18.0.0"), 16}}));
  EXPECT_EQ(w[1].not_cidr_values, (std::vector<Cidr>{{ip("198.18.1.1"), 32}}));
  EXPECT_TRUE(w[1].values.empty());
  EXPECT_EQ(w[2].key, Key::kRemoteIp);
  EXPECT_EQ(w[2].cidr_values, (std::vector<Cidr>{{ip("2001:db8::1"), 128}}));
  EXPECT_EQ(w[3].key, Key::kSourceNamespace);
  EXPECT_EQ(w[3].not_values, std::vector<StringPattern>{prefix("test-")});
  EXPECT_EQ(w[4].key, Key::kSourcePrincipal);
  EXPECT_EQ(w[5].key, Key::kRequestAuthPrincipal);
  EXPECT_EQ(w[6].key, Key::kRequestAuthAudiences);
  EXPECT_EQ(w[7].key, Key::kRequestAuthPresenter);
  EXPECT_EQ(w[7].values, std::vector<StringPattern>{prefix("client")});
  EXPECT_EQ(w[8].key, Key::kRequestAuthClaims);
  EXPECT_EQ(w[8].claim, (std::vector<std::string>{"groups", "admin"}));
  EXPECT_EQ(w[9].key, Key::kDestinationIp);
  EXPECT_EQ(w[10].key, Key::kDestinationPort);
  EXPECT_EQ(w[10].port_values, (std::vector<int>{80, 8080}));
  EXPECT_EQ(w[10].not_port_values, std::vector<int>{9000});
  EXPECT_EQ(w[11].key, Key::kConnectionSni);
  EXPECT_EQ(w[11].values, std::vector<StringPattern>{suffix(".example.com")});
}

TEST(AuthorizationPolicyParse, IstioSemanticsArePreserved) {
  // `spec: {}`: ALLOW with no rules, i.e. allow-nothing (denies everything it selects).
  Snapshot a = parseOk(authz("{}"));
  EXPECT_EQ(a.authorization_policies.at(0).action, AuthzAction::kAllow);
  EXPECT_EQ(a.authorization_policies.at(0).scope(), PolicyScope::kNamespace);
  EXPECT_EQ(a.authorization_policies.at(0).scope("foo"), PolicyScope::kMesh);
  EXPECT_TRUE(a.authorization_policies.at(0).rules.empty());
  // No spec at all reads the same.
  Snapshot b =
      parseOk("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x}\n");
  EXPECT_TRUE(b.authorization_policies.at(0).rules.empty());
  EXPECT_EQ(b.authorization_policies.at(0).meta.ns, "default");
  // `rules: [{}]`: one rule that matches everything (allow-all).
  Snapshot c = parseOk(authz("{rules: [{}]}"));
  ASSERT_EQ(c.authorization_policies.at(0).rules.size(), 1u);
  const AuthzRule& r = c.authorization_policies.at(0).rules[0];
  EXPECT_TRUE(r.from.empty() && r.to.empty() && r.when.empty());
  // An empty selector is kept as "present, selects everything", distinct from absent.
  Snapshot d = parseOk(authz("{selector: {matchLabels: {}}}"));
  ASSERT_TRUE(d.authorization_policies.at(0).selector.has_value());
  EXPECT_TRUE(d.authorization_policies.at(0).selector->empty());
}

TEST(AuthorizationPolicyParse, StringPatternMatching) {
  EXPECT_TRUE(any().matches(""));
  EXPECT_TRUE(prefix("cluster.local/ns/x/").matches("cluster.local/ns/x/sa/y"));
  EXPECT_FALSE(prefix("cluster.local/ns/x/").matches("cluster.local/ns/y/sa/y"));
  EXPECT_TRUE(suffix("/sa/admin").matches("td/ns/a/sa/admin"));
  EXPECT_FALSE(suffix("/sa/admin").matches("admin"));
  EXPECT_TRUE(exact("GET").matches("GET"));
  EXPECT_FALSE(exact("GET").matches("GETX"));
  Cidr zero{ip("0.0.0.0"), 0};
  EXPECT_TRUE(zero.contains(ip("203.0.113.9")));
  EXPECT_FALSE(zero.contains(ip("::1")));
  Cidr v6{ip("2001:db8::"), 33};
  EXPECT_TRUE(v6.contains(ip("2001:db8:7fff::1")));
  EXPECT_FALSE(v6.contains(ip("2001:db8:8000::1")));
}

TEST(AuthorizationPolicyParse, ListOfPoliciesAndTypedList) {
  Snapshot s = parseOk(R"(apiVersion: v1
kind: List
items:
- apiVersion: security.istio.io/v1beta1
  kind: AuthorizationPolicy
  metadata: {name: deny-all, namespace: prod}
  spec: {}
- apiVersion: security.istio.io/v1
  kind: PeerAuthentication
  metadata: {name: default, namespace: istio-system}
  spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicyList
items:
- metadata: {name: a, namespace: prod}
  spec: {action: DENY, rules: [{from: [{source: {notNamespaces: [prod]}}]}]}
- metadata: {name: b, namespace: prod}
)");
  ASSERT_EQ(s.authorization_policies.size(), 3u);
  EXPECT_EQ(s.authorization_policies[0].meta.name, "deny-all");
  EXPECT_EQ(s.authorization_policies[1].meta.name, "a");
  EXPECT_EQ(s.authorization_policies[1].action, AuthzAction::kDeny);
  EXPECT_EQ(s.authorization_policies[2].meta.origin.document, 2);
  ASSERT_EQ(s.peer_authentications.size(), 1u);
  EXPECT_EQ(s.peer_authentications[0].scope(), PolicyScope::kMesh);
}

TEST(PeerAuthenticationParse, EveryField) {
  Snapshot s = parseOk(R"(apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: finance
  namespace: foo
  generation: 1
  resourceVersion: "9"
spec:
  selector:
    matchLabels:
      app: finance
  mtls:
    mode: STRICT
  portLevelMtls:
    8080:
      mode: DISABLE
    "9090":
      mode: PERMISSIVE
    "9091": {}
)");
  ASSERT_EQ(s.peer_authentications.size(), 1u);
  const PeerAuthentication& p = s.peer_authentications[0];
  EXPECT_EQ(p.meta.name, "finance");
  ASSERT_TRUE(p.selector.has_value());
  EXPECT_EQ(*p.selector, (Labels{{"app", "finance"}}));
  EXPECT_EQ(p.mode, MtlsMode::kStrict);
  EXPECT_EQ(p.port_modes, (std::map<int, MtlsMode>{{8080, MtlsMode::kDisable},
                                                   {9090, MtlsMode::kPermissive},
                                                   {9091, MtlsMode::kUnset}}));
  EXPECT_EQ(p.scope(), PolicyScope::kWorkload);
}

TEST(PeerAuthenticationParse, Scopes) {
  Snapshot s = parseOk(
      peer("{mtls: {mode: PERMISSIVE}}", "{name: default, namespace: istio-system}") + "---\n" +
      peer("{}", "{name: default, namespace: foo}") + "---\n" + peer("{mtls: {}}", "{name: d}"));
  ASSERT_EQ(s.peer_authentications.size(), 3u);
  EXPECT_EQ(s.peer_authentications[0].scope(), PolicyScope::kMesh);
  EXPECT_EQ(s.peer_authentications[0].mode, MtlsMode::kPermissive);
  EXPECT_EQ(s.peer_authentications[1].scope(), PolicyScope::kNamespace);
  EXPECT_EQ(s.peer_authentications[1].mode, MtlsMode::kUnset);
  EXPECT_EQ(s.peer_authentications[2].scope(), PolicyScope::kNamespace);
  EXPECT_EQ(s.peer_authentications[2].scope("default"), PolicyScope::kMesh);
  EXPECT_EQ(std::string(kIstioRootNamespace), "istio-system");
}

TEST(IstioSecurity, DuplicateNamesPerKindAreRejected) {
  Snapshot s = parseOk(authz("{}") + "---\n" + authz("{}"));
  Status st = validateSnapshot(s);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(),
            "policy.yaml (document 2): AuthorizationPolicy foo/httpbin: duplicate object, also "
            "defined in policy.yaml (document 1)");
  // The same name in another kind or namespace is fine.
  Snapshot t = parseOk(authz("{}") + "---\n" + peer("{}", "{name: httpbin, namespace: foo}") +
                       "---\n" + authz("{}", "v1", "{name: httpbin, namespace: bar}"));
  EXPECT_TRUE(validateSnapshot(t).ok());
}

TEST(IstioSecurity, ParseObjectNodeAcceptsIstioKinds) {
  YamlDocument n;
  YamlParseError e;
  ASSERT_TRUE(n.parse(authz("{action: DENY, rules: [{}]}"), e)) << e.format();
  Snapshot s;
  Status st = parseObjectNode(n.root(), "watch authorizationpolicies", s);
  ASSERT_TRUE(st.ok()) << st.error().message();
  ASSERT_EQ(s.authorization_policies.size(), 1u);
  EXPECT_EQ(s.authorization_policies[0].meta.origin.file, "watch authorizationpolicies");
  // As items of a typed list (no apiVersion/kind of their own).
  YamlDocument item;
  ASSERT_TRUE(item.parse("metadata: {name: p, namespace: foo}\nspec: {mtls: {mode: STRICT}}", e));
  Snapshot t;
  st = parseObjectNode(item.root(), "list peerauthentications", t, "security.istio.io/v1beta1",
                       "PeerAuthentication");
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(t.peer_authentications.at(0).mode, MtlsMode::kStrict);
  YamlDocument bad;
  ASSERT_TRUE(bad.parse(authz("{action: CUSTOM}"), e));
  Snapshot u;
  st = parseObjectNode(bad.root(), "watch authorizationpolicies", u);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(),
            "watch authorizationpolicies: AuthorizationPolicy foo/httpbin: spec.action: CUSTOM "
            "(external authorization) is not supported (ALLOW, DENY or AUDIT)");
}

// The Kubernetes source hands over objects as the API server sends them: JSON.
TEST(IstioSecurity, JsonFromTheApiServer) {
  YamlDocument n;
  YamlParseError e;
  ASSERT_TRUE(n.parse(R"({"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy",
    "metadata":{"name":"p","namespace":"foo","resourceVersion":"12","generation":1,
                "managedFields":[{"manager":"kubectl","operation":"Update"}]},
    "spec":{"action":"DENY","rules":[{"from":[{"source":{"ipBlocks":["198.18.0.0/16"]}}],
            "to":[{"operation":{"ports":["8080"]}}]}]},
    "status":{"observedGeneration":"1"}})",
                      e))
      << e.format();
  Snapshot s;
  Status st = parseObjectNode(n.root(), "watch authorizationpolicies", s);
  ASSERT_TRUE(st.ok()) << st.error().message();
  const AuthorizationPolicy& p = s.authorization_policies.at(0);
  EXPECT_EQ(p.action, AuthzAction::kDeny);
  EXPECT_EQ(p.rules.at(0).to.at(0).ports, std::vector<int>{8080});
  EXPECT_EQ(p.rules.at(0).from.at(0).ip_blocks, (std::vector<Cidr>{{ip("198.18.0.0"), 16}}));
}

struct BadInput {
  const char* name;
  std::string yaml;
  std::string expected;  // the whole error message
};

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

const std::string kAP = "policy.yaml (document 1): AuthorizationPolicy foo/httpbin: ";
const std::string kPA = "policy.yaml (document 1): PeerAuthentication foo/pa: ";
const std::string kSrc = "{rules: [{from: [{source: ";
const std::string kOp = "{rules: [{to: [{operation: ";

const std::vector<BadInput> kBad = {
    // Identity.
    {"WrongApiVersion", authz("{}", "v1alpha1"),
     kAP + "apiVersion: \"security.istio.io/v1alpha1\" is not valid for kind AuthorizationPolicy "
           "(expected security.istio.io/v1 or security.istio.io/v1beta1)"},
    {"NetworkingVersionForSecurityKind",
     "apiVersion: networking.istio.io/v1\nkind: AuthorizationPolicy\n"
     "metadata: {name: httpbin, namespace: foo}\n",
     kAP + "apiVersion: \"networking.istio.io/v1\" is not valid for kind AuthorizationPolicy "
           "(expected security.istio.io/v1 or security.istio.io/v1beta1)"},
    {"UnknownTopLevelField", authz("{}") + "extra: 1\n", kAP + "extra: unknown field"},
    {"BadName", authz("{}", "v1", "{name: Bad_Name, namespace: foo}"),
     "policy.yaml (document 1): AuthorizationPolicy foo/Bad_Name: metadata.name: \"Bad_Name\" is "
     "not a valid name: a DNS-1123 subdomain must consist of lower case alphanumeric characters, "
     "'-' or '.', and must start and end with an alphanumeric character"},
    {"TypedListWrongVersion",
     "apiVersion: networking.istio.io/v1\nkind: AuthorizationPolicyList\nitems: []\n",
     "policy.yaml (document 1): apiVersion: \"networking.istio.io/v1\" is not valid for kind "
     "AuthorizationPolicyList (expected security.istio.io/v1 or security.istio.io/v1beta1)"},
    // Spec shape.
    {"SpecNotAMap", authz("[]"), kAP + "spec: expected a map, got a list"},
    {"UnknownSpecField", authz("{rule: []}"), kAP + "spec.rule: unknown field"},
    {"TargetRef", authz("{targetRef: {kind: Gateway, name: gw}}"),
     kAP + "spec.targetRef: is not supported: meshlet has no waypoints or gateways to attach a "
           "policy to; use selector.matchLabels to select workloads"},
    {"TargetRefs", authz("{targetRefs: [{kind: Service, name: s}]}"),
     kAP + "spec.targetRefs: is not supported: meshlet has no waypoints or gateways to attach a "
           "policy to; use selector.matchLabels to select workloads"},
    {"SelectorUnknownField", authz("{selector: {matchExpressions: []}}"),
     kAP + "spec.selector.matchExpressions: unknown field"},
    {"SelectorBadLabel", authz("{selector: {matchLabels: {\"a b\": c}}}"),
     kAP + "spec.selector.matchLabels[\"a b\"]: invalid label key \"a b\": the name part must "
           "consist of alphanumeric characters, '-', '_' or '.'"},
    {"SelectorWildcard", authz("{selector: {matchLabels: {app: \"web*\"}}}"),
     kAP + "spec.selector.matchLabels[\"app\"]: invalid label value \"web*\": must start and end "
           "with an alphanumeric character"},
    {"ActionCustom", authz("{action: CUSTOM, provider: {name: ext}}"),
     kAP + "spec.action: CUSTOM (external authorization) is not supported (ALLOW, DENY or AUDIT)"},
    {"ActionUnknown", authz("{action: allow}"),
     kAP + "spec.action: \"allow\" is not a valid action (ALLOW, DENY or AUDIT)"},
    {"ProviderWithoutCustom", authz("{provider: {name: ext}}"),
     kAP + "spec.provider: only valid with action CUSTOM"},
    {"RulesNotAList", authz("{rules: {from: []}}"), kAP + "spec.rules: expected a list, got a map"},
    {"RuleUnknownField", authz("{rules: [{form: []}]}"), kAP + "spec.rules[0].form: unknown field"},
    {"FromWithoutSource", authz("{rules: [{from: [{}]}]}"),
     kAP + "spec.rules[0].from[0].source: required field is missing"},
    {"EmptySource", authz(kSrc + "{}}]}]}"),
     kAP + "spec.rules[0].from[0].source: must not be empty (as Istio requires)"},
    {"SourceUnknownField", authz(kSrc + "{principal: [x]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.principal: unknown field"},
    {"SourceServiceAccounts", authz(kSrc + "{serviceAccounts: [x]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.serviceAccounts: is not supported: use principals"},
    // Principals.
    {"PrincipalSpiffePrefix",
     authz(
         kSrc +
         "{principals: [\"cluster.local/ns/a/sa/b\", \"spiffe://cluster.local/ns/a/sa/b\"]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.principals[1]: \"spiffe://cluster.local/ns/a/sa/b\": "
           "write principals without the \"spiffe://\" prefix (e.g. "
           "\"cluster.local/ns/default/sa/web\")"},
    {"PrincipalMalformed", authz(kSrc + "{principals: [cluster.local/sa/b]}}]}]}"),
     kAP +
         "spec.rules[0].from[0].source.principals[0]: \"cluster.local/sa/b\": expected "
         "TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT (e.g. \"cluster.local/ns/default/sa/web\")"},
    {"PrincipalBadNamespace", authz(kSrc + "{notPrincipals: [cluster.local/ns/A/sa/b]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.notPrincipals[0]: \"cluster.local/ns/A/sa/b\": "
           "namespace: a DNS-1123 label must consist of lower case alphanumeric characters or "
           "'-', and must start and end with an alphanumeric character"},
    {"PrincipalMiddleWildcard", authz(kSrc + "{principals: [\"cluster.local/ns/*/sa/b\"]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.principals[0]: \"cluster.local/ns/*/sa/b\": a wildcard "
           "'*' is only allowed alone or as the first or last character"},
    {"PrincipalTwoWildcards", authz(kSrc + "{principals: [\"*ns*\"]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.principals[0]: \"*ns*\": a wildcard '*' is only allowed "
           "alone or as the first or last character"},
    {"PrincipalEmpty", authz(kSrc + "{principals: [\"\"]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.principals[0]: \"\": must not be empty"},
    {"PrincipalSpace", authz(kSrc + "{principals: [\"cluster.local/ns/a/sa/b \"]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.principals[0]: \"cluster.local/ns/a/sa/b \": must not "
           "contain whitespace or control characters"},
    {"PrincipalPrefixBadChars", authz(kSrc + "{principals: [\"Cluster.local/*\"]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.principals[0]: \"Cluster.local/*\": may only contain "
           "lower case alphanumerics, '.', '-', '_' and '/'"},
    {"PrincipalNotAList", authz(kSrc + "{principals: cluster.local/ns/a/sa/b}}]}]}"),
     kAP + "spec.rules[0].from[0].source.principals: expected a list, got "
           "\"cluster.local/ns/a/sa/b\""},
    {"RequestPrincipalNoSlash", authz(kSrc + "{requestPrincipals: [alice]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.requestPrincipals[0]: \"alice\": expected ISSUER/SUBJECT"},
    // Namespaces.
    {"NamespaceBad", authz(kSrc + "{namespaces: [Prod]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.namespaces[0]: \"Prod\": a DNS-1123 label must consist "
           "of lower case alphanumeric characters or '-', and must start and end with an "
           "alphanumeric character"},
    {"NamespacePatternBad", authz(kSrc + "{notNamespaces: [\"team_*\"]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.notNamespaces[0]: \"team_*\": may only contain lower "
           "case alphanumerics and '-'"},
    // CIDRs.
    {"IpBlockBad", authz(kSrc + "{ipBlocks: [198.18.0.0/15, 198.18.0.300]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.ipBlocks[1]: \"198.18.0.300\" is not a valid IP "
           "address or CIDR block"},
    {"IpBlockPrefixTooLong", authz(kSrc + "{notIpBlocks: [198.18.0.0/33]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.notIpBlocks[0]: \"198.18.0.0/33\": prefix length 33 is "
           "out of range 0-32"},
    {"IpBlockV6PrefixTooLong", authz(kSrc + "{remoteIpBlocks: [\"2001:db8::/129\"]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.remoteIpBlocks[0]: \"2001:db8::/129\": prefix length "
           "129 is out of range 0-128"},
    {"IpBlockBadPrefix", authz(kSrc + "{notRemoteIpBlocks: [198.18.0.0/a]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.notRemoteIpBlocks[0]: \"198.18.0.0/a\" is not a valid "
           "CIDR block (bad prefix length)"},
    {"IpBlockEmptyPrefix", authz(kSrc + "{ipBlocks: [198.18.0.0/]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.ipBlocks[0]: \"198.18.0.0/\" is not a valid CIDR block "
           "(bad prefix length)"},
    {"IpBlockNotAString", authz(kSrc + "{ipBlocks: [{cidr: x}]}}]}]}"),
     kAP + "spec.rules[0].from[0].source.ipBlocks[0]: expected a string, got a map"},
    // Operations.
    {"ToWithoutOperation", authz("{rules: [{to: [{}]}]}"),
     kAP + "spec.rules[0].to[0].operation: required field is missing"},
    {"EmptyOperation", authz(kOp + "{}}]}]}"),
     kAP + "spec.rules[0].to[0].operation: must not be empty (as Istio requires)"},
    {"OperationUnknownField", authz(kOp + "{port: [\"80\"]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.port: unknown field"},
    {"PortZero", authz(kOp + "{ports: [\"0\"]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.ports[0]: 0 is out of range 1-65535"},
    {"PortTooBig", authz(kOp + "{notPorts: [\"80\", \"65536\"]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.notPorts[1]: 65536 is out of range 1-65535"},
    {"PortNotANumber", authz(kOp + "{ports: [http]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.ports[0]: \"http\" is not a valid port number"},
    {"PortRange", authz(kOp + "{ports: [\"80-90\"]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.ports[0]: \"80-90\" is not a valid port number"},
    {"PortNegative", authz(kOp + "{ports: [-1]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.ports[0]: \"-1\" is not a valid port number"},
    {"MethodBad", authz(kOp + "{methods: [\"GE T\"]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.methods[0]: \"GE T\": must not contain whitespace or "
           "control characters"},
    {"MethodBadChar", authz(kOp + "{notMethods: [\"GET/\"]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.notMethods[0]: \"GET/\": is not a valid HTTP method"},
    {"PathNoSlash", authz(kOp + "{paths: [api]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.paths[0]: \"api\": must start with '/' (or be \"*\" or "
           "\"*SUFFIX\")"},
    {"PathTemplate", authz(kOp + "{notPaths: [\"/foo/{*}/bar\"]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.notPaths[0]: \"/foo/{*}/bar\": path templates ({*}, "
           "{**}) are not supported"},
    {"PathMiddleWildcard", authz(kOp + "{paths: [\"/a/*/b\"]}}]}]}"),
     kAP + "spec.rules[0].to[0].operation.paths[0]: \"/a/*/b\": a wildcard '*' is only allowed "
           "alone or as the first or last character"},
    // Conditions.
    {"WhenUnknownKey", authz("{rules: [{when: [{key: request.method, values: [GET]}]}]}"),
     kAP + "spec.rules[0].when[0].key: \"request.method\": unknown key (expected "
           "request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, "
           "request.auth.principal, request.auth.audiences, request.auth.presenter, "
           "request.auth.claims[NAME], destination.ip, destination.port or connection.sni)"},
    {"WhenExperimentalKey",
     authz("{rules: [{when: [{key: experimental.envoy.filters.x, values: [a]}]}]}"),
     kAP + "spec.rules[0].when[0].key: \"experimental.envoy.filters.x\": unknown key (expected "
           "request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, "
           "request.auth.principal, request.auth.audiences, request.auth.presenter, "
           "request.auth.claims[NAME], destination.ip, destination.port or connection.sni)"},
    {"WhenHeaderNoName", authz("{rules: [{when: [{key: request.headers, values: [a]}]}]}"),
     kAP + "spec.rules[0].when[0].key: \"request.headers\": expected [NAME] after the key"},
    {"WhenHeaderEmptyName", authz("{rules: [{when: [{key: \"request.headers[]\", values: [a]}]}]}"),
     kAP + "spec.rules[0].when[0].key: \"request.headers[]\": empty [] in the key"},
    {"WhenHeaderUnclosed", authz("{rules: [{when: [{key: \"request.headers[x\", values: [a]}]}]}"),
     kAP + "spec.rules[0].when[0].key: \"request.headers[x\": missing ']' in the key"},
    {"WhenHeaderTwoNames",
     authz("{rules: [{when: [{key: \"request.headers[a][b]\", values: [a]}]}]}"),
     kAP + "spec.rules[0].when[0].key: \"request.headers[a][b]\": expected exactly one "
           "[HEADER-NAME]"},
    {"WhenHeaderBadName",
     authz("{rules: [{when: [{key: \"request.headers[a b]\", values: [a]}]}]}"),
     kAP + "spec.rules[0].when[0].key: \"request.headers[a b]\": is not a valid HTTP header name"},
    {"WhenHeaderTrailing",
     authz("{rules: [{when: [{key: \"request.headers[a]x\", values: [a]}]}]}"),
     kAP + "spec.rules[0].when[0].key: \"request.headers[a]x\": expected '[' in the key"},
    {"WhenNoKey", authz("{rules: [{when: [{values: [a]}]}]}"),
     kAP + "spec.rules[0].when[0].key: required field is missing"},
    {"WhenNoValues", authz("{rules: [{when: [{key: source.ip}]}]}"),
     kAP + "spec.rules[0].when[0]: values or notValues must be set"},
    {"WhenUnknownField", authz("{rules: [{when: [{key: source.ip, value: [a]}]}]}"),
     kAP + "spec.rules[0].when[0].value: unknown field"},
    {"WhenBadIp", authz("{rules: [{when: [{key: source.ip, values: [1.2.3]}]}]}"),
     kAP + "spec.rules[0].when[0].values[0]: \"1.2.3\" is not a valid IP address or CIDR block"},
    {"WhenBadPort",
     authz("{rules: [{when: [{key: destination.port, notValues: [\"80\", \"99999\"]}]}]}"),
     kAP + "spec.rules[0].when[0].notValues[1]: 99999 is out of range 1-65535"},
    {"WhenBadPrincipal",
     authz("{rules: [{when: [{key: source.principal, values: [\"spiffe://td/ns/a/sa/b\"]}]}]}"),
     kAP + "spec.rules[0].when[0].values[0]: \"spiffe://td/ns/a/sa/b\": write principals without "
           "the \"spiffe://\" prefix (e.g. \"cluster.local/ns/default/sa/web\")"},
    {"WhenBadNamespace", authz("{rules: [{when: [{key: source.namespace, values: [a.b]}]}]}"),
     kAP + "spec.rules[0].when[0].values[0]: \"a.b\": a DNS-1123 label must consist of lower case "
           "alphanumeric characters or '-', and must start and end with an alphanumeric "
           "character"},
    // The error names the document and list item it is in.
    {"SecondDocumentListItem",
     authz("{}", "v1", "{name: ok, namespace: foo}") +
         "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: security.istio.io/v1\n"
         "  kind: AuthorizationPolicy\n  metadata: {name: httpbin, namespace: foo}\n"
         "  spec: {rules: [{to: [{operation: {ports: [\"x\"]}}]}]}\n",
     "policy.yaml (document 2, items[0]): AuthorizationPolicy foo/httpbin: "
     "spec.rules[0].to[0].operation.ports[0]: \"x\" is not a valid port number"},
    // PeerAuthentication.
    {"PeerUnknownField", peer("{mtls: {mode: STRICT}, mode: STRICT}"),
     kPA + "spec.mode: unknown field"},
    {"PeerMtlsUnknownField", peer("{mtls: {mode: STRICT, strict: true}}"),
     kPA + "spec.mtls.strict: unknown field"},
    {"PeerBadMode", peer("{mtls: {mode: strict}}"),
     kPA + "spec.mtls.mode: \"strict\" is not a valid mode (UNSET, DISABLE, PERMISSIVE or STRICT)"},
    {"PeerModeNotAString", peer("{mtls: {mode: [STRICT]}}"),
     kPA + "spec.mtls.mode: expected a string, got a list"},
    {"PeerPortLevelWithoutSelector", peer("{portLevelMtls: {8080: {mode: DISABLE}}}"),
     kPA + "spec.portLevelMtls: requires a workload selector (as Istio requires)"},
    {"PeerPortLevelBadPort",
     peer("{selector: {matchLabels: {app: a}}, portLevelMtls: {http: {mode: DISABLE}}}"),
     kPA + "spec.portLevelMtls[\"http\"]: \"http\" is not a valid port number"},
    {"PeerPortLevelPortZero",
     peer("{selector: {matchLabels: {app: a}}, portLevelMtls: {0: {mode: DISABLE}}}"),
     kPA + "spec.portLevelMtls[\"0\"]: 0 is out of range 1-65535"},
    {"PeerPortLevelDuplicate",
     peer("{selector: {matchLabels: {app: a}}, portLevelMtls: {80: {mode: DISABLE}, \"080\": "
          "{mode: STRICT}}}"),
     kPA + "spec.portLevelMtls[\"080\"]: duplicate port 80"},
    {"PeerPortLevelBadMode",
     peer("{selector: {matchLabels: {app: a}}, portLevelMtls: {80: {mode: OFF}}}"),
     kPA + "spec.portLevelMtls[\"80\"].mode: \"OFF\" is not a valid mode (UNSET, DISABLE, "
           "PERMISSIVE or STRICT)"},
    {"PeerPortLevelUnknownField",
     peer("{selector: {matchLabels: {app: a}}, portLevelMtls: {80: {mode: STRICT, x: 1}}}"),
     kPA + "spec.portLevelMtls[\"80\"].x: unknown field"},
    {"PeerPortLevelNotAMap", peer("{selector: {matchLabels: {app: a}}, portLevelMtls: [80]}"),
     kPA + "spec.portLevelMtls: expected a map, got a list"},
    {"PeerSelectorUnknownField", peer("{selector: {labels: {app: a}}}"),
     kPA + "spec.selector.labels: unknown field"},
};

class IstioSecurityErrors : public ::testing::TestWithParam<BadInput> {};

TEST_P(IstioSecurityErrors, RejectedWithExactMessage) {
  EXPECT_EQ(parseError(GetParam().yaml), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(All, IstioSecurityErrors, ::testing::ValuesIn(kBad),
                         [](const ::testing::TestParamInfo<BadInput>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace meshlet
