#include "agent/telemetry/metrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "tests/unit/admin/scenario.h"

namespace meshlet {
namespace {

// The labels of a metric sample (not Kubernetes labels).
using MetricLabels = std::map<std::string, std::string>;

using scenario::conn;
using scenario::dialled;

class IstioTcpLabelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_ = scenario::makeSnapshot();
    desired_ = scenario::translateSnapshot(*snapshot_);
    client_ = scenario::podId(desired_, "demo/client-1");
    web1_ = scenario::podId(desired_, "demo/web-1");
    web4_ = scenario::svcId(desired_, "demo/web", "198.19.0.10");
  }

  MetricLabels labels(const ConnEntry& c, const ConnEntry* peer = nullptr) {
    return istioTcpLabels(c, peer, desired_, *snapshot_);
  }

  // client-1 -> web.demo (198.19.0.10:80) balanced to web-2 on node-b.
  ConnEntry outboundToRemote(uint8_t extra_flags = 0) {
    ConnEntry c = conn("198.18.0.2", 40000, "198.18.1.10", 8080,
                       MESHLET_CONN_ACTIVE | extra_flags, MESHLET_PATH_BALANCED);
    dialled(c, web4_, scenario::backendId(desired_, web4_, "198.18.1.10"), "198.19.0.10", 80);
    c.value.pod_id = client_;
    return c;
  }

  // client-1 -> web.demo balanced to web-1 on this node and spliced: both sides' entries.
  std::pair<ConnEntry, ConnEntry> splicedPair() {
    ConnEntry out = conn("198.18.0.2", 40001, "198.18.0.10", 8080,
                         MESHLET_CONN_ACTIVE | MESHLET_CONN_SPLICED, MESHLET_PATH_SPLICED);
    dialled(out, web4_, scenario::backendId(desired_, web4_, "198.18.0.10"), "198.19.0.10", 80);
    out.value.pod_id = client_;
    out.value.peer_pod_id = web1_;
    ConnEntry in = conn("198.18.0.10", 8080, "198.18.0.2", 40001, MESHLET_CONN_SPLICED,
                        MESHLET_PATH_SPLICED);
    in.value.pod_id = web1_;
    in.value.peer_pod_id = client_;
    return {out, in};
  }

  std::shared_ptr<Snapshot> snapshot_;
  DesiredDatapath desired_;
  uint32_t client_ = 0;
  uint32_t web1_ = 0;
  uint32_t web4_ = 0;
};

TEST_F(IstioTcpLabelsTest, HasIstioLabelSet) {
  MetricLabels l = labels(outboundToRemote());
  std::vector<std::string> keys;
  for (const auto& [k, v] : l) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "connection_security_policy", "destination_app", "destination_cluster",
                      "destination_principal", "destination_service",
                      "destination_service_name", "destination_service_namespace",
                      "destination_version", "destination_workload",
                      "destination_workload_namespace", "meshlet_path", "reporter",
                      "request_protocol", "response_flags", "source_app", "source_cluster",
                      "source_principal", "source_version", "source_workload",
                      "source_workload_namespace"}));
}

TEST_F(IstioTcpLabelsTest, OutboundBalancedToBackendOnAnotherNode) {
  MetricLabels l = labels(outboundToRemote());
  EXPECT_EQ(l["reporter"], "source");
  EXPECT_EQ(l["source_workload"], "client");
  EXPECT_EQ(l["source_workload_namespace"], "demo");
  EXPECT_EQ(l["source_app"], "client");
  EXPECT_EQ(l["source_version"], "v1");
  // The backend pod is not enrolled here; its labels come from the snapshot.
  EXPECT_EQ(l["destination_workload"], "web");
  EXPECT_EQ(l["destination_workload_namespace"], "demo");
  EXPECT_EQ(l["destination_app"], "web");
  EXPECT_EQ(l["destination_version"], "v3");
  EXPECT_EQ(l["destination_service"], "web.demo.svc.cluster.local");
  EXPECT_EQ(l["destination_service_name"], "web");
  EXPECT_EQ(l["destination_service_namespace"], "demo");
  EXPECT_EQ(l["request_protocol"], "tcp");
  EXPECT_EQ(l["response_flags"], "-");
  EXPECT_EQ(l["connection_security_policy"], "none");
  EXPECT_EQ(l["source_cluster"], "Kubernetes");
  EXPECT_EQ(l["destination_cluster"], "Kubernetes");
  EXPECT_EQ(l["meshlet_path"], "balanced");
}

