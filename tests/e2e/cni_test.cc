// End-to-end CNI enrollment: Debian's real CNI plugins (bridge, host-local, loopback) run by a
// test runtime exactly as a container runtime runs them, with meshlet-cni chained last, and
// the real agent enrolling the pods it is told about.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/lib/cni_runtime.h"
#include "tests/lib/e2e_util.h"
#include "tests/lib/sandbox.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace meshlet {
namespace {

using testing::CniResult;
using testing::CniRuntime;
using testing::Sandbox;

using testing::count;
using testing::waitFor;

std::string sh(const std::string& cmd) { return testing::run(cmd).out; }

const char* kConfig = R"(apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: meshlet}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.19.0.10
  selector: {app: web}
  ports: [{name: tcp, port: 80, targetPort: 8080}]
---
# The web pods as the API server knows them: labels, no IP and no netns (the CNI brings both).
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {nodeName: e2e-node, containers: [{name: web, image: web}]}
status: {phase: Running, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web}}
spec: {nodeName: e2e-node, containers: [{name: web, image: web}]}
status: {phase: Running, conditions: [{type: Ready, status: "True"}]}
)";

class CniE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reason_ = testing::kernelTestsUnavailable();
    if (reason_.empty() && access("/usr/lib/cni/bridge", X_OK) != 0) {
      reason_ = "Debian's CNI plugins are missing (apt-get install containernetworking-plugins)";
    }
    if (!reason_.empty()) return;
    sb_ = new Sandbox();
    dir_ = "/tmp/meshlet-test-cni-e2e-" + sb_->id();
    fs::create_directories(dir_ + "/config");
    fs::create_directories(dir_ + "/bin");
    std::ofstream(dir_ + "/config/cluster.yaml") << kConfig;
    startAgent();
    // Every test starts from three pods made by the runtime: a client and two web servers.
    for (const char* n : {"client", "web-1", "web-2"}) {
      CniResult r = addPod(n);
      if (r.exit_code != 0) {
        setup_error_ = std::string(n) + ": ADD failed in " + r.failed_plugin + ": " +
                       r.stdout_text + r.stderr_text;
        return;
      }
    }
    for (const char* n : {"web-1", "web-2"}) {
      std::string name = n;
      sb_->spawnInPod(sb_->pod(name), [name] { return testing::serveTcp(AF_INET, 8080, name); });
    }
  }
  static void TearDownTestSuite() {
    if (!sb_) return;
    // Tear the pods down as a runtime would, so the plugins release what they made.
    for (const auto& [name, cached] : added_) {
      runtime(false).del(cid(name), sb_->pod(name).netns_path, args(name), cached);
    }
    stopAgent();
    sh(std::string(MESHLETD_BIN) + " --uninstall --bpffs " + sb_->bpffs());
    delete sb_;
    sb_ = nullptr;
    fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!reason_.empty()) GTEST_SKIP() << "CNI end-to-end tests cannot run here: " << reason_;
    ASSERT_EQ(setup_error_, "");
    if (agent_pid_ <= 0) startAgent();
  }

  static std::string cid(const std::string& pod) { return "c0ffee" + sb_->id() + pod; }
  static std::string ns(const std::string& pod) { return pod.rfind("plain", 0) == 0 ? "plain" : "shop"; }
  static std::string args(const std::string& pod) {
    return testing::k8sCniArgs(ns(pod), pod, "uid-" + pod, cid(pod));
  }
  static std::string conflist(bool fail_open) {
    Json l = {{"cniVersion", "1.0.0"},
              {"name", "mlt-" + sb_->id()},
              {"plugins",
               {{{"type", "bridge"},
                 {"bridge", "mltcni0"},
                 {"isGateway", false},
                 {"ipMasq", false},
                 {"ipam",
                  {{"type", "host-local"},
                   {"ranges", {{{{"subnet", "198.18.4.0/24"}}}}},
                   {"dataDir", dir_ + "/ipam"}}}},
                {{"type", "meshlet-cni"},
                 {"socketPath", dir_ + "/cni.sock"},
                 {"failOpen", fail_open},
                 {"timeoutMs", 5000}}}}};
    return l.dump();
  }
  static CniRuntime runtime(bool fail_open) {
    CniRuntime rt;
    rt.conflist = conflist(fail_open);
    rt.plugin_dirs = {fs::path(MESHLET_CNI_BIN).parent_path().string(), "/usr/lib/cni"};
    rt.host_netns = "/var/run/netns/" + sb_->nodeNetns();
    return rt;
  }
  // Creates the pod sandbox and runs loopback + the conflist's ADD, as a runtime does.
  static CniResult addPod(const std::string& name, bool fail_open = false) {
    const auto& pod = sb_->addBarePod(name);
    testing::execPlugin("/usr/lib/cni/loopback",
                        {"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + cid(name),
                         "CNI_NETNS=" + pod.netns_path, "CNI_IFNAME=lo", "CNI_PATH=/usr/lib/cni"},
                        R"({"cniVersion":"1.0.0","name":"lo","type":"loopback"})");
    CniResult r = runtime(fail_open).add(cid(name), pod.netns_path, args(name));
    if (r.exit_code == 0) {
      added_[name] = r.stdout_text;
      auto res = Json::parse(r.stdout_text, nullptr, false);
      std::string addr = res["ips"][0]["address"];
      sb_->setPodIp(name, addr.substr(0, addr.find('/')));
    }
    return r;
  }
  static CniResult delPod(const std::string& name) {
    CniResult r = runtime(false).del(cid(name), sb_->pod(name).netns_path, args(name),
                                     added_.count(name) ? added_[name] : "");
    added_.erase(name);
    return r;
  }
  static std::string cli(const std::string& a) {
    return sh(std::string(MESHLET_CLI_BIN) + " --admin-socket " + dir_ + "/admin.sock " + a);
  }
  static Json workload(const std::string& name) {
    auto list = Json::parse(cli("workloads -o json"), nullptr, false);
    if (!list.is_array()) return Json::object();
    for (const auto& w : list) {
      if (w["name"] == name) return w;
    }
    return Json::object();
  }
  static void startAgent() {
    agent_pid_ = testing::spawnAgent(MESHLETD_BIN, dir_, sb_->cgroup(), sb_->bpffs());
    bool up = waitFor(
        [] {
          auto s = Json::parse(cli("status -o json"), nullptr, false);
          return s.is_array() && !s.empty() && s[0].value("generation", 0) >= 1;
        },
        10000);
    ASSERT_TRUE(up) << sh("cat " + dir_ + "/meshletd.log");
    ASSERT_TRUE(waitFor([] { return fs::exists(dir_ + "/cni.sock"); }, 5000));
  }
  static void stopAgent() { testing::stopAgent(agent_pid_); }
  static std::string connectMany(const std::string& from, int n) {
    return sb_->runInPod(sb_->pod(from), [n] {
      std::string s;
      for (int i = 0; i < n; ++i) s += testing::tcpConnect("198.19.0.10", 80).greeting + " ";
      return s;
    });
  }

  static inline Sandbox* sb_ = nullptr;
  static inline std::string dir_;
  static inline std::string reason_;
  static inline std::string setup_error_;
  static inline pid_t agent_pid_ = -1;
  static inline std::map<std::string, std::string> added_;  // pod -> cached ADD result
};

