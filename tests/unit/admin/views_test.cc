#include "agent/admin/views.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "agent/common/log.h"
#include "tests/unit/admin/scenario.h"

namespace meshlet {
namespace {

using scenario::conn;
using scenario::dialled;
using scenario::kSecond;

std::vector<std::string> keysOf(const Json& obj) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : obj.items()) keys.push_back(k);
  return keys;
}

// The keys of `obj` that `documented` lists, in the order they appear in `obj`.
std::vector<std::string> documentedKeysInOrder(const Json& obj,
                                               const std::vector<std::string>& documented) {
  std::vector<std::string> out;
  for (const auto& k : keysOf(obj)) {
    if (std::find(documented.begin(), documented.end(), k) != documented.end()) out.push_back(k);
  }
  return out;
}

class AdminViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_ = scenario::makeSnapshot();
    desired_ = std::make_shared<DesiredDatapath>(scenario::translateSnapshot(*snapshot_));
    view_.snapshot = snapshot_;
    view_.desired = desired_;
    view_.status.node_name = scenario::kNode;
  }

  std::shared_ptr<Snapshot> snapshot_;
  std::shared_ptr<DesiredDatapath> desired_;
  AgentView view_;
};

// ---- /v1/status ----

TEST_F(AdminViewTest, StatusHasDocumentedFieldsInOrder) {
  view_.status.config_dir = "/etc/meshlet/config";
  view_.status.cgroup = "/sys/fs/cgroup";
  view_.status.bpffs = "/sys/fs/bpf/meshlet";
  view_.status.generation = 4;
  view_.status.config_ok = true;
  view_.status.last_sync_ms = 1.5;
  view_.status.adopted = true;
  view_.status.started_unix = 1000;
  view_.spliced_connections = 12;
  view_.maps = {{"meshlet_svc_v1", 3, 65536}, {"meshlet_conns_v1", 0, 65536}};

  Json j = statusJson(view_, 1042);
  ASSERT_TRUE(j.is_object());
  const std::vector<std::string> documented = {
      "node_name", "config_dir", "generation", "config_ok",           "last_error",
      "last_error_time", "last_sync_ms", "uptime_s", "cgroup", "bpffs", "adopted",
      "spliced_connections", "maps"};
  for (const auto& k : documented) EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(documentedKeysInOrder(j, documented), documented);

  EXPECT_EQ(j["node_name"], "node-a");
  EXPECT_EQ(j["config_dir"], "/etc/meshlet/config");
  EXPECT_EQ(j["generation"], 4);
  EXPECT_EQ(j["config_ok"], true);
  EXPECT_EQ(j["last_error"], "");
  EXPECT_EQ(j["last_error_time"], "");
  EXPECT_DOUBLE_EQ(j["last_sync_ms"].get<double>(), 1.5);
  EXPECT_EQ(j["uptime_s"], 42);
  EXPECT_EQ(j["cgroup"], "/sys/fs/cgroup");
  EXPECT_EQ(j["bpffs"], "/sys/fs/bpf/meshlet");
  EXPECT_EQ(j["adopted"], true);
  EXPECT_EQ(j["spliced_connections"], 12);
  ASSERT_TRUE(j["maps"].is_array());
  ASSERT_EQ(j["maps"].size(), 2u);
  EXPECT_EQ(keysOf(j["maps"][0]), (std::vector<std::string>{"name", "entries", "capacity"}));
  EXPECT_EQ(j["maps"][0]["name"], "meshlet_svc_v1");
  EXPECT_EQ(j["maps"][0]["entries"], 3);
  EXPECT_EQ(j["maps"][0]["capacity"], 65536);
  EXPECT_EQ(j["maps"][1]["name"], "meshlet_conns_v1");
}

TEST_F(AdminViewTest, StatusReportsLastError) {
  view_.status.config_ok = false;
  view_.status.last_error = "demo/web.yaml (document 2): bad port";
  view_.status.last_error_time = "2024-05-01T10:00:00Z";
  Json j = statusJson(view_, 0);
  EXPECT_EQ(j["config_ok"], false);
  EXPECT_EQ(j["last_error"], "demo/web.yaml (document 2): bad port");
  EXPECT_EQ(j["last_error_time"], "2024-05-01T10:00:00Z");
  EXPECT_TRUE(j["maps"].is_array());
  EXPECT_TRUE(j["maps"].empty());
}

