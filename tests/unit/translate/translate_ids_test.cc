// Translation: stable ids across snapshots and determinism.
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

// ---------------------------------------------------------------- ids and determinism

Snapshot twoServices() {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)}),
                makeSvc("shop", "api", {"198.18.100.2"}, {port("grpc", 9000)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web", {epPort("http", 8080)},
                                 {{"198.18.0.10"}, {"198.18.0.11", "node-b"}}),
                       makeSlice("shop", "api-x1", "api", {epPort("grpc", 9000)},
                                 {{"198.18.0.20"}, {"198.18.0.21"}})};
  return s;
}

TEST(TranslateIds, StartFromZeroAndCoverEverything) {
  auto out = run(twoServices());
  // New ids are handed out in (namespace, name) order: api before web.
  EXPECT_EQ(out.ids.svc, (std::map<std::string, uint32_t>{{"shop/api/198.18.100.2/9000/TCP", 0},
                                                          {"shop/web/198.18.100.1/80/TCP", 1}}));
  EXPECT_EQ(byText(out.ids.backend), (std::map<std::string, uint32_t>{{"0/198.18.0.20/9000", 0},
                                                              {"0/198.18.0.21/9000", 1},
                                                              {"1/198.18.0.10/8080", 2},
                                                              {"1/198.18.0.11/8080", 3}}));
}

TEST(TranslateIds, SurviveUnrelatedChanges) {
  Snapshot s = twoServices();
  auto first = run(s);
  // A new service, and the api backends change.
  s.services.push_back(makeSvc("shop", "aaa", {"198.18.100.3"}, {port("http", 80)}));
  s.endpoint_slices.mut()[1].endpoints.pop_back();
  auto second = run(s, first.ids);
  const std::string web = "shop/web/198.18.100.1/80/TCP";
  EXPECT_EQ(second.ids.svc.at(web), first.ids.svc.at(web));
  EXPECT_EQ(second.ids.svc.at("shop/api/198.18.100.2/9000/TCP"),
            first.ids.svc.at("shop/api/198.18.100.2/9000/TCP"));
  for (const char* key : {"1/198.18.0.10/8080", "1/198.18.0.11/8080", "0/198.18.0.20/9000"}) {
    EXPECT_EQ(byText(second.ids.backend).at(key), byText(first.ids.backend).at(key)) << key;
  }
  EXPECT_EQ(byText(second.ids.backend).count("0/198.18.0.21/9000"), 0u);
  EXPECT_EQ(second.ids.svc.at("shop/aaa/198.18.100.3/80/TCP"), 2u);
}

TEST(TranslateIds, RemovedServiceFreesItsIds) {
  Snapshot s = twoServices();
  auto first = run(s);
  const uint32_t api_id = first.ids.svc.at("shop/api/198.18.100.2/9000/TCP");
  s.services.erase(s.services.begin() + 1);  // api
  auto second = run(s, first.ids);
  EXPECT_EQ(second.ids.svc.size(), 1u);
  EXPECT_EQ(second.ids.svc.count("shop/api/198.18.100.2/9000/TCP"), 0u);
  EXPECT_EQ(second.desired.service_info.count(api_id), 0u);
  for (const auto& [key, id] : byText(second.ids.backend)) {
    EXPECT_NE(key.rfind(std::to_string(api_id) + "/", 0), 0u) << key;
  }
  // The freed id is handed out again once it is no longer in the table.
  s.services.push_back(makeSvc("shop", "cart", {"198.18.100.4"}, {port("http", 80)}));
  auto third = run(s, second.ids);
  EXPECT_EQ(third.ids.svc.at("shop/cart/198.18.100.4/80/TCP"), api_id);
}

TEST(TranslateIds, IdFreedInTheSameCallNotReusedWhileOthersAreFree) {
  Snapshot s = twoServices();
  auto first = run(s);
  const uint32_t api_id = first.ids.svc.at("shop/api/198.18.100.2/9000/TCP");
  s.services.erase(s.services.begin() + 1);
  s.services.push_back(makeSvc("shop", "cart", {"198.18.100.4"}, {port("http", 80)}));
  auto second = run(s, first.ids);
  EXPECT_NE(second.ids.svc.at("shop/cart/198.18.100.4/80/TCP"), api_id);
}

TEST(TranslateIds, AddingABackendDoesNotRenumberOthers) {
  Snapshot s = twoServices();
  auto first = run(s);
  s.endpoint_slices.mut()[0].endpoints.insert(s.endpoint_slices.mut()[0].endpoints.begin(),
                                        makeSlice("", "", "", {}, {{"198.18.0.1"}}).endpoints[0]);
  auto second = run(s, first.ids);
  for (const auto& [key, id] : byText(first.ids.backend)) {
    EXPECT_EQ(byText(second.ids.backend).at(key), id);
  }
  ASSERT_EQ(byText(second.ids.backend).count("1/198.18.0.1/8080"), 1u);
  EXPECT_EQ(byText(second.ids.backend).at("1/198.18.0.1/8080"), 4u);
  // Slots: local backends first. The local one keeps slot 0, the new local one takes slot 1,
  // and the remote one, whose slot 1 is now in the local range, moves to slot 2.
  auto v = findSvc(second.desired, svcKey("198.18.100.1", 80));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count, 3);
  EXPECT_EQ(v->local_count, 2);
  EXPECT_EQ(second.desired.backends().at({v->svc_id, 0}).backend_id,
            byText(first.ids.backend).at("1/198.18.0.10/8080"));
  EXPECT_EQ(second.desired.backends().at({v->svc_id, 1}).backend_id, 4u);
  EXPECT_EQ(second.desired.backends().at({v->svc_id, 2}).backend_id,
            byText(first.ids.backend).at("1/198.18.0.11/8080"));
}

