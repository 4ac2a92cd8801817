// Runs the built meshlet-cni binary as a container runtime would (env vars + stdin, stdout + exit
// code) against a fake agent on a temp unix socket.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "tests/cni/cni_test_util.h"

namespace meshlet::cni {
namespace {

using testing::FakeAgent;
using testing::RunBinary;
using testing::RunResult;
using testing::TempDir;
using Json = nlohmann::json;

// Formatted on purpose so that re-serializing it would change bytes: key order, spacing,
// "1.50", a \u escape.
constexpr const char* kPrevResult =
    R"({"cniVersion": "1.0.0",  "interfaces":[{"name":"cni0","mac":"aa:bb:cc:00:11:22"},)"
    R"({"name":"eth0","sandbox":"/var/run/netns/cni-1"}],)"
    "\n    "
    R"("ips":[{"address":"198.18.0.5/24","gateway":"198.18.0.1","interface":1},)"
    R"( {"address":"2001:db8::5/64","interface":1}],"routes":[{"dst":"0.0.0.0/0"}],)"
    R"( "dns":{"nameservers":["198.18.0.10"]}, "zz": "caf\u00e9", "a": 1.50})";

class PluginTest : public ::testing::Test {
 protected:
  PluginTest() : dir_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {
    socket_ = dir_ / "cni.sock";
    env_ = {{"CNI_COMMAND", "ADD"},
            {"CNI_CONTAINERID", "3f2a9c0d11e4"},
            {"CNI_NETNS", "/proc/self/ns/net"},
            {"CNI_IFNAME", "eth0"},
            {"CNI_PATH", "/opt/cni/bin"},
            {"CNI_ARGS",
             "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-7d9f;"
             "K8S_POD_INFRA_CONTAINER_ID=3f2a9c0d11e4;K8S_POD_UID=0b7c6f3e-1111-2222"}};
  }

  // A chained plugin's stdin. `extra` is spliced in as more members (with a trailing comma).
  std::string Config(const std::string& version = "1.0.0", const std::string& extra = "",
                     const char* prev_result = kPrevResult) const {
    std::string out = R"({"cniVersion":")" + version +
                      R"(","name":"k8s-pod-network","type":"meshlet-cni","socketPath":")" +
                      socket_ + R"(","timeoutMs": 3000,)" + extra;
    if (prev_result != nullptr) out += R"("prevResult": )" + std::string(prev_result) + ",";
    return out + R"("capabilities": {"portMappings": true}})";
  }

  RunResult Run(const std::string& command, const std::string& stdin_data) {
    env_["CNI_COMMAND"] = command;
    RunResult result = RunBinary(CNI_PLUGIN_BIN, {}, env_, stdin_data);
    EXPECT_TRUE(result.exited) << "the plugin crashed; stderr: " << result.err;
    return result;
  }

  // Asserts a spec error object on stdout with the code; returns it.
  Json ExpectError(const RunResult& result, int code) {
    EXPECT_EQ(result.exit_code, 1) << result.out;
    Json error = Json::parse(result.out, nullptr, false);
    EXPECT_TRUE(error.is_object()) << result.out;
    if (!error.is_object()) return error;
    EXPECT_EQ(error.value("code", 0), code) << result.out;
    EXPECT_TRUE(error.contains("cniVersion") && error["cniVersion"].is_string()) << result.out;
    EXPECT_TRUE(error.contains("msg") && !error["msg"].get<std::string>().empty()) << result.out;
    EXPECT_TRUE(error.contains("details")) << result.out;
    return error;
  }

  TempDir dir_;
  std::string socket_;
  std::map<std::string, std::string> env_;
};

TEST_F(PluginTest, VersionAnswersSupportedVersions) {
  RunResult r = Run("VERSION", R"({"cniVersion":"0.4.0"})");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out,
            R"({"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]})");
}

TEST_F(PluginTest, AddEnrolledPrintsPrevResultByteForByteAndTellsTheAgentEverything) {
  FakeAgent agent(socket_);
  RunResult r = Run("ADD", Config());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, kPrevResult);
  auto requests = agent.requests();
  ASSERT_EQ(requests.size(), 1u);
  const Request& req = requests[0].request;
  EXPECT_EQ(req.command(), ADD);
  EXPECT_EQ(req.cni_version(), "1.0.0");
  EXPECT_EQ(req.pod().container_id(), "3f2a9c0d11e4");
  EXPECT_EQ(req.pod().pod_name(), "cart-7d9f");
  EXPECT_EQ(req.pod().pod_namespace(), "shop");
  EXPECT_EQ(req.pod().pod_uid(), "0b7c6f3e-1111-2222");
  EXPECT_EQ(req.pod().netns_path(), "/proc/self/ns/net");
  EXPECT_EQ(req.pod().ifname(), "eth0");
  ASSERT_EQ(req.pod().ips_size(), 2);
  EXPECT_EQ(req.pod().ips(0), "198.18.0.5");
  EXPECT_EQ(req.pod().ips(1), "2001:db8::5");
  EXPECT_TRUE(req.netns_fd_attached());
  ASSERT_TRUE(requests[0].got_fd);
  struct stat netns {};
  ASSERT_EQ(stat("/proc/self/ns/net", &netns), 0);
  EXPECT_EQ(requests[0].fd_stat.st_ino, netns.st_ino);
  EXPECT_EQ(requests[0].fd_stat.st_dev, netns.st_dev);
}