// ---- /v1/workloads ----

TEST_F(AdminViewTest, WorkloadsListOnlyThisNodesPodsWithDocumentedColumns) {
  Json j = workloadsJson(view_);
  ASSERT_TRUE(j.is_array());
  // web-2 runs on node-b; the rest are on node-a, in snapshot order.
  ASSERT_EQ(j.size(), 4u);
  const std::vector<std::string> columns = {"namespace", "name", "node", "ips", "enrolled",
                                            "enrolled_by", "netns", "netns_cookie", "pod_id",
                                            "service_account"};
  for (const auto& w : j) EXPECT_EQ(keysOf(w), columns) << w.dump();
  EXPECT_EQ(j[0]["name"], "client-1");
  EXPECT_EQ(j[1]["name"], "web-1");
  EXPECT_EQ(j[2]["name"], "idle");
  EXPECT_EQ(j[3]["name"], "tool");
  for (const auto& w : j) EXPECT_EQ(w["node"], "node-a");
}

TEST_F(AdminViewTest, WorkloadsMarkEnrolledPods) {
  Json j = workloadsJson(view_);
  ASSERT_EQ(j.size(), 4u);
  const Json& client = j[0];
  EXPECT_EQ(client["namespace"], "demo");
  EXPECT_EQ(client["ips"], "198.18.0.2,2001:db8::2");
  EXPECT_EQ(client["enrolled"], true);
  EXPECT_EQ(client["enrolled_by"], "file");
  EXPECT_EQ(client["netns"], "/var/run/netns/client-1");
  EXPECT_EQ(client["netns_cookie"], scenario::kClientCookie);
  EXPECT_EQ(client["pod_id"], scenario::podId(*desired_, "demo/client-1"));
  EXPECT_EQ(client["service_account"], "client-1-sa");

  EXPECT_EQ(j[1]["enrolled"], true);
  EXPECT_EQ(j[1]["netns_cookie"], scenario::kWebCookie);

  // In the mesh but its netns cookie is unknown: explained, not enrolled.
  const Json& idle = j[2];
  EXPECT_EQ(idle["enrolled"], false);
  EXPECT_EQ(idle["netns_cookie"], 0);
  EXPECT_EQ(idle["pod_id"], scenario::podId(*desired_, "demo/idle"));

  // Not in the mesh at all.
  const Json& tool = j[3];
  EXPECT_EQ(tool["namespace"], "plain");
  EXPECT_EQ(tool["enrolled"], false);
  EXPECT_EQ(tool["enrolled_by"], "");
  EXPECT_EQ(tool["netns_cookie"], 0);
  EXPECT_EQ(tool["pod_id"], -1);
}

TEST_F(AdminViewTest, WorkloadsEmptyWithoutSnapshot) {
  AgentView empty;
  empty.status.node_name = scenario::kNode;
  Json j = workloadsJson(empty);
  EXPECT_TRUE(j.is_array());
  EXPECT_TRUE(j.empty());
}

TEST_F(AdminViewTest, WorkloadsOfAnotherNode) {
  view_.status.node_name = scenario::kOtherNode;
  Json j = workloadsJson(view_);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["name"], "web-2");
  // node-a's translation enrolled nothing on node-b.
  EXPECT_EQ(j[0]["enrolled"], false);
  EXPECT_EQ(j[0]["pod_id"], -1);
}

// ---- /v1/services ----

