// End-to-end: the real meshletd following a fake Kubernetes API server (HTTPS, bearer token
// from a file) that runs in this test process; the sandbox's pods are described to it as
// Namespace / Service / EndpointSlice / Pod objects shaped as a real cluster returns them.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/lib/e2e_util.h"
#include "tests/lib/fake_apiserver.h"
#include "tests/lib/sandbox.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace meshlet {
namespace {

using testing::count;
using testing::FakeApiServer;
using testing::run;
using testing::Sandbox;
using testing::waitFor;

constexpr const char* kNs = "/api/v1/namespaces";
constexpr const char* kSvc = "/api/v1/services";
constexpr const char* kEps = "/apis/discovery.k8s.io/v1/endpointslices";
constexpr const char* kPods = "/api/v1/pods";
constexpr const char* kVip = "198.19.0.40";

class KubeE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = testing::kernelTestsUnavailable();
    if (!reason.empty()) GTEST_SKIP() << "end-to-end tests cannot run here: " << reason;
    sb_ = std::make_unique<Sandbox>();
    for (const char* n : {"client", "web-1", "web-2"}) sb_->addPod(n);
    for (const char* n : {"web-1", "web-2"}) {
      std::string name = n;
      sb_->spawnInPod(sb_->pod(name), [name] { return testing::serveTcp(AF_INET, 8080, name); });
    }
    dir_ = "/tmp/meshlet-test-kube-" + sb_->id();
    fs::create_directories(dir_ + "/state");
    ASSERT_EQ(testing::makeTestPki(dir_), "");
    std::ofstream(dir_ + "/token") << "e2e-token\n";

    api_ = std::make_unique<FakeApiServer>(dir_);
    api_->serve(kNs, "NamespaceList", "v1", "Namespace");
    api_->serve(kSvc, "ServiceList", "v1", "Service");
    api_->serve(kEps, "EndpointSliceList", "discovery.k8s.io/v1", "EndpointSlice");
    api_->serve(kPods, "PodList", "v1", "Pod");
    api_->setToken("e2e-token");
    api_->put(kNs, testing::realNamespace("shop", {{"istio.io/dataplane-mode", "meshlet"}}));
    api_->put(kSvc, testing::realService("shop", "web", kVip, 80, 8080, "web"));
    putSlice(true);
    for (const char* n : {"client", "web-1", "web-2"}) {
      const auto& p = sb_->pod(n);
      api_->put(kPods,
                testing::realPod("shop", n, p.ip4, "e2e-node",
                                 std::string(n) == "client" ? "client" : "web", p.netns_path));
    }
    ASSERT_TRUE(api_->start());