TEST_F(PluginTest, AddSendsTheFdOfANamedNetns) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for ip netns add";
  std::string name = "meshlet-test-cni-" + std::to_string(getpid());
  if (std::system(("ip netns add " + name + " 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << "ip netns add failed";
  }
  FakeAgent agent(socket_);
  env_["CNI_NETNS"] = "/var/run/netns/" + name;
  RunResult r = Run("ADD", Config());
  struct stat netns {};
  int stat_rc = stat(env_["CNI_NETNS"].c_str(), &netns);
  std::system(("ip netns delete " + name).c_str());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(stat_rc, 0);
  auto requests = agent.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].request.pod().netns_path(), "/var/run/netns/" + name);
  ASSERT_TRUE(requests[0].got_fd);
  EXPECT_EQ(requests[0].fd_stat.st_ino, netns.st_ino);
  struct stat own {};
  ASSERT_EQ(stat("/proc/self/ns/net", &own), 0);
  EXPECT_NE(requests[0].fd_stat.st_ino, own.st_ino);
}

TEST_F(PluginTest, AddNotMeshedPrintsPrevResult) {
  FakeAgent agent(socket_);
  agent.Answer(Response::NOT_MESHED, "no istio.io/dataplane-mode label");
  RunResult r = Run("ADD", Config());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, kPrevResult);
  EXPECT_EQ(agent.requests().size(), 1u);
}

TEST_F(PluginTest, AddFailedIsError100WithTheAgentsMessage) {
  FakeAgent agent(socket_);
  agent.Answer(Response::FAILED, "cannot read the netns cookie");
  Json error = ExpectError(Run("ADD", Config()), 100);
  EXPECT_EQ(error["msg"], "cannot read the netns cookie");
  EXPECT_EQ(error["cniVersion"], "1.0.0");
}

TEST_F(PluginTest, AddAgentDownFailsClosedWithTryAgainLater) {
  Json error = ExpectError(Run("ADD", Config()), 11);
  std::string msg = error["msg"];
  EXPECT_NE(msg.find("meshlet agent unreachable at " + socket_), std::string::npos) << msg;
  EXPECT_NE(msg.find("failOpen is false"), std::string::npos) << msg;
}

TEST_F(PluginTest, AddAgentDownFailOpenPrintsPrevResultAndWarns) {
  RunResult r = Run("ADD", Config("1.0.0", R"("failOpen": true,)"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, kPrevResult);
  EXPECT_NE(r.err.find("WARNING"), std::string::npos) << r.err;
}

TEST_F(PluginTest, AddAgentThatNeverAnswersTimesOut) {
  FakeAgent agent(socket_);
  agent.SetMode(FakeAgent::Mode::kHang);
  auto start = std::chrono::steady_clock::now();
  Json error = ExpectError(Run("ADD", Config("1.0.0", R"("timeoutMs": 300,)")), 11);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_NE(error["msg"].get<std::string>().find("timed out"), std::string::npos) << error;
}

TEST_F(PluginTest, AddAgentThatHangsUpOrAnswersGarbageIsUnreachable) {
  FakeAgent agent(socket_);
  agent.SetMode(FakeAgent::Mode::kCloseWithoutAnswer);
  ExpectError(Run("ADD", Config()), 11);
  agent.SetMode(FakeAgent::Mode::kGarbage);
  ExpectError(Run("ADD", Config()), 11);
  RunResult r = Run("ADD", Config("1.0.0", R"("failOpen": true,)"));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, kPrevResult);
}

TEST_F(PluginTest, AddUnexpectedStatusIsAnError) {
  FakeAgent agent(socket_);
  agent.Answer(Response::REMOVED);
  ExpectError(Run("ADD", Config()), 100);
}

TEST_F(PluginTest, OlderConfigVersionsAreAccepted) {
  FakeAgent agent(socket_);
  for (const char* version : {"0.3.0", "0.3.1", "0.4.0"}) {
    RunResult r = Run("ADD", Config(version));
    EXPECT_EQ(r.exit_code, 0) << version << r.out;
    EXPECT_EQ(r.out, kPrevResult) << version;
  }
  ASSERT_EQ(agent.requests().size(), 3u);
  EXPECT_EQ(agent.requests()[1].request.cni_version(), "0.3.1");
  agent.Answer(Response::FAILED, "nope");
  Json error = ExpectError(Run("ADD", Config("0.4.0")), 100);
  EXPECT_EQ(error["cniVersion"], "0.4.0");  // errors answer in the config's version
}