// A backend that leaves frees its slot; only the backend of the last slot moves into it, every
// other backend keeps its slot (one map entry rewritten, one deleted, not all that follow).
TEST(TranslateIds, SlotsStayWhenABackendLeavesOrReturns) {
  Snapshot s;
  s.services = {makeSvc("shop", "web", {"198.18.100.1"}, {port("http", 80)})};
  s.endpoint_slices = {makeSlice("shop", "web-x1", "web", {epPort("http", 8080)},
                                 {{"198.18.0.10", "node-b"},
                                  {"198.18.0.11", "node-b"},
                                  {"198.18.0.12", "node-b"},
                                  {"198.18.0.13", "node-b"}})};
  auto slots = [](const TranslateOutput& o) {
    std::map<uint32_t, uint32_t> by_slot;  // slot -> backend id
    for (const auto& [k, v] : o.desired.backends()) by_slot[k.slot] = v.backend_id;
    return by_slot;
  };
  auto first = run(s);
  const auto before = slots(first);
  ASSERT_EQ(before.size(), 4u);
  s.endpoint_slices.mut()[0].endpoints[1].ready = false;  // 198.18.0.11, slot 1
  auto second = run(s, first.ids);
  const auto after = slots(second);
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after.at(0), before.at(0));
  EXPECT_EQ(after.at(1), before.at(3));  // the last slot's backend fills the hole
  EXPECT_EQ(after.at(2), before.at(2));
  // It comes back: it takes the free slot at the end, the others stay.
  s.endpoint_slices.mut()[0].endpoints[1].ready = true;
  auto third = run(s, second.ids);
  const auto back = slots(third);
  ASSERT_EQ(back.size(), 4u);
  for (uint32_t slot : {0u, 1u, 2u}) EXPECT_EQ(back.at(slot), after.at(slot)) << slot;
  EXPECT_EQ(back.at(3), before.at(1));
}

template <typename M>
bool sameBytes(const M& a, const M& b) {
  if (a.size() != b.size()) return false;
  return std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
    return std::memcmp(&x.first, &y.first, sizeof(x.first)) == 0 &&
           std::memcmp(&x.second, &y.second, sizeof(x.second)) == 0;
  });
}

TEST(TranslateDeterminism, SameInputSameOutputWhateverTheOrder) {
  Snapshot s = twoServices();
  s.services.mut()[0].session_affinity = SessionAffinity::kClientIP;
  s.namespaces = {makeNs("shop", enrolled())};
  s.pods = {makePod("shop", "web-0", kNode, {"198.18.0.10"}),
            makePod("shop", "web-1", kNode, {"198.18.0.12"})};
  std::map<std::string, uint64_t> cookies = {{"shop/web-0", 11}, {"shop/web-1", 12}};
  auto a = run(s, {}, cookies);
  auto b = run(s, {}, cookies);
  Snapshot r = s;
  std::reverse(r.services.mut().begin(), r.services.mut().end());
  std::reverse(r.endpoint_slices.mut().begin(), r.endpoint_slices.mut().end());
  std::reverse(r.pods.mut().begin(), r.pods.mut().end());
  for (auto& slice : r.endpoint_slices.mut()) {
    std::reverse(slice.endpoints.begin(), slice.endpoints.end());
  }
  auto c = run(r, {}, cookies);
  for (const auto* other : {&b, &c}) {
    EXPECT_TRUE(sameBytes(a.desired.services, other->desired.services));
    EXPECT_TRUE(sameBytes(a.desired.backends(), other->desired.backends()));
    EXPECT_TRUE(sameBytes(a.desired.maglev, other->desired.maglev));
    EXPECT_TRUE(sameBytes(a.desired.pods, other->desired.pods));
    EXPECT_TRUE(sameBytes(a.desired.local_ips, other->desired.local_ips));
    EXPECT_EQ(a.ids.svc, other->ids.svc);
    EXPECT_EQ(a.ids.backend, other->ids.backend);
    EXPECT_EQ(a.ids.pod, other->ids.pod);
  }
  EXPECT_FALSE(a.desired.maglev.empty());
}

TEST(TranslateDeterminism, NullSnapshotIsEmpty) {
  TranslateInput in;
  auto out = translate(in, {});
  EXPECT_TRUE(out.desired.services.empty());
  EXPECT_TRUE(out.ids.svc.empty());
}

}  // namespace
}  // namespace meshlet
