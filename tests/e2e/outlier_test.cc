// End-to-end: L4 outlier detection in the kernel's balancer. A service on a port named tcp
// (the kernel path) with three backend pods and a DestinationRule outlierDetection: one
// backend's listener stops, the kernel records the refused connects, the agent ejects it (the
// next connections all land on the others; `meshlet endpoints` and the metrics say so), and
// after baseEjectionTime it takes connections again once its listener is back. A service
// without outlierDetection over the same pods never ejects.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/lib/e2e_util.h"
#include "tests/lib/sandbox.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace meshlet {
namespace {

using testing::Sandbox;
using testing::TestPod;

using testing::run;
using testing::waitFor;
using testing::writeFile;

std::string podYaml(const TestPod& p, const std::string& app) {
  testing::PodYaml y;
  y.ns = "od";
  y.labels = "{app: " + app + "}";
  y.service_account = app;
  y.container_port = "tcp";
  return testing::podYaml(p, y);
}

constexpr const char* kWebVip = "198.19.0.40";
constexpr const char* kPlainVip = "198.19.0.41";

const char* kConfig = R"(apiVersion: v1
kind: Namespace
metadata:
  name: od
  labels: {istio.io/dataplane-mode: meshlet}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: od}
spec:
  clusterIP: 198.19.0.40
  selector: {app: web}
  ports: [{name: tcp, port: 80, targetPort: tcp}]
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: od}
spec:
  clusterIP: 198.19.0.41
  selector: {app: web}
  ports: [{name: tcp, port: 80, targetPort: tcp}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: od}
spec:
  host: web
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 2s
      maxEjectionPercent: 50
)";

class OutlierE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = testing::kernelTestsUnavailable();
    if (!reason.empty()) GTEST_SKIP() << "end-to-end tests cannot run here: " << reason;
    sb_ = std::make_unique<Sandbox>();
    sb_->addPod("client");
    for (const char* n : {"web-1", "web-2", "web-3"}) {
      sb_->addPod(n);
      serve(n);
    }
    dir_ = "/tmp/meshlet-test-outlier-" + sb_->id();
    fs::create_directories(dir_ + "/config");
    writeFile(dir_ + "/config/00-config.yaml", kConfig);
    std::string pods = podYaml(sb_->pod("client"), "client");
    for (const char* n : {"web-1", "web-2", "web-3"}) pods += "---\n" + podYaml(sb_->pod(n), "web");
    writeFile(dir_ + "/config/10-pods.yaml", pods);
    agent_ = testing::spawnAgent(MESHLETD_BIN, dir_, sb_->cgroup(), sb_->bpffs());
    ASSERT_GT(agent_, 0);
    ASSERT_TRUE(waitFor([&] { return endpoints("od/web").size() == 3; }, 10000))
        << run("cat " + dir_ + "/meshletd.log").out;
  }
  void TearDown() override {
    if (!sb_) return;
    testing::stopAgent(agent_);
    run(std::string(MESHLETD_BIN) + " --uninstall --bpffs " + sb_->bpffs());
    sb_.reset();  // pods, servers (by PID), cgroups
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void serve(const std::string& name) {
    servers_[name] =
        sb_->spawnInPod(sb_->pod(name), [name] { return testing::serveTcp(AF_INET, 8080, name); });
  }
  void stopServing(const std::string& name) {
    sb_->kill(servers_[name]);
    servers_.erase(name);
  }
  std::string cli(const std::string& args) const {
    return std::string(MESHLET_CLI_BIN) + " --admin-socket " + dir_ + "/admin.sock --bpffs " +
           sb_->bpffs() + " " + args;
  }
  // address -> health of the service's backends.
  std::map<std::string, std::string> endpoints(const std::string& svc) const {
    std::map<std::string, std::string> out;
    auto r = run(cli("endpoints " + svc + " -o json"));
    auto j = Json::parse(r.out, nullptr, false);
    if (r.code != 0 || !j.is_array()) return out;
    for (const auto& e : j) out[e.value("address", "")] = e.value("health", "");
    return out;
  }
  // `n` connects to vip:80 from the client: greeting (backend name) -> count; "refused" etc.
  std::map<std::string, int> connectMany(const std::string& vip, int n) {
    std::string all = sb_->runInPod(sb_->pod("client"), [vip, n] {
      std::string s;
      for (int i = 0; i < n; ++i) {
        auto r = testing::tcpConnect(vip, 80, 1000);
        s += (r.err != 0           ? "error-" + std::to_string(r.err)
              : r.greeting.empty() ? "empty"
                                   : r.greeting) +
             "\n";
      }
      return s;
    });
    std::map<std::string, int> out;
    std::istringstream in(all);
    for (std::string line; std::getline(in, line);) ++out[line];
    return out;
  }
  std::string metrics() {
    auto r = run(cli("status -o json"));
    auto j = Json::parse(r.out, nullptr, false);
    int port = j.is_array() && !j.empty() ? j[0].value("metrics_port", 0) : 0;
    return run("curl -s http://127.0.0.1:" + std::to_string(port) + "/metrics").out;
  }

  std::unique_ptr<Sandbox> sb_;
  std::string dir_;
  pid_t agent_ = -1;
  std::map<std::string, pid_t> servers_;
};