TEST_F(CniE2E, AddEnrollsPodsWhoseServiceTrafficIsBalancedAndSpliced) {
  // Enrolled by the CNI, with the netns the runtime made.
  Json w = workload("client");
  EXPECT_EQ(w.value("enrolled", false), true) << w.dump();
  EXPECT_EQ(w.value("enrolled_by", ""), "cni");
  EXPECT_EQ(w.value("netns", ""), sb_->pod("client").netns_path);
  EXPECT_EQ(w.value("ips", ""), sb_->pod("client").ip4);
  EXPECT_EQ(workload("web-1").value("enrolled_by", ""), "cni");

  std::string out;
  ASSERT_TRUE(waitFor([&] {
    out = connectMany("client", 40);
    return count(out, "web-1") + count(out, "web-2") == 40;
  }, 3000)) << out;
  EXPECT_GE(count(out, "web-1"), 5) << out;
  EXPECT_GE(count(out, "web-2"), 5) << out;
  // Same node, both enrolled: every one of those connections was spliced.
  Json status;
  EXPECT_TRUE(waitFor([&] {
    status = Json::parse(cli("status -o json"), nullptr, false);
    return status.is_array() && status[0].value("spliced_connections", 0) >= 40;
  }, 2000)) << status.dump();
}

TEST_F(CniE2E, CheckPassesForAnEnrolledPod) {
  // web-2 was added last, so the bridge's MAC in its cached result is still current (the
  // bridge plugin's own CHECK compares it).
  ASSERT_TRUE(added_.count("web-2"));
  CniResult r = runtime(false).check(cid("web-2"), sb_->pod("web-2").netns_path, args("web-2"),
                                     added_["web-2"]);
  EXPECT_EQ(r.exit_code, 0) << r.failed_plugin << ": " << r.stdout_text << r.stderr_text;
}

