// Translation of pods: enrollment, pods and local_ips maps, pod ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "agent/translate/translate.h"
#include "tests/unit/translate/fixture.h"

namespace meshlet {
namespace {

using namespace translate_test;  // NOLINT(build/namespaces): test builders

// ---------------------------------------------------------------- enrollment

struct EnrollCase {
  const char* name;
  std::optional<const char*> ns_label;   // istio.io/dataplane-mode on the namespace
  std::optional<const char*> pod_label;  // ... and on the pod
  bool namespace_exists;
  bool want;
};

void PrintTo(const EnrollCase& c, std::ostream* os) { *os << c.name; }

class EnrollmentTest : public testing::TestWithParam<EnrollCase> {};

TEST_P(EnrollmentTest, LabelOnPodOrNamespace) {
  const EnrollCase& c = GetParam();
  Snapshot s;
  if (c.namespace_exists) {
    Labels l;
    if (c.ns_label) l[kDataplaneModeLabel] = *c.ns_label;
    s.namespaces.push_back(makeNs("shop", l));
  }
  Labels pl;
  if (c.pod_label) pl[kDataplaneModeLabel] = *c.pod_label;
  s.pods.push_back(makePod("shop", "web-0", kNode, {"198.18.0.10"}, pl));
  EXPECT_EQ(podEnrolled(s, s.pods[0]), c.want);
  auto out = run(s, {}, {{"shop/web-0", 42}});
  EXPECT_EQ(out.desired.pod_info.size(), c.want ? 1u : 0u);
  EXPECT_EQ(out.desired.pods.size(), c.want ? 1u : 0u);
  EXPECT_EQ(out.desired.local_ips.size(), c.want ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, EnrollmentTest,
    testing::Values(EnrollCase{"PodLabel", std::nullopt, "meshlet", true, true},
                    EnrollCase{"NamespaceLabel", "meshlet", std::nullopt, true, true},
                    EnrollCase{"PodOptsOut", "meshlet", "none", true, false},
                    EnrollCase{"PodOptsInDespiteNamespace", "none", "meshlet", true, true},
                    EnrollCase{"NamespaceOtherMode", "ambient", std::nullopt, true, false},
                    EnrollCase{"NoLabels", std::nullopt, std::nullopt, true, false},
                    EnrollCase{"UnknownNamespace", std::nullopt, std::nullopt, false, false},
                    EnrollCase{"UnknownNamespacePodLabel", std::nullopt, "meshlet", false, true}),
    [](const testing::TestParamInfo<EnrollCase>& info) { return info.param.name; });

TEST(EnrollmentPods, OnlyEnrolledPodsOfThisNode) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled()), makeNs("ops")};
  s.pods = {makePod("shop", "web-0", kNode, {"198.18.0.10"}),
            makePod("shop", "web-1", "node-b", {"198.18.1.10"}),
            makePod("ops", "tool", kNode, {"198.18.0.11"}),
            makePod("ops", "agent", kNode, {"198.18.0.12"}, enrolled())};
  auto out =
      run(s, {}, {{"shop/web-0", 100}, {"shop/web-1", 101}, {"ops/tool", 102}, {"ops/agent", 103}});
  const DesiredDatapath& d = out.desired;
  std::vector<std::string> names;
  for (const auto& [id, p] : d.pod_info) names.push_back(p.ns + "/" + p.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"ops/agent", "shop/web-0"}));
  ASSERT_EQ(d.pods.size(), 2u);
  EXPECT_TRUE(d.pods.count(100));
  EXPECT_TRUE(d.pods.count(103));
  ASSERT_EQ(d.local_ips.size(), 2u);
  for (const auto& [k, v] : d.local_ips) {
    EXPECT_EQ(k.family, MESHLET_AF_INET);
    IpAddr a = IpAddr::fromWords(k.addr, k.family);
    EXPECT_TRUE(a == ip("198.18.0.10") || a == ip("198.18.0.12")) << a.toString();
    EXPECT_EQ(d.pod_info.at(v.pod_id).ips.front(), a);
  }
}