TEST_F(AdminViewTest, ServicesSortedWithReadyAndLocalCounts) {
  Json j = servicesJson(view_);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 4u);
  const std::vector<std::string> columns = {"namespace", "name",         "cluster_ip", "port",
                                            "protocol",  "lb",           "prefer_close",
                                            "ready",     "local",        "svc_id"};
  for (const auto& s : j) EXPECT_EQ(keysOf(s), columns) << s.dump();

  EXPECT_EQ(j[0]["namespace"], "alpha");
  EXPECT_EQ(j[0]["name"], "zeta");
  EXPECT_EQ(j[0]["cluster_ip"], "198.19.0.30");
  EXPECT_EQ(j[0]["port"], 53);
  EXPECT_EQ(j[0]["protocol"], "UDP");
  EXPECT_EQ(j[0]["lb"], "random");
  EXPECT_EQ(j[0]["prefer_close"], false);
  EXPECT_EQ(j[0]["ready"], 0);
  EXPECT_EQ(j[0]["local"], 0);

  EXPECT_EQ(j[1]["name"], "api");
  EXPECT_EQ(j[1]["protocol"], "TCP");
  EXPECT_EQ(j[1]["lb"], "client-ip");
  EXPECT_EQ(j[1]["prefer_close"], true);
  EXPECT_EQ(j[1]["ready"], 1);
  EXPECT_EQ(j[1]["local"], 0);
  EXPECT_EQ(j[1]["svc_id"], scenario::svcId(*desired_, "demo/api", "198.19.0.20"));

  // Two frontends of demo/web: IPv4 before IPv6. 198.18.1.11 is not ready.
  EXPECT_EQ(j[2]["name"], "web");
  EXPECT_EQ(j[2]["cluster_ip"], "198.19.0.10");
  EXPECT_EQ(j[2]["lb"], "round-robin");
  EXPECT_EQ(j[2]["ready"], 2);
  EXPECT_EQ(j[2]["local"], 1);
  EXPECT_EQ(j[3]["name"], "web");
  EXPECT_EQ(j[3]["cluster_ip"], "2001:db8::a:10");
  EXPECT_EQ(j[3]["port"], 80);
  EXPECT_EQ(j[3]["ready"], 1);
  EXPECT_EQ(j[3]["local"], 1);
  EXPECT_EQ(j[3]["svc_id"], scenario::svcId(*desired_, "demo/web", "2001:db8::a:10"));
}

TEST_F(AdminViewTest, ServicesAndEndpointsEmptyWithoutDesired) {
  AgentView empty;
  EXPECT_TRUE(servicesJson(empty).is_array());
  EXPECT_TRUE(servicesJson(empty).empty());
  EXPECT_TRUE(endpointsJson(empty, "").is_array());
  EXPECT_TRUE(endpointsJson(empty, "").empty());
}

// ---- /v1/endpoints ----

TEST_F(AdminViewTest, EndpointsAllWithDocumentedColumns) {
  Json j = endpointsJson(view_, "");
  ASSERT_TRUE(j.is_array());
  // api: 1, web v4: 3, web v6: 1; alpha/zeta has none.
  ASSERT_EQ(j.size(), 5u);
  const std::vector<std::string> columns = {
      "service",     "cluster_ip", "port",  "address", "target_port", "ready", "serving",
      "terminating", "node",       "local", "pod",     "backend_id",  "health"};
  for (const auto& e : j) EXPECT_EQ(keysOf(e), columns) << e.dump();
  EXPECT_EQ(j[0]["service"], "demo/api");
  EXPECT_EQ(j[0]["cluster_ip"], "198.19.0.20");
  EXPECT_EQ(j[0]["port"], 8080);
  EXPECT_EQ(j[0]["address"], "198.18.1.20");
  EXPECT_EQ(j[0]["target_port"], 9090);
  EXPECT_EQ(j[0]["node"], "node-b");
  EXPECT_EQ(j[0]["local"], false);
  EXPECT_EQ(j[0]["pod"], "demo/api-1");
  for (size_t i = 1; i < j.size(); ++i) EXPECT_EQ(j[i]["service"], "demo/web");
}

