// `meshlet status` in kube mode: the API server, its connection and each resource's state.
#include <gtest/gtest.h>

#include "agent/admin/views.h"

namespace meshlet {
namespace {

TEST(KubeStatusView, FileModeHasNoKubernetesBlock) {
  AgentView v;
  Json j = statusJson(v, 0);
  EXPECT_EQ(j["source"], "file");
  EXPECT_FALSE(j.contains("kubernetes"));
}

TEST(KubeStatusView, UnreachableSaysTheLastStateStays) {
  AgentView v;
  v.status.source = "kube";
  v.status.kube.server = "https://198.18.0.1:6443";
  v.status.kube.origin = "in-cluster";
  v.status.kube.connected = false;
  v.status.kube.synced = true;
  v.status.kube.since = "2026-11-28T00:00:00.000Z";
  v.status.kube.last_error = "cannot connect to 198.18.0.1:6443: Connection refused";
  v.status.kube.resources.push_back({"services", "v1", "synced", "", 3, 0});
  v.status.kube.resources.push_back(
      {"virtualservices.networking.istio.io", "", "not installed", "", 0, 0});
  Json j = statusJson(v, 0);
  EXPECT_EQ(j["source"], "kube");
  const Json& k = j["kubernetes"];
  EXPECT_EQ(k["api_server"], "https://198.18.0.1:6443");
  EXPECT_EQ(k["connected"], false);
  EXPECT_EQ(k["state"], "unreachable");
  EXPECT_EQ(k["since"], "2026-11-28T00:00:00.000Z");
  EXPECT_NE(k["note"].get<std::string>().find("last known state stays in force"),
            std::string::npos);
  ASSERT_EQ(k["resources"].size(), 2u);
  EXPECT_EQ(k["resources"][0]["objects"], 3);
  EXPECT_EQ(k["resources"][1]["state"], "not installed");

  v.status.kube.connected = true;
  j = statusJson(v, 0);
  EXPECT_EQ(j["kubernetes"]["state"], "connected");
  EXPECT_EQ(j["kubernetes"]["note"], "");
}

}  // namespace
}  // namespace meshlet