    std::ofstream(dir_ + "/kubeconfig")
        << "apiVersion: v1\nkind: Config\ncurrent-context: e2e\n"
           "clusters:\n- name: fake\n  cluster:\n    server: "
        << api_->server()
        << "\n    certificate-authority: ca.crt\n"
           "users:\n- name: meshlet\n  user:\n    tokenFile: token\n"
           "contexts:\n- name: e2e\n  context: {cluster: fake, user: meshlet}\n";
    startAgent();
  }
  void TearDown() override {
    testing::stopAgent(agent_pid_);
    if (sb_) run(std::string(MESHLETD_BIN) + " --uninstall --bpffs " + sb_->bpffs());
    api_.reset();
    sb_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void putSlice(bool with_web2) {
    std::vector<testing::FakeEndpoint> eps = {{sb_->pod("web-1").ip4, "web-1", true, "e2e-node"}};
    if (with_web2) eps.push_back({sb_->pod("web-2").ip4, "web-2", true, "e2e-node"});
    api_->put(kEps, testing::realEndpointSlice("shop", "web-x7f2q", "web", 8080, eps));
  }
  void startAgent() {
    agent_pid_ = fork();
    if (agent_pid_ == 0) {
      int fd = open((dir_ + "/meshletd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execl(MESHLETD_BIN, MESHLETD_BIN, "--kubeconfig", (dir_ + "/kubeconfig").c_str(),
            "--node-name", "e2e-node", "--cgroup", sb_->cgroup().c_str(), "--bpffs",
            sb_->bpffs().c_str(), "--admin-socket", (dir_ + "/admin.sock").c_str(),
            "--metrics-addr", "127.0.0.1:0", "--readiness-addr", "127.0.0.1:0", "--cni-socket",
            (dir_ + "/cni.sock").c_str(), "--state-dir", (dir_ + "/state").c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  std::string log() { return run("cat " + dir_ + "/meshletd.log").out; }
  Json status() {
    auto r = run(std::string(MESHLET_CLI_BIN) + " --admin-socket " + dir_ + "/admin.sock" +
                 " status -o json");
    if (r.code != 0) return Json::object();
    auto j = Json::parse(r.out, nullptr, false);
    return j.is_array() && !j.empty() && j[0].is_object() ? j[0] : Json::object();
  }
  std::string connectMany(int n) {
    return sb_->runInPod(sb_->pod("client"), [n] {
      std::string s;
      for (int i = 0; i < n; ++i) s += testing::tcpConnect(kVip, 80, 1000).greeting + " ";
      return s;
    });
  }

  std::unique_ptr<Sandbox> sb_;
  std::unique_ptr<FakeApiServer> api_;
  std::string dir_;
  pid_t agent_pid_ = -1;
};

TEST_F(KubeE2E, FollowsTheApiServerAndKeepsTheLastStateWhenItIsGone) {
  ASSERT_TRUE(waitFor([&] { return status().value("generation", 0) >= 1; }, 10000)) << log();
  Json st = status();
  EXPECT_EQ(st.value("source", ""), "kube");
  ASSERT_TRUE(st.contains("kubernetes")) << st.dump();
  EXPECT_EQ(st["kubernetes"].value("api_server", ""), api_->server());
  EXPECT_TRUE(st["kubernetes"].value("connected", false)) << st.dump();
  EXPECT_EQ(st.value("enrolled_pods", 0), 3) << st.dump() << log();

  // Balanced in the kernel across both pods.
  std::string out = connectMany(40);
  EXPECT_EQ(count(out, "web-1") + count(out, "web-2"), 40) << out;
  EXPECT_GE(count(out, "web-1"), 5) << out;
  EXPECT_GE(count(out, "web-2"), 5) << out;

  // A watch MODIFIED event drops web-2: new connections move within a second or two.
  auto t0 = std::chrono::steady_clock::now();
  putSlice(false);
  ASSERT_TRUE(waitFor([&] { return count(connectMany(10), "web-1") == 10; }, 3000)) << log();
  double moved_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(moved_s, 2.5);
  out = connectMany(20);
  EXPECT_EQ(count(out, "web-1"), 20) << out;

  // The API server goes away: status says so, the last state stays in force.
  api_->stop();
  ASSERT_TRUE(waitFor(
      [&] {
        Json s = status();
        return s.contains("kubernetes") && !s["kubernetes"].value("connected", true);
      },
      5000))
      << status().dump();
  st = status();
  EXPECT_EQ(st["kubernetes"].value("state", ""), "unreachable");
  EXPECT_NE(st["kubernetes"].value("note", "").find("last known state stays in force"),
            std::string::npos)
      << st.dump();
  EXPECT_FALSE(st["kubernetes"].value("last_error", "").empty());
  out = connectMany(20);
  EXPECT_EQ(count(out, "web-1"), 20) << out;
  auto text = run(std::string(MESHLET_CLI_BIN) + " --admin-socket " + dir_ + "/admin.sock status");
  EXPECT_NE(text.out.find("unreachable"), std::string::npos) << text.out;

  // Changed while it was down, then back: the agent resyncs and balances across both again.
  putSlice(true);
  ASSERT_TRUE(api_->start());
  ASSERT_TRUE(waitFor(
      [&] {
        std::string o = connectMany(20);
        return count(o, "web-1") > 0 && count(o, "web-2") > 0;
      },
      10000))
      << log();
  EXPECT_TRUE(waitFor(
      [&] {
        Json s = status();
        return s.contains("kubernetes") && s["kubernetes"].value("connected", false);
      },
      3000));
}

}  // namespace
}  // namespace meshlet