TEST_F(PluginTest, NonKubernetesContainerPassesThroughWithoutAskingTheAgent) {
  FakeAgent agent(socket_);
  env_["CNI_ARGS"] = "IgnoreUnknown=1";
  RunResult r = Run("ADD", Config());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, kPrevResult);
  EXPECT_NE(r.err.find("not a Kubernetes pod"), std::string::npos) << r.err;
  const char* no_ips = R"({"cniVersion": "1.0.0", "interfaces": []})";
  r = Run("ADD", Config("1.0.0", "", no_ips));  // IPs are only needed to enroll a pod
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, no_ips);
  env_.erase("CNI_ARGS");
  r = Run("CHECK", Config());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(agent.requests().empty());
}

TEST_F(PluginTest, DelWithTheAgentDownSucceedsSilently) {
  RunResult r = Run("DEL", Config());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
}

TEST_F(PluginTest, DelTwiceTellsTheAgentTwiceAndSucceeds) {
  FakeAgent agent(socket_);
  agent.Answer(Response::REMOVED);
  for (int i = 0; i < 2; ++i) {
    RunResult r = Run("DEL", Config());
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.out, "");
  }
  auto requests = agent.requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& received : requests) {
    EXPECT_EQ(received.request.command(), DEL);
    EXPECT_EQ(received.request.pod().container_id(), "3f2a9c0d11e4");
    EXPECT_EQ(received.request.pod().pod_name(), "cart-7d9f");
    EXPECT_TRUE(received.got_fd);
  }
}

TEST_F(PluginTest, DelToleratesNoNetnsNoPrevResultAndBadInput) {
  FakeAgent agent(socket_);
  agent.Answer(Response::FAILED, "never heard of it");
  env_.erase("CNI_NETNS");
  RunResult r = Run("DEL", Config("1.0.0", "", nullptr));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  env_["CNI_NETNS"] = "/var/run/netns/gone-already";
  r = Run("DEL", Config("0.1.0"));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  auto requests = agent.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_FALSE(requests[0].request.netns_fd_attached());
  EXPECT_FALSE(requests[0].got_fd);
  EXPECT_FALSE(requests[1].got_fd);
  EXPECT_EQ(requests[1].request.pod().ips_size(), 2);
  for (const char* bad : {"", "not json", "[1,2]"}) {
    r = Run("DEL", bad);
    EXPECT_EQ(r.exit_code, 0) << bad;
    EXPECT_EQ(r.out, "") << bad;
  }
}

TEST_F(PluginTest, CheckAsksTheAgent) {
  FakeAgent agent(socket_);
  RunResult r = Run("CHECK", Config());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "");
  agent.Answer(Response::NOT_MESHED);
  r = Run("CHECK", Config());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "");
  agent.Answer(Response::FAILED, "pod is labelled for the mesh but not enrolled");
  Json error = ExpectError(Run("CHECK", Config()), 100);
  EXPECT_EQ(error["msg"], "pod is labelled for the mesh but not enrolled");
  auto requests = agent.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].request.command(), CHECK);
  EXPECT_TRUE(requests[0].got_fd);
}

TEST_F(PluginTest, CheckWithTheAgentDownFollowsFailOpen) {
  ExpectError(Run("CHECK", Config()), 11);
  RunResult r = Run("CHECK", Config("1.0.0", R"("failOpen": true,)"));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
}

TEST_F(PluginTest, CheckIsNotAllowedBefore040) {
  FakeAgent agent(socket_);
  ExpectError(Run("CHECK", Config("0.3.1")), 1);
  EXPECT_TRUE(agent.requests().empty());
}

struct BadInput {
  const char* label;
  std::string command;
  std::string stdin_data;  // "{CONF}" → the valid config
  std::string unset_env;
  std::map<std::string, std::string> set_env;
  int code;
  std::string msg_has;
};

