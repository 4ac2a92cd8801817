// Same-node L4 authorization compiled for the kernel: per (source pod, destination pod) a
// verdict for port 0 (every port no policy names) plus the named ports that differ, and the
// destination's IPs flagged so connect() consults the table.
#include <gtest/gtest.h>

#include <string>

#include "agent/sources/file_source.h"
#include "tests/unit/translate/fixture.h"

namespace meshlet {
namespace {

using translate_test::enrolled;
using translate_test::kNode;
using translate_test::makeNs;
using translate_test::makePod;

// Three enrolled pods of this node (web, db, batch) and one remote one, plus `policies` (YAML).
TranslateOutput translateWith(const std::string& policies, const IdTable& previous = {}) {
  Snapshot s;
  if (!policies.empty()) {
    Status st = parseYaml(policies, "policies.yaml", s);
    EXPECT_TRUE(st.ok()) << st.error().message();
  }
  s.namespaces.push_back(makeNs("shop", enrolled()));
  s.pods.push_back(makePod("shop", "web", kNode, {"198.18.0.2"}, {{"app", "web"}}));
  s.pods.push_back(makePod("shop", "db", kNode, {"198.18.0.3", "2001:2::3"}, {{"app", "db"}}));
  s.pods.push_back(makePod("shop", "batch", kNode, {"198.18.0.4"}, {{"app", "batch"}}));
  s.pods.push_back(makePod("shop", "far", "node-b", {"198.18.1.5"}, {{"app", "web"}}));
  TranslateInput in;
  in.snapshot = &s;
  in.node_name = kNode;
  in.trust_domain = "example.org";
  TranslateOutput out = translate(in, previous);
  // The snapshot dies here: the output must not point into it.
  return out;
}

uint32_t podId(const DesiredDatapath& d, const std::string& name) {
  for (const auto& [id, p] : d.pod_info) {
    if (p.name == name) return id;
  }
  ADD_FAILURE() << "no pod " << name;
  return MESHLET_NO_ID;
}

// The entry for exactly this key: "allow"/"deny" and the deciding policy's name, or "-".
std::string entry(const DesiredDatapath& d, const std::string& src, const std::string& dst,
                  int port) {
  meshlet_authz_key k{};
  k.src_pod = podId(d, src);
  k.dst_pod = podId(d, dst);
  k.port = static_cast<uint16_t>(port);
  auto it = d.authz.find(k);
  if (it == d.authz.end()) return "-";
  std::string name = authzPolicyName(d, it->second.policy);
  return std::string(it->second.allow ? "allow" : "deny") + (name.empty() ? "" : " " + name);
}

// What connect() decides: the port's own entry, else port 0's.
std::string verdict(const DesiredDatapath& d, const std::string& src, const std::string& dst,
                    int port) {
  std::string v = entry(d, src, dst, port);
  return v != "-" ? v : entry(d, src, dst, 0);
}

uint32_t ipFlags(const DesiredDatapath& d, const char* addr) {
  for (const auto& [k, v] : d.local_ips) {
    if (IpAddr::fromWords(k.addr, k.family) == translate_test::ip(addr)) return v.flags;
  }
  ADD_FAILURE() << "no local ip " << addr;
  return 0;
}

const char* kDbFromWebOn5432 = R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["example.org/ns/shop/sa/web-sa"]}
    to:
    - operation: {ports: ["5432"]}
)";

TEST(AuthzTable, NoPolicyNoTableNoFlags) {
  auto out = translateWith("");
  EXPECT_TRUE(out.desired.authz.empty());
  EXPECT_TRUE(out.desired.authz_policies.empty());
  EXPECT_EQ(ipFlags(out.desired, "198.18.0.3"), 0u);
}