TEST_F(IstioTcpLabelsTest, FailedConnectIsUpstreamFailure) {
  MetricLabels l = labels(outboundToRemote(MESHLET_CONN_FAILED | MESHLET_CONN_CLOSED));
  EXPECT_EQ(l["response_flags"], "UF");
  EXPECT_EQ(l["destination_service"], "web.demo.svc.cluster.local");
  EXPECT_EQ(l["destination_workload"], "web");
}

TEST_F(IstioTcpLabelsTest, BackendPodMissingFromSnapshotIsUnknown) {
  ConnEntry c = outboundToRemote();
  // 198.18.1.11 targets pod web-3, which the snapshot does not have.
  c.value.backend_id = scenario::backendId(desired_, web4_, "198.18.1.11");
  MetricLabels l = labels(c);
  EXPECT_EQ(l["destination_workload"], "unknown");
  EXPECT_EQ(l["destination_workload_namespace"], "unknown");
  EXPECT_EQ(l["destination_app"], "unknown");
  EXPECT_EQ(l["destination_service"], "web.demo.svc.cluster.local");
}

TEST_F(IstioTcpLabelsTest, OutboundSplicedBetweenEnrolledPods) {
  auto [out, in] = splicedPair();
  MetricLabels l = labels(out, &in);
  EXPECT_EQ(l["reporter"], "source");
  EXPECT_EQ(l["source_workload"], "client");
  EXPECT_EQ(l["source_version"], "v1");
  // app.kubernetes.io/* labels win over app/version.
  EXPECT_EQ(l["destination_workload"], "web");
  EXPECT_EQ(l["destination_app"], "web");
  EXPECT_EQ(l["destination_version"], "v2");
  EXPECT_EQ(l["destination_workload_namespace"], "demo");
  EXPECT_EQ(l["destination_service"], "web.demo.svc.cluster.local");
  EXPECT_EQ(l["response_flags"], "-");
  EXPECT_EQ(l["meshlet_path"], "spliced");
}

TEST_F(IstioTcpLabelsTest, InboundWithPeerEntryKnowsTheService) {
  auto [out, in] = splicedPair();
  MetricLabels l = labels(in, &out);
  EXPECT_EQ(l["reporter"], "destination");
  EXPECT_EQ(l["source_workload"], "client");
  EXPECT_EQ(l["source_workload_namespace"], "demo");
  EXPECT_EQ(l["source_app"], "client");
  EXPECT_EQ(l["source_version"], "v1");
  EXPECT_EQ(l["destination_workload"], "web");
  EXPECT_EQ(l["destination_version"], "v2");
  EXPECT_EQ(l["destination_service"], "web.demo.svc.cluster.local");
  EXPECT_EQ(l["destination_service_name"], "web");
  EXPECT_EQ(l["destination_service_namespace"], "demo");
  EXPECT_EQ(l["request_protocol"], "tcp");
  EXPECT_EQ(l["connection_security_policy"], "none");
}

TEST_F(IstioTcpLabelsTest, InboundWithoutPeerEntry) {
  // A client on node-b reached web-1 directly: nothing on this node knows the service.
  ConnEntry in = conn("198.18.0.10", 8080, "198.18.1.50", 5555, 0, MESHLET_PATH_PASSTHROUGH);
  in.value.pod_id = web1_;
  MetricLabels l = labels(in);
  EXPECT_EQ(l["reporter"], "destination");
  EXPECT_EQ(l["source_workload"], "unknown");
  EXPECT_EQ(l["source_workload_namespace"], "unknown");
  EXPECT_EQ(l["source_app"], "unknown");
  EXPECT_EQ(l["source_version"], "unknown");
  EXPECT_EQ(l["destination_workload"], "web");
  EXPECT_EQ(l["destination_workload_namespace"], "demo");
  EXPECT_EQ(l["destination_version"], "v2");
  EXPECT_EQ(l["destination_service"], "unknown");
  EXPECT_EQ(l["destination_service_name"], "unknown");
  EXPECT_EQ(l["destination_service_namespace"], "unknown");
  EXPECT_EQ(l["response_flags"], "-");
  EXPECT_EQ(l["meshlet_path"], "passthrough");
}