TEST_F(AdminViewTest, EndpointsHealthShowsOutlierEjection) {
  uint32_t v4 = scenario::svcId(*desired_, "demo/web", "198.19.0.10");
  uint32_t id = scenario::backendId(*desired_, v4, "198.18.0.10");
  for (auto& [bid, b] : desired_->backend_info) {
    if (bid == id) {
      b.ejected = true;
      b.slot = MESHLET_NO_ID;
    }
  }
  const int64_t now_ms = 1796000000000;  // 2026-11-30T00:53:20Z
  auto outliers = std::make_shared<std::map<uint32_t, OutlierView>>();
  (*outliers)[id] = OutlierView{now_ms + 2500, 1, 0};
  view_.outliers = outliers;
  std::map<std::string, std::string> health;
  for (const auto& e : endpointsJson(view_, "demo/web", now_ms)) {
    if (e["cluster_ip"] == "198.19.0.10")
      health[e["address"].get<std::string>()] = e["health"].get<std::string>();
  }
  EXPECT_EQ(health["198.18.0.10"],
            "ejected until " + unixToRfc3339(1796000003) + " (3s left, ejection 1)");
  EXPECT_EQ(health["198.18.1.10"], "healthy");
  EXPECT_EQ(health["198.18.1.11"], "not ready");
  // Ejected but still in a slot (panic), and a backend that failed without being ejected.
  for (auto& [bid, b] : desired_->backend_info) {
    if (bid == id) b.slot = 0;
  }
  uint32_t other = scenario::backendId(*desired_, v4, "198.18.1.10");
  (*outliers)[other] = OutlierView{0, 0, 2};
  health.clear();
  for (const auto& e : endpointsJson(view_, "demo/web", now_ms)) {
    if (e["cluster_ip"] == "198.19.0.10")
      health[e["address"].get<std::string>()] = e["health"].get<std::string>();
  }
  EXPECT_NE(health["198.18.0.10"].find("still used (panic"), std::string::npos);
  EXPECT_EQ(health["198.18.1.10"], "healthy (2 failed connects in a row)");
}

TEST_F(AdminViewTest, EndpointsFilteredByService) {
  Json j = endpointsJson(view_, "demo/web");
  ASSERT_EQ(j.size(), 4u);
  uint32_t v4 = scenario::svcId(*desired_, "demo/web", "198.19.0.10");
  // IPv4 frontend first; ready backends in slot order (local first), then the unready one.
  EXPECT_EQ(j[0]["cluster_ip"], "198.19.0.10");
  EXPECT_EQ(j[0]["address"], "198.18.0.10");
  EXPECT_EQ(j[0]["target_port"], 8080);
  EXPECT_EQ(j[0]["local"], true);
  EXPECT_EQ(j[0]["node"], "node-a");
  EXPECT_EQ(j[0]["pod"], "demo/web-1");
  EXPECT_EQ(j[0]["ready"], true);
  EXPECT_EQ(j[0]["backend_id"], scenario::backendId(*desired_, v4, "198.18.0.10"));
  EXPECT_EQ(j[1]["address"], "198.18.1.10");
  EXPECT_EQ(j[1]["local"], false);
  EXPECT_EQ(j[1]["pod"], "demo/web-2");
  EXPECT_EQ(j[2]["address"], "198.18.1.11");
  EXPECT_EQ(j[2]["ready"], false);
  EXPECT_EQ(j[2]["serving"], true);
  EXPECT_EQ(j[2]["terminating"], true);
  EXPECT_EQ(j[3]["cluster_ip"], "2001:db8::a:10");
  EXPECT_EQ(j[3]["address"], "2001:db8::10");
  EXPECT_EQ(j[3]["local"], true);

  Json api = endpointsJson(view_, "demo/api");
  ASSERT_EQ(api.size(), 1u);
  EXPECT_EQ(api[0]["address"], "198.18.1.20");
}

TEST_F(AdminViewTest, EndpointsFilterMatchesWholeName) {
  EXPECT_TRUE(endpointsJson(view_, "demo/nope").empty());
  EXPECT_TRUE(endpointsJson(view_, "alpha/zeta").empty());
  EXPECT_TRUE(endpointsJson(view_, "demo/we").empty());
  EXPECT_TRUE(endpointsJson(view_, "web").empty());
  EXPECT_TRUE(endpointsJson(view_, "other/web").empty());
}

// ---- /v1/connections ----

TEST(AdminEndpointStringTest, BracketsIpv6) {
  EXPECT_EQ(endpointString(scenario::ip("198.18.0.2"), 40000), "198.18.0.2:40000");
  EXPECT_EQ(endpointString(scenario::ip("2001:db8::2"), 80), "[2001:db8::2]:80");
}