TEST(AuthzTable, AllowOnANamedPortGivesThatPortItsOwnVerdict) {
  auto out = translateWith(kDbFromWebOn5432);
  const auto& d = out.desired;
  ASSERT_EQ(d.authz_policies, (std::map<uint32_t, std::string>{{0, "shop/db-from-web"}}));
  // web (its principal is in the trust domain given to translate) may reach 5432 only.
  EXPECT_EQ(verdict(d, "web", "db", 5432), "allow shop/db-from-web");
  EXPECT_EQ(verdict(d, "web", "db", 0), "deny");
  // Everyone else: denied everywhere, so port 5432 needs no entry of its own.
  EXPECT_EQ(verdict(d, "batch", "db", 0), "deny");
  EXPECT_EQ(entry(d, "batch", "db", 5432), "-");
  EXPECT_EQ(verdict(d, "batch", "db", 5432), "deny");
  EXPECT_EQ(verdict(d, "db", "db", 0), "deny");
  // Only db is governed: both its IPs are flagged, the others not, and nobody else has a table.
  EXPECT_EQ(ipFlags(d, "198.18.0.3"), static_cast<uint32_t>(MESHLET_IP_AUTHZ));
  EXPECT_EQ(ipFlags(d, "2001:2::3"), static_cast<uint32_t>(MESHLET_IP_AUTHZ));
  EXPECT_EQ(ipFlags(d, "198.18.0.2"), 0u);
  EXPECT_EQ(entry(d, "db", "web", 0), "-");
  EXPECT_EQ(d.authz.size(), 4u);  // web:0, web:5432, batch:0, db:0
}

TEST(AuthzTable, DenyBeatsAllowAndNamesTheDenyingPolicy) {
  auto out = translateWith(std::string(kDbFromWebOn5432) + R"(---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a-no-web, namespace: shop}
spec:
  action: DENY
  rules:
  - from:
    - source: {principals: ["example.org/ns/shop/sa/web-sa"]}
)");
  const auto& d = out.desired;
  ASSERT_EQ(d.authz_policies,
            (std::map<uint32_t, std::string>{{0, "shop/a-no-web"}, {1, "shop/db-from-web"}}));
  EXPECT_EQ(verdict(d, "web", "db", 5432), "deny shop/a-no-web");
  EXPECT_EQ(entry(d, "web", "db", 5432), "-");  // same as the rest: no entry of its own
  EXPECT_EQ(verdict(d, "web", "db", 0), "deny shop/a-no-web");
  // The namespace-wide DENY governs every pod of shop: batch -> web is allowed (no ALLOW
  // policy applies to web), web -> batch is denied.
  EXPECT_EQ(verdict(d, "batch", "web", 0), "allow");
  EXPECT_EQ(verdict(d, "web", "batch", 0), "deny shop/a-no-web");
}

// A policy keeps its index while others come and go, so a denial the kernel recorded earlier
// still names the policy that made it.
TEST(AuthzTable, PolicyIndexesAreStableAcrossTranslations) {
  auto first = translateWith(kDbFromWebOn5432);
  ASSERT_EQ(first.desired.authz_policies.size(), 1u);
  uint32_t index = first.desired.authz_policies.begin()->first;
  auto second = translateWith(std::string(kDbFromWebOn5432) + R"(---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a-first-by-name, namespace: shop}
spec: {action: AUDIT}
)",
                              first.ids);
  ASSERT_EQ(second.desired.authz_policies.size(), 2u);
  EXPECT_EQ(authzPolicyName(second.desired, index), "shop/db-from-web");
  EXPECT_EQ(authzPolicyName(second.desired, MESHLET_NO_ID), "");
}

TEST(AuthzTable, NotPortsAndSourceIpBlocksAreDecidedPerPair) {
  auto out = translateWith(R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-not-admin, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules:
  - from:
    - source: {ipBlocks: ["198.18.0.4/32"]}
    to:
    - operation: {notPorts: ["9000"]}
)");
  const auto& d = out.desired;
  EXPECT_EQ(verdict(d, "batch", "db", 0), "allow shop/db-not-admin");
  EXPECT_EQ(verdict(d, "batch", "db", 9000), "deny");
  EXPECT_EQ(verdict(d, "web", "db", 0), "deny");
}

}  // namespace
}  // namespace meshlet