TEST_F(IstioTcpLabelsTest, PodInfoWithoutSnapshotPodFallsBackToWorkload) {
  Snapshot empty;
  auto [out, in] = splicedPair();
  MetricLabels l = istioTcpLabels(out, &in, desired_, empty);
  EXPECT_EQ(l["source_workload"], "client");  // PodInfo.workload
  EXPECT_EQ(l["source_workload_namespace"], "demo");
  EXPECT_EQ(l["source_app"], "unknown");
  EXPECT_EQ(l["destination_workload"], "web");
  EXPECT_EQ(l["destination_service"], "web.demo.svc.cluster.local");
}

TEST_F(IstioTcpLabelsTest, EmptyAppLabelFallsBackLikeTranslation) {
  // translate() skips empty app.kubernetes.io/name / app values (PodInfo.workload "web");
  // the metrics labels of the same pod should agree.
  for (auto& p : snapshot_->pods.mut()) {
    if (p.meta.name == "client-1") p.meta.labels = {{"app.kubernetes.io/name", ""}, {"app", "web"}};
  }
  desired_ = scenario::translateSnapshot(*snapshot_);
  ASSERT_EQ(desired_.pod_info.at(client_).workload, "web");
  MetricLabels l = labels(outboundToRemote());
  EXPECT_EQ(l["source_workload"], "web");
  EXPECT_EQ(l["source_app"], "web");
}

// ---- the /metrics endpoint ----

std::string run(const std::string& cmd, int* exit_code) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    *exit_code = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// Feeds `text` to `cmd` on stdin; returns its exit code, its output in *output.
int pipeInto(const std::string& cmd, const std::string& text, std::string* output) {
  std::string out_file = "/tmp/meshlet-test-promtool-" + std::to_string(::getpid()) + ".out";
  FILE* p = ::popen((cmd + " >" + out_file + " 2>&1").c_str(), "w");
  if (!p) return -1;
  fwrite(text.data(), 1, text.size(), p);
  int st = ::pclose(p);
  std::ifstream f(out_file);
  std::stringstream ss;
  ss << f.rdbuf();
  *output = ss.str();
  ::unlink(out_file.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(MetricsServeTest, PicksFreePortAndServesPromtoolValidText) {
  Metrics m;
  Status st = m.serve("127.0.0.1:0");
  ASSERT_TRUE(st.ok()) << st.error().message();
  ASSERT_GT(m.port(), 0);
  m.setConfig(3, true, 0.01);
  m.setMaps({{"meshlet_svc_v1", 4, 65536}});
  m.mapUpdateError("meshlet_backends_v1");
  m.configRejected();

  int code = 0;
  std::string body = run(
      "curl -s --max-time 10 http://127.0.0.1:" + std::to_string(m.port()) + "/metrics", &code);
  ASSERT_EQ(code, 0) << "curl failed";
  EXPECT_NE(body.find("meshlet_config_generation 3"), std::string::npos) << body;
  EXPECT_NE(body.find("meshlet_config_last_sync_duration_seconds 0.01"), std::string::npos)
      << body;
  EXPECT_NE(body.find("meshlet_config_rejected_total 1"), std::string::npos) << body;
  // configRejected() after setConfig(ok) leaves config_ok at 0.
  EXPECT_NE(body.find("meshlet_config_ok 0"), std::string::npos) << body;
  EXPECT_NE(body.find("meshlet_map_entries{map=\"meshlet_svc_v1\"} 4"), std::string::npos)
      << body;
  EXPECT_NE(body.find("meshlet_map_capacity{map=\"meshlet_svc_v1\"} 65536"), std::string::npos)
      << body;
  EXPECT_NE(body.find("meshlet_map_update_errors_total{map=\"meshlet_backends_v1\"} 1"),
            std::string::npos)
      << body;

  std::string promtool_out;
  EXPECT_EQ(pipeInto("promtool check metrics", body, &promtool_out), 0) << promtool_out;
}

TEST(MetricsServeTest, ConfigNotOkKeepsLastSyncDuration) {
  Metrics m;
  ASSERT_TRUE(m.serve("127.0.0.1:0").ok());
  m.setConfig(1, true, 0.25);
  m.setConfig(2, false, 9.0);
  int code = 0;
  std::string body = run(
      "curl -s --max-time 10 http://127.0.0.1:" + std::to_string(m.port()) + "/metrics", &code);
  ASSERT_EQ(code, 0);
  EXPECT_NE(body.find("meshlet_config_generation 2"), std::string::npos) << body;
  EXPECT_NE(body.find("meshlet_config_ok 0"), std::string::npos) << body;
  EXPECT_NE(body.find("meshlet_config_last_sync_duration_seconds 0.25"), std::string::npos)
      << body;
}

TEST(MetricsServeTest, DistinctFreePortsAndBusyPortIsAnError) {
  Metrics a;
  Metrics b;
  ASSERT_TRUE(a.serve("127.0.0.1:0").ok());
  ASSERT_TRUE(b.serve("127.0.0.1:0").ok());
  EXPECT_GT(a.port(), 0);
  EXPECT_GT(b.port(), 0);
  EXPECT_NE(a.port(), b.port());
  Metrics c;
  Status st = c.serve("127.0.0.1:" + std::to_string(a.port()));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("cannot serve metrics"), std::string::npos)
      << st.error().message();
  EXPECT_EQ(c.port(), 0);
}

}  // namespace
}  // namespace meshlet