TEST_F(AdminViewTest, ConnectionsOutboundBalancedToRemoteBackend) {
  const uint64_t now = 1000 * kSecond;
  uint32_t web = scenario::svcId(*desired_, "demo/web", "198.19.0.10");
  ConnEntry c = conn("198.18.0.2", 40000, "198.18.1.10", 8080, MESHLET_CONN_ACTIVE,
                     MESHLET_PATH_BALANCED);
  dialled(c, web, scenario::backendId(*desired_, web, "198.18.1.10"), "198.19.0.10", 80);
  c.value.pod_id = scenario::podId(*desired_, "demo/client-1");
  c.value.bytes_sent = 100;
  c.value.bytes_received = 2000;
  c.value.spliced_bytes = 999;  // ignored: not spliced
  c.value.srtt_us = 150;
  c.value.total_retrans = 2;
  c.value.start_ns = now - 5 * kSecond - 1;

  Json j = connectionsJson(view_, {c}, now);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 1u);
  const Json& r = j[0];
  EXPECT_EQ(keysOf(r), (std::vector<std::string>{
                           "path", "state", "direction", "local", "remote", "service",
                           "service_address", "workload", "peer", "peer_identity", "policy",
                           "bytes_sent", "bytes_received", "rtt_us", "retransmits", "age_s"}));
  EXPECT_EQ(r["path"], "balanced");
  EXPECT_EQ(r["state"], "open");
  EXPECT_EQ(r["direction"], "outbound");
  EXPECT_EQ(r["local"], "198.18.0.2:40000");
  EXPECT_EQ(r["remote"], "198.18.1.10:8080");
  EXPECT_EQ(r["service"], "demo/web");
  EXPECT_EQ(r["service_address"], "198.19.0.10:80");
  EXPECT_EQ(r["workload"], "demo/client-1");
  EXPECT_EQ(r["peer"], "demo/web-2");  // the backend's pod, from backend_info
  EXPECT_EQ(r["bytes_sent"], 100);
  EXPECT_EQ(r["bytes_received"], 2000);
  EXPECT_EQ(r["rtt_us"], 150);
  EXPECT_EQ(r["retransmits"], 2);
  EXPECT_EQ(r["age_s"], 5);
}

// A same-node pair's peer identity is attested by the kernel: the peer pod's account.
TEST_F(AdminViewTest, ConnectionsSplicedPeerIdentityComesFromThePeerPod) {
  auto id = std::make_shared<IdentityView>();
  id->trust_domain = "example.org";
  view_.identity = id;
  uint32_t client = scenario::podId(*desired_, "demo/client-1");
  uint32_t server = scenario::podId(*desired_, "demo/web-1");
  ConnEntry in = conn("2001:db8::10", 8080, "2001:db8::2", 40001, MESHLET_CONN_SPLICED,
                      MESHLET_PATH_SPLICED);
  in.value.pod_id = server;
  in.value.peer_pod_id = client;
  Json j = connectionsJson(view_, {in}, 50 * kSecond);
  ASSERT_EQ(j.size(), 1u);
  const PodInfo& c = desired_->pod_info.at(client);
  EXPECT_EQ(j[0]["peer_identity"], "spiffe://example.org/ns/demo/sa/" + c.service_account);
  EXPECT_EQ(j[0]["policy"], "");
}