TEST_F(CniE2E, SameAddTwiceEnrollsOnce) {
  ASSERT_TRUE(added_.count("client"));
  // The runtime retries meshlet-cni's ADD with the same prevResult: still one enrolled pod.
  auto list = Json::parse(runtime(false).conflist);
  Json conf = list["plugins"][1];
  conf["name"] = list["name"];
  conf["cniVersion"] = "1.0.0";
  conf["prevResult"] = Json::parse(added_["client"]);
  for (int i = 0; i < 2; ++i) {
    CniResult r = testing::execPlugin(
        fs::path(MESHLET_CNI_BIN).string(),
        {"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + cid("client"),
         "CNI_NETNS=" + sb_->pod("client").netns_path, "CNI_IFNAME=eth0",
         "CNI_ARGS=" + args("client"), "CNI_PATH=/usr/lib/cni"},
        conf.dump());
    EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
    EXPECT_EQ(Json::parse(r.stdout_text, nullptr, false), conf["prevResult"]);
  }
  auto list2 = Json::parse(cli("workloads -o json"), nullptr, false);
  EXPECT_EQ(std::count_if(list2.begin(), list2.end(),
                          [](const Json& w) { return w["name"] == "client"; }),
            1);
}

TEST_F(CniE2E, PodOutsideTheMeshIsNotEnrolledButStarts) {
  CniResult r = addPod("plain-1");
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_TRUE(workload("plain-1").empty() || !workload("plain-1").value("enrolled", false));
}

TEST_F(CniE2E, DelOfAnUnknownPodAndDoubleDelSucceed) {
  CniResult r = testing::execPlugin(
      fs::path(MESHLET_CNI_BIN).string(),
      {"CNI_COMMAND=DEL", "CNI_CONTAINERID=never-seen", "CNI_NETNS=", "CNI_IFNAME=eth0",
       "CNI_ARGS=" + testing::k8sCniArgs("shop", "ghost", "uid-ghost", "never-seen"),
       "CNI_PATH=/usr/lib/cni"},
      Json{{"cniVersion", "1.0.0"}, {"name", "x"}, {"type", "meshlet-cni"},
           {"socketPath", dir_ + "/cni.sock"}}
          .dump());
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text;
  EXPECT_EQ(r.stdout_text, "");
}