TEST(EnrollmentPods, PodInfoFieldsAndPodsMapValue) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "web-0", kNode, {"198.18.0.10"}, {{"app", "web"}})};
  auto out = run(s, {}, {{"shop/web-0", 7777}});
  ASSERT_EQ(out.desired.pod_info.size(), 1u);
  const PodInfo& p = out.desired.pod_info.begin()->second;
  EXPECT_EQ(p.pod_id, 1u);  // pod ids start at 1
  EXPECT_EQ(p.workload, "web");
  EXPECT_EQ(p.service_account, "web-0-sa");
  EXPECT_EQ(p.netns, "/var/run/netns/web-0");
  EXPECT_EQ(p.netns_cookie, 7777u);
  ASSERT_EQ(out.desired.pods.count(7777), 1u);
  EXPECT_EQ(out.desired.pods.at(7777).pod_id, 1u);
  EXPECT_EQ(out.desired.pods.at(7777).affinity_hash, affinityHash(ip("198.18.0.10")));
  EXPECT_EQ(out.ids.pod, (std::map<std::string, uint32_t>{{"shop/web-0", 1}}));
}

TEST(EnrollmentPods, MissingCookieExplainedButNotInPodsMap) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "web-0", kNode, {"198.18.0.10"})};
  auto out = run(s);  // no cookies known
  ASSERT_EQ(out.desired.pod_info.size(), 1u);
  EXPECT_EQ(out.desired.pod_info.begin()->second.netns_cookie, 0u);
  EXPECT_TRUE(out.desired.pods.empty());
  EXPECT_EQ(out.desired.local_ips.size(), 1u);  // its IP is still a local mesh IP
}

TEST(EnrollmentPods, DualStackPodIpsInLocalIps) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "web-0", kNode, {"2001:db8::10", "198.18.0.10"})};
  auto out = run(s, {}, {{"shop/web-0", 5}});
  const DesiredDatapath& d = out.desired;
  ASSERT_EQ(d.local_ips.size(), 2u);
  std::set<std::pair<int, std::string>> got;
  for (const auto& [k, v] : d.local_ips) {
    got.insert({k.family, IpAddr::fromWords(k.addr, k.family).toString()});
    EXPECT_EQ(v.pod_id, 1u);
    EXPECT_EQ(k.pad[0] | k.pad[1] | k.pad[2], 0);
  }
  EXPECT_EQ(got, (std::set<std::pair<int, std::string>>{{MESHLET_AF_INET, "198.18.0.10"},
                                                        {MESHLET_AF_INET6, "2001:db8::10"}}));
  // The first pod IP is the affinity key.
  EXPECT_EQ(d.pods.at(5).affinity_hash, affinityHash(ip("2001:db8::10")));
}

struct WorkloadCase {
  Labels labels;
  std::string want;
};

TEST(EnrollmentPods, WorkloadName) {
  const std::vector<WorkloadCase> cases = {
      {{{"app.kubernetes.io/name", "cart"}, {"app", "other"}}, "cart"},
      {{{"app", "web"}}, "web"},
      {{{"tier", "front"}}, "web-0"},
  };
  for (const auto& c : cases) {
    Labels l = c.labels;
    l[kDataplaneModeLabel] = kDataplaneModeMeshlet;
    Snapshot s;
    s.pods = {makePod("shop", "web-0", kNode, {"198.18.0.10"}, l)};
    auto out = run(s);
    ASSERT_EQ(out.desired.pod_info.size(), 1u);
    EXPECT_EQ(out.desired.pod_info.begin()->second.workload, c.want);
  }
}

TEST(EnrollmentPods, PodIdsStableAndMaxPlusOne) {
  Snapshot s;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "a", kNode, {"198.18.0.1"}),
            makePod("shop", "b", kNode, {"198.18.0.2"}),
            makePod("shop", "c", kNode, {"198.18.0.3"})};
  auto first = run(s);
  EXPECT_EQ(first.ids.pod,
            (std::map<std::string, uint32_t>{{"shop/a", 1}, {"shop/b", 2}, {"shop/c", 3}}));
  // "a" goes away, "0" (sorting before everyone) arrives: the others keep their ids, the new
  // pod gets max+1, and no id of a living pod is reused.
  s.pods.erase(s.pods.begin());
  s.pods.push_back(makePod("shop", "0", kNode, {"198.18.0.4"}));
  auto second = run(s, first.ids);
  EXPECT_EQ(second.ids.pod,
            (std::map<std::string, uint32_t>{{"shop/0", 4}, {"shop/b", 2}, {"shop/c", 3}}));
  EXPECT_EQ(second.desired.pod_info.count(1), 0u);
}

}  // namespace
}  // namespace meshlet