// Tunnelled connections come from the mesh proxy's report, after the kernel's rows, with the
// same columns; the kernel's own record of a tunnel-path socket (to 127.0.0.1:15001) is not
// shown twice.
TEST_F(AdminViewTest, ConnectionsListTheProxysTunnelsOnce) {
  auto report = std::make_shared<proxy::ProxyReport>();
  proxy::TunnelConn t;
  t.inbound = true;
  t.pod = "demo/web-1";
  t.peer_pod = "demo/client-9";
  t.peer = "198.18.2.7";
  t.destination = "198.18.0.10:8080";
  t.peer_id = "spiffe://cluster.local/ns/demo/sa/client";
  t.policy = "allowed by demo/allow-client";
  t.service = "web.demo.svc.cluster.local";
  t.bytes_sent = 7;
  t.bytes_received = 9;
  t.start_unix = 1000;
  report->live.push_back(t);
  view_.proxy = report;
  ConnEntry kernel_side = conn("127.0.0.1", 40001, "127.0.0.1", 15001, MESHLET_CONN_ACTIVE,
                               MESHLET_PATH_TUNNEL);
  ConnEntry kept = conn("198.18.0.2", 40002, "198.18.0.10", 8080, MESHLET_CONN_ACTIVE,
                        MESHLET_PATH_BALANCED);
  Json j = connectionsJson(view_, {kernel_side, kept}, 50 * kSecond, 1012);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["path"], "balanced");
  EXPECT_EQ(keysOf(j[1]), keysOf(j[0]));
  EXPECT_EQ(j[1]["path"], "tunnel");
  EXPECT_EQ(j[1]["direction"], "inbound");
  EXPECT_EQ(j[1]["local"], "198.18.0.10:8080");
  EXPECT_EQ(j[1]["remote"], "198.18.2.7");
  EXPECT_EQ(j[1]["workload"], "demo/web-1");
  EXPECT_EQ(j[1]["peer"], "demo/client-9");
  EXPECT_EQ(j[1]["peer_identity"], "spiffe://cluster.local/ns/demo/sa/client");
  EXPECT_EQ(j[1]["policy"], "allowed by demo/allow-client");
  EXPECT_EQ(j[1]["bytes_sent"], 7);
  EXPECT_EQ(j[1]["bytes_received"], 9);
  EXPECT_EQ(j[1]["age_s"], 12);
}

TEST_F(AdminViewTest, ConnectionsSplicedIpv6PairInboundTakesClientService) {
  const uint64_t now = 50 * kSecond;
  uint32_t web6 = scenario::svcId(*desired_, "demo/web", "2001:db8::a:10");
  uint32_t client = scenario::podId(*desired_, "demo/client-1");
  uint32_t server = scenario::podId(*desired_, "demo/web-1");
  const uint8_t spliced = MESHLET_CONN_SPLICED;

  ConnEntry out = conn("2001:db8::2", 40001, "2001:db8::10", 8080,
                       MESHLET_CONN_ACTIVE | spliced, MESHLET_PATH_SPLICED);
  dialled(out, web6, scenario::backendId(*desired_, web6, "2001:db8::10"), "2001:db8::a:10", 80);
  out.value.pod_id = client;
  out.value.peer_pod_id = server;
  out.value.bytes_sent = 10;
  out.value.spliced_bytes = 5000;
  out.value.start_ns = 20 * kSecond;

  ConnEntry in = conn("2001:db8::10", 8080, "2001:db8::2", 40001, spliced, MESHLET_PATH_SPLICED);
  in.value.pod_id = server;
  in.value.peer_pod_id = client;
  in.value.bytes_received = 5000;
  in.value.start_ns = 20 * kSecond;

  Json j = connectionsJson(view_, {in, out}, now);
  ASSERT_EQ(j.size(), 2u);
  const Json& server_side = j[0];
  EXPECT_EQ(server_side["path"], "spliced");
  EXPECT_EQ(server_side["direction"], "inbound");
  EXPECT_EQ(server_side["local"], "[2001:db8::10]:8080");
  EXPECT_EQ(server_side["remote"], "[2001:db8::2]:40001");
  EXPECT_EQ(server_side["service"], "demo/web");
  EXPECT_EQ(server_side["service_address"], "[2001:db8::a:10]:80");
  EXPECT_EQ(server_side["workload"], "demo/web-1");
  EXPECT_EQ(server_side["peer"], "demo/client-1");
  EXPECT_EQ(server_side["bytes_received"], 5000);
  EXPECT_EQ(server_side["age_s"], 30);

  const Json& client_side = j[1];
  EXPECT_EQ(client_side["direction"], "outbound");
  EXPECT_EQ(client_side["service_address"], "[2001:db8::a:10]:80");
  EXPECT_EQ(client_side["workload"], "demo/client-1");
  EXPECT_EQ(client_side["peer"], "demo/web-1");
  EXPECT_EQ(client_side["bytes_sent"], 5000);  // spliced bytes, not the 10 acked ones
}