TEST_F(CniE2E, AgentRestartKeepsEnrolledPodsAndDropsVanishedOnes) {
  ASSERT_TRUE(added_.count("web-1"));
  CniResult extra = addPod("gone-1");
  ASSERT_EQ(extra.exit_code, 0) << extra.stdout_text << extra.stderr_text;
  ASSERT_TRUE(workload("gone-1").value("enrolled", false));
  stopAgent();
  // While the agent is down the datapath keeps every enrolled pod.
  std::string out = connectMany("client", 10);
  EXPECT_EQ(count(out, "web-1") + count(out, "web-2"), 10) << out;
  // A pod deleted without a DEL while the agent was down: its netns is gone.
  runtime(false).del(cid("gone-1"), sb_->pod("gone-1").netns_path, args("gone-1"),
                     added_["gone-1"]);
  added_.erase("gone-1");
  sb_->removePod("gone-1");
  startAgent();
  EXPECT_TRUE(workload("client").value("enrolled", false));
  EXPECT_EQ(workload("web-2").value("enrolled_by", ""), "cni");
  EXPECT_TRUE(workload("gone-1").empty()) << workload("gone-1").dump();
  out = connectMany("client", 10);
  EXPECT_EQ(count(out, "web-1") + count(out, "web-2"), 10) << out;
}

TEST_F(CniE2E, AgentDownFailsClosedOrOpensAsConfigured) {
  stopAgent();
  CniResult closed = addPod("late-1", /*fail_open=*/false);
  EXPECT_NE(closed.exit_code, 0);
  EXPECT_EQ(closed.failed_plugin, "meshlet-cni");
  auto err = Json::parse(closed.stdout_text, nullptr, false);
  EXPECT_EQ(err.value("code", 0), 11) << closed.stdout_text;
  EXPECT_NE(err.value("msg", "").find("unreachable"), std::string::npos) << closed.stdout_text;
  // The runtime cleans up a failed ADD with DEL, which succeeds with the agent down.
  CniResult del = runtime(false).del(cid("late-1"), sb_->pod("late-1").netns_path, args("late-1"), "");
  EXPECT_EQ(del.exit_code, 0) << del.failed_plugin << del.stdout_text << del.stderr_text;
  sb_->removePod("late-1");
  CniResult open = addPod("late-2", /*fail_open=*/true);
  EXPECT_EQ(open.exit_code, 0) << open.stdout_text << open.stderr_text;
  startAgent();
}

TEST_F(CniE2E, DelTearsThePodDown) {
  ASSERT_TRUE(added_.count("web-2"));
  CniResult r = delPod("web-2");
  EXPECT_EQ(r.exit_code, 0) << r.failed_plugin << r.stdout_text << r.stderr_text;
  EXPECT_FALSE(workload("web-2").value("enrolled", false));
  // Its endpoint is gone: every new connection goes to web-1.
  std::string out;
  EXPECT_TRUE(waitFor([&] {
    out = connectMany("client", 10);
    return count(out, "web-1") == 10;
  }, 3000)) << out;
}

}  // namespace
}  // namespace meshlet

namespace meshlet {
namespace {

TEST_F(CniE2E, CheckFailsForAMeshedPodThatWasNeverEnrolled) {
  Json conf = {{"cniVersion", "1.0.0"}, {"name", "x"}, {"type", "meshlet-cni"},
               {"socketPath", dir_ + "/cni.sock"},
               {"prevResult", {{"cniVersion", "1.0.0"},
                               {"ips", {{{"address", "198.18.4.200/24"}}}}}}};
  CniResult r = testing::execPlugin(
      fs::path(MESHLET_CNI_BIN).string(),
      {"CNI_COMMAND=CHECK", "CNI_CONTAINERID=stranger", "CNI_NETNS=" + sb_->pod("client").netns_path,
       "CNI_IFNAME=eth0", "CNI_ARGS=" + testing::k8sCniArgs("shop", "stranger", "u", "stranger"),
       "CNI_PATH=/usr/lib/cni"},
      conf.dump());
  EXPECT_NE(r.exit_code, 0);
  auto err = Json::parse(r.stdout_text, nullptr, false);
  EXPECT_EQ(err.value("code", 0), 100) << r.stdout_text;
  EXPECT_NE(err.value("msg", "").find("not enrolled"), std::string::npos) << r.stdout_text;
}

}  // namespace
}  // namespace meshlet