namespace meshlet {
namespace {

// A tunnelled connection is labelled from the side reporting it: on the source node the local
// pod is the source; on the destination node the proven peer identity is the source principal.
TEST(IstioTunnelLabels, BothReportersCarryMutualTlsAndBothPrincipals) {
  Snapshot s;
  Pod client;
  client.meta.ns = "shop";
  client.meta.name = "client-1";
  client.meta.labels = {{"app", "client"}, {"version", "v2"}};
  Pod db;
  db.meta.ns = "shop";
  db.meta.name = "db-0";
  db.meta.labels = {{"app.kubernetes.io/name", "db"}};
  s.pods = {client, db};

  proxy::TunnelConn out;
  out.pod = "shop/client-1";
  out.peer_pod = "shop/db-0";
  out.local_id = "spiffe://cluster.local/ns/shop/sa/client";
  out.peer_id = "spiffe://cluster.local/ns/shop/sa/db";
  out.service = "db.shop.svc.cluster.local";
  auto l = istioTunnelLabels(out, &s);
  EXPECT_EQ(l["reporter"], "source");
  EXPECT_EQ(l["source_workload"], "client");
  EXPECT_EQ(l["source_version"], "v2");
  EXPECT_EQ(l["destination_workload"], "db");
  EXPECT_EQ(l["source_principal"], out.local_id);
  EXPECT_EQ(l["destination_principal"], out.peer_id);
  EXPECT_EQ(l["destination_service_name"], "db");
  EXPECT_EQ(l["destination_service_namespace"], "shop");
  EXPECT_EQ(l["connection_security_policy"], "mutual_tls");
  EXPECT_EQ(l["meshlet_path"], "tunnel");

  proxy::TunnelConn in = out;
  in.inbound = true;
  in.pod = "shop/db-0";
  in.peer_pod = "shop/client-1";
  in.local_id = out.peer_id;
  in.peer_id = out.local_id;
  auto r = istioTunnelLabels(in, &s);
  EXPECT_EQ(r["reporter"], "destination");
  EXPECT_EQ(r["source_workload"], "client");
  EXPECT_EQ(r["destination_workload"], "db");
  EXPECT_EQ(r["source_principal"], "spiffe://cluster.local/ns/shop/sa/client");
  EXPECT_EQ(r["destination_principal"], "spiffe://cluster.local/ns/shop/sa/db");

  // Nothing known about the peer or the service: "unknown", never empty.
  proxy::TunnelConn bare;
  bare.inbound = true;
  bare.pod = "shop/db-0";
  auto b = istioTunnelLabels(bare, nullptr);
  EXPECT_EQ(b["source_workload"], "unknown");
  EXPECT_EQ(b["source_principal"], "unknown");
  EXPECT_EQ(b["destination_service"], "unknown");
  EXPECT_EQ(b["destination_service_name"], "unknown");
}

}  // namespace
}  // namespace meshlet