std::string dump(const std::map<std::string, int>& m) {
  std::string s;
  for (const auto& [k, v] : m) s += k + "=" + std::to_string(v) + " ";
  return s;
}

TEST_F(OutlierE2E, RefusedConnectsEjectABackendUntilBaseEjectionTimeThenItReturns) {
  const std::string web2 = sb_->pod("web-2").ip4;
  auto before = connectMany(kWebVip, 30);
  EXPECT_EQ(before.size(), 3u) << dump(before);  // every backend answers, nothing fails

  stopServing("web-2");
  std::map<std::string, int> failing;
  ASSERT_TRUE(waitFor(
      [&] {
        for (const auto& [k, v] : connectMany(kWebVip, 5)) failing[k] += v;
        return endpoints("od/web")[web2].rfind("ejected until", 0) == 0;
      },
      10000))
      << dump(failing) << "\n"
      << run(cli("endpoints od/web")).out << run("cat " + dir_ + "/meshletd.log").out;
  EXPECT_GT(failing["error-" + std::to_string(ECONNREFUSED)], 0) << dump(failing);
  auto health = endpoints("od/web");
  EXPECT_EQ(health[sb_->pod("web-1").ip4], "healthy");
  EXPECT_EQ(health[sb_->pod("web-3").ip4], "healthy");

  // Ejected: the next 50 connections all land on web-1 and web-3.
  auto during = connectMany(kWebVip, 50);
  EXPECT_EQ(during["web-1"] + during["web-3"], 50) << dump(during);
  EXPECT_NE(metrics().find("meshlet_outlier_ejections_total{"), std::string::npos);

  // The service without outlierDetection keeps sending connections to web-2.
  auto plain = connectMany(kPlainVip, 30);
  EXPECT_GT(plain["error-" + std::to_string(ECONNREFUSED)], 0) << dump(plain);
  for (const auto& [addr, h] : endpoints("od/plain")) EXPECT_EQ(h, "healthy") << addr;

  // Back after baseEjectionTime (2 s, first ejection), and its listener is up again.
  serve("web-2");
  ASSERT_TRUE(waitFor([&] { return endpoints("od/web")[web2] == "healthy"; }, 6000))
      << run(cli("endpoints od/web")).out;
  auto after = connectMany(kWebVip, 60);
  EXPECT_GT(after["web-2"], 0) << dump(after);
  EXPECT_EQ(after["web-1"] + after["web-2"] + after["web-3"], 60) << dump(after);
  std::string log = run("cat " + dir_ + "/meshletd.log").out;
  EXPECT_NE(log.find("outlier detection ejected " + web2 + ":8080 from od/web:80"),
            std::string::npos)
      << log;
}

}  // namespace
}  // namespace meshlet