TEST_F(PluginTest, EveryMalformedInputGetsItsSpecErrorAndNothingIsEnrolled) {
  FakeAgent agent(socket_);
  std::string sock = socket_;
  std::string pre = R"({"cniVersion":"1.0.0","socketPath":")" + sock + "\",";
  const std::vector<BadInput> cases = {
      {"not json", "ADD", "this is not json", "", {}, 6, "decode"},
      {"empty stdin", "ADD", "", "", {}, 6, "decode"},
      {"array", "ADD", "[1, 2]", "", {}, 6, "not a JSON object"},
      {"truncated", "ADD", pre + R"("prevResult": {"ips": [)", "", {}, 6, "decode"},
      {"no cniVersion",
       "ADD",
       R"({"socketPath":")" + sock + R"(","prevResult":{}})",
       "",
       {},
       7,
       "cniVersion"},
      {"numeric cniVersion", "ADD", R"({"cniVersion":1,"prevResult":{}})", "", {}, 7, "cniVersion"},
      {"cniVersion 0.1.0", "ADD", "{CONF:0.1.0}", "", {}, 1, "incompatible"},
      {"cniVersion 2.0.0", "CHECK", "{CONF:2.0.0}", "", {}, 1, "incompatible"},
      {"no prevResult",
       "ADD",
       pre + R"("name":"n"})",
       "",
       {},
       7,
       "meshlet-cni must be chained after a primary plugin: no prevResult"},
      {"no prevResult on CHECK", "CHECK", pre + R"("name":"n"})", "", {}, 7, "no prevResult"},
      {"prevResult not object", "ADD", pre + R"("prevResult":[1]})", "", {}, 7, "prevResult"},
      {"prevResult without ips",
       "ADD",
       pre + R"("prevResult":{"cniVersion":"1.0.0"}})",
       "",
       {},
       7,
       "no IPs"},
      {"prevResult empty ips", "ADD", pre + R"("prevResult":{"ips":[]}})", "", {}, 7, "no IPs"},
      {"ips without address",
       "ADD",
       pre + R"("prevResult":{"ips":[{"gateway":"1.2.3.4"}]}})",
       "",
       {},
       7,
       "address"},
      {"bad address",
       "ADD",
       pre + R"("prevResult":{"ips":[{"address":"300.1.2.3/24"}]}})",
       "",
       {},
       7,
       "invalid address"},
      {"failOpen not bool",
       "ADD",
       pre + R"("failOpen":"yes","prevResult":{}})",
       "",
       {},
       7,
       "failOpen"},
      {"timeoutMs negative",
       "ADD",
       pre + R"("timeoutMs":-5,"prevResult":{}})",
       "",
       {},
       7,
       "timeoutMs"},
      {"socketPath empty",
       "ADD",
       R"({"cniVersion":"1.0.0","socketPath":""})",
       "",
       {},
       7,
       "socketPath"},
      {"no CNI_COMMAND", "", "{CONF}", "CNI_COMMAND", {}, 4, "CNI_COMMAND"},
      {"unknown command", "RESTART", "{CONF}", "", {}, 4, "unknown CNI_COMMAND"},
      {"lowercase command", "add", "{CONF}", "", {}, 4, "unknown CNI_COMMAND"},
      {"no CNI_CONTAINERID", "ADD", "{CONF}", "CNI_CONTAINERID", {}, 4, "CNI_CONTAINERID"},
      {"no CNI_NETNS", "ADD", "{CONF}", "CNI_NETNS", {}, 4, "CNI_NETNS"},
      {"no CNI_IFNAME", "ADD", "{CONF}", "CNI_IFNAME", {}, 4, "CNI_IFNAME"},
      {"no CNI_PATH", "ADD", "{CONF}", "CNI_PATH", {}, 4, "CNI_PATH"},
      {"no CNI_NETNS on CHECK", "CHECK", "{CONF}", "CNI_NETNS", {}, 4, "CNI_NETNS"},
      {"netns missing",
       "ADD",
       "{CONF}",
       "",
       {{"CNI_NETNS", "/var/run/netns/nope"}},
       4,
       "cannot open CNI_NETNS"},
      {"bad CNI_ARGS",
       "ADD",
       "{CONF}",
       "",
       {{"CNI_ARGS", "K8S_POD_NAME=a;garbage"}},
       4,
       "CNI_ARGS"},
  };
  const std::map<std::string, std::string> base_env = env_;
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.label);
    env_ = base_env;
    for (const auto& [k, v] : c.set_env) env_[k] = v;
    std::string stdin_data = c.stdin_data;
    if (stdin_data == "{CONF}") stdin_data = Config();
    if (stdin_data.rfind("{CONF:", 0) == 0) stdin_data = Config(stdin_data.substr(6, 5));
    if (!c.unset_env.empty()) env_.erase(c.unset_env);
    RunResult r = c.command.empty() ? RunBinary(CNI_PLUGIN_BIN, {}, env_, stdin_data)
                                    : Run(c.command, stdin_data);
    if (c.command.empty()) {
      EXPECT_TRUE(r.exited);
    }
    Json error = ExpectError(r, c.code);
    if (error.is_object()) {
      EXPECT_NE(error["msg"].get<std::string>().find(c.msg_has), std::string::npos) << error;
    }
  }
  EXPECT_TRUE(agent.requests().empty()) << "a malformed request reached the agent";
}

}  // namespace
}  // namespace meshlet::cni