TEST_F(AdminViewTest, ConnectionsInboundWithoutPeerEntryHasNoService) {
  ConnEntry in = conn("198.18.0.10", 8080, "198.18.1.50", 5555, 0, MESHLET_PATH_PASSTHROUGH);
  in.value.pod_id = scenario::podId(*desired_, "demo/web-1");
  in.value.start_ns = 10 * kSecond;
  // An unrelated entry whose key is not the reverse of `in`.
  ConnEntry other = conn("198.18.1.50", 5556, "198.18.0.10", 8080, MESHLET_CONN_ACTIVE,
                         MESHLET_PATH_BALANCED);
  dialled(other, scenario::svcId(*desired_, "demo/web", "198.19.0.10"), MESHLET_NO_ID,
          "198.19.0.10", 80);

  Json j = connectionsJson(view_, {in, other}, 12 * kSecond);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["path"], "passthrough");
  EXPECT_EQ(j[0]["direction"], "inbound");
  EXPECT_EQ(j[0]["service"], "");
  EXPECT_EQ(j[0]["service_address"], "");
  EXPECT_EQ(j[0]["peer"], "");
  EXPECT_EQ(j[0]["workload"], "demo/web-1");
  EXPECT_EQ(j[0]["age_s"], 2);
}

TEST_F(AdminViewTest, ConnectionsClosedAgeUsesEndTime) {
  ConnEntry c = conn("198.18.0.2", 40002, "198.18.1.99", 443,
                     MESHLET_CONN_ACTIVE | MESHLET_CONN_CLOSED, MESHLET_PATH_PASSTHROUGH);
  c.value.pod_id = scenario::podId(*desired_, "demo/client-1");
  c.value.start_ns = 1 * kSecond;
  c.value.end_ns = 4 * kSecond;
  Json j = connectionsJson(view_, {c}, 100 * kSecond);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["state"], "closed");
  EXPECT_EQ(j[0]["age_s"], 3);
  EXPECT_EQ(j[0]["service"], "");
  EXPECT_EQ(j[0]["peer"], "");

  // Closed without an end time: aged to now.
  c.value.end_ns = 0;
  EXPECT_EQ(connectionsJson(view_, {c}, 100 * kSecond)[0]["age_s"], 99);
  // Open connections ignore a stale end time.
  c.value.flags = MESHLET_CONN_ACTIVE;
  c.value.end_ns = 4 * kSecond;
  EXPECT_EQ(connectionsJson(view_, {c}, 100 * kSecond)[0]["age_s"], 99);
}

TEST_F(AdminViewTest, ConnectionsFailedStateAndClockSkew) {
  ConnEntry c = conn("198.18.0.2", 40003, "198.18.1.10", 8080,
                     MESHLET_CONN_ACTIVE | MESHLET_CONN_CLOSED | MESHLET_CONN_FAILED,
                     MESHLET_PATH_BALANCED);
  c.value.start_ns = 10 * kSecond;
  Json j = connectionsJson(view_, {c}, 5 * kSecond);  // start after now: age 0, not a wrap
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["state"], "failed");
  EXPECT_EQ(j[0]["age_s"], 0);
  EXPECT_EQ(j[0]["workload"], "");  // no pod id
}

TEST_F(AdminViewTest, ConnectionsWithoutDesiredStillListed) {
  AgentView bare;
  ConnEntry c = conn("198.18.0.2", 40000, "198.18.1.10", 8080, MESHLET_CONN_ACTIVE,
                     MESHLET_PATH_BALANCED);
  dialled(c, 0, 0, "198.19.0.10", 80);
  c.value.pod_id = 1;
  Json j = connectionsJson(bare, {c}, 0);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["service"], "");
  EXPECT_EQ(j[0]["service_address"], "198.19.0.10:80");
  EXPECT_EQ(j[0]["workload"], "");
  EXPECT_EQ(j[0]["peer"], "");
}

}  // namespace
}  // namespace meshlet
