// End-to-end: pods in network namespaces, the real meshletd and meshlet binaries, real
// connections, a real Prometheus scrape checked by promtool.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/lib/e2e_util.h"
#include "tests/lib/sandbox.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace meshlet {
namespace {

using testing::Sandbox;
using testing::TestPod;

using testing::count;
using testing::run;
using testing::waitFor;
using testing::writeFile;

std::string podYaml(const TestPod& p, const std::string& app, bool ready) {
  testing::PodYaml y;
  y.ns = "shop";
  y.labels = "{app: " + app + "}";
  y.service_account = app;
  y.container_port = "http";
  y.ready = ready;
  return testing::podYaml(p, y);
}

const char* kServices = R"(apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio.io/dataplane-mode: meshlet}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.19.0.10
  selector: {app: web}
  ports: [{name: tcp, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: shop}
spec:
  clusterIP: 198.19.0.30
  selector: {app: nothing-matches}
  ports: [{name: tcp, port: 80, targetPort: 8080}]
)";

class AgentE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reason_ = testing::kernelTestsUnavailable();
    if (reason_.empty() && run("command -v promtool").code != 0) reason_ = "promtool missing";
    if (!reason_.empty()) return;
    sb_ = new Sandbox();
    sb_->addPod("client");
    sb_->addPod("web-1");
    sb_->addPod("web-2");
    for (const char* n : {"web-1", "web-2"}) {
      std::string name = n;
      sb_->spawnInPod(sb_->pod(name), [name] { return testing::serveTcp(AF_INET, 8080, name); });
    }
    dir_ = "/tmp/meshlet-test-e2e-" + sb_->id();
    fs::create_directories(dir_ + "/config");
    writeBaseConfig();
    // The built-in CA, made the way a user makes it.
    auto ca = run(std::string(MESHLET_CLI_BIN) + " ca init --dir " + dir_ + "/ca");
    if (ca.code != 0) ADD_FAILURE() << "meshlet ca init failed: " << ca.out;
  }
  static void TearDownTestSuite() {
    stopAgent();
    if (sb_) run(std::string(MESHLETD_BIN) + " --uninstall --bpffs " + sb_->bpffs());
    delete sb_;
    sb_ = nullptr;
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!reason_.empty()) GTEST_SKIP() << "end-to-end tests cannot run here: " << reason_;
    if (agent_pid_ <= 0) startAgent();
    ASSERT_GT(agent_pid_, 0);
  }

  static void writeBaseConfig(bool web2_ready = true) {
    writeFile(dir_ + "/config/00-services.yaml", kServices);
    writeFile(dir_ + "/config/10-pods.yaml", podYaml(sb_->pod("client"), "client", true) + "---\n" +
                                                 podYaml(sb_->pod("web-1"), "web", true) + "---\n" +
                                                 podYaml(sb_->pod("web-2"), "web", web2_ready));
  }
  static std::string sock() { return dir_ + "/admin.sock"; }
  static std::string cli(const std::string& args) {
    return std::string(MESHLET_CLI_BIN) + " --admin-socket " + sock() + " --bpffs " + sb_->bpffs() +
           " " + args;
  }
  static Json jsonRows(const std::string& args) {
    auto r = run(cli(args));
    auto j = Json::parse(r.out, nullptr, false);
    return r.code == 0 && j.is_array() ? j : Json::array();
  }
  static Json status() {
    auto r = run(cli("status -o json"));
    if (r.code != 0) return Json::object();
    auto j = Json::parse(r.out, nullptr, false);
    return j.is_array() && !j.empty() && j[0].is_object() ? j[0] : Json::object();
  }
  static void startAgent() {
    agent_pid_ = testing::spawnAgent(MESHLETD_BIN, dir_, sb_->cgroup(), sb_->bpffs(),
                                     {"--svid-ttl", "10m"});
    bool up = waitFor([] { return status().value("generation", 0) >= 1; }, 10000);
    if (!up) {
      ADD_FAILURE() << "agent did not come up; log:\n" << run("cat " + dir_ + "/meshletd.log").out;
    }
  }
  static void stopAgent() { testing::stopAgent(agent_pid_); }
  // The backend names that answered `n` connections to the service from the client pod.
  static std::string connectMany(const std::string& ip, int n) {
    return sb_->runInPod(sb_->pod("client"), [ip, n] {
      std::string s;
      for (int i = 0; i < n; ++i) s += testing::tcpConnect(ip, 80).greeting + " ";
      return s;
    });
  }

  static inline Sandbox* sb_ = nullptr;
  static inline std::string dir_;
  static inline std::string reason_;
  static inline pid_t agent_pid_ = -1;
};

// Every enrolled pod of the node gets a certificate for its service account's
// SPIFFE id, from the CA `meshlet ca init` wrote; `meshlet certs` and `meshlet
// status` show it.
TEST_F(AgentE2E, IssuesWorkloadCertificatesFromTheBuiltInCa) {
  Json certs;
  ASSERT_TRUE(waitFor(
      [&] {
        certs = jsonRows("certs -o json");
        if (certs.size() != 3) return false;
        for (const auto& c : certs) {
          if (c["state"] != "valid") return false;
        }
        return true;
      },
      5000))
      << certs.dump(2);
  std::map<std::string, std::string> identity;
  std::map<std::string, std::string> serial;
  for (const auto& c : certs) {
    identity[c["workload"]] = c["identity"];
    serial[c["identity"]] = c["serial"];
    EXPECT_EQ(c["issuer"], "CN=meshlet root CA,O=cluster.local");
    EXPECT_NE(c["trust_chain"].get<std::string>().find("meshlet root CA"), std::string::npos);
    EXPECT_FALSE(c["serial"].get<std::string>().empty());
  }
  EXPECT_EQ(identity[sb_->pod("client").name], "spiffe://cluster.local/ns/shop/sa/client");
  EXPECT_EQ(identity[sb_->pod("web-1").name], "spiffe://cluster.local/ns/shop/sa/web");
  EXPECT_EQ(identity[sb_->pod("web-2").name], "spiffe://cluster.local/ns/shop/sa/web");
  // Two identities, so two certificates: pods of one service account share
  // theirs.
  Json st = status();
  EXPECT_EQ(st.value("workload_certificates", 0), 2) << st.dump(2);
  EXPECT_EQ(st.value("trust_domain", ""), "cluster.local");
  EXPECT_EQ(st.value("ca", ""), "loaded from " + dir_ + "/ca");
  EXPECT_EQ(serial.size(), 2u);
}

// A rotated root (a new CA written over the old one) renews every certificate
// within seconds; a broken CA file keeps the last good CA and the certificates.
TEST_F(AgentE2E, CaRotationRenewsCertificatesAndABrokenCaKeepsTheLastGood) {
  auto serials = [] {
    std::set<std::string> s;
    for (const auto& c : jsonRows("certs -o json")) s.insert(c.value("serial", ""));
    return s;
  };
  ASSERT_TRUE(waitFor([&] { return serials().size() == 2 && !serials().count(""); }, 5000));
  auto before = serials();
  std::string key = run("cat " + dir_ + "/ca/ca-key.pem").out;
  auto r = run(std::string(MESHLET_CLI_BIN) + " ca init --force --dir " + dir_ + "/ca");
  ASSERT_EQ(r.code, 0) << r.out;
  ASSERT_TRUE(waitFor(
      [&] {
        auto now = serials();
        if (now.size() != 2) return false;
        for (const auto& s : now) {
          if (before.count(s) || s.empty()) return false;
        }
        return true;
      },
      5000))
      << run(cli("certs")).out;

  auto renewed = serials();
  writeFile(dir_ + "/ca/ca-key.pem", "not a key\n");
  ASSERT_TRUE(waitFor(
      [] {
        return status().value("ca", "").find("reload failed, the last good CA stays") !=
               std::string::npos;
      },
      5000))
      << status().dump(2);
  EXPECT_EQ(serials(), renewed);
  EXPECT_NE(run("cat " + dir_ + "/meshletd.log").out.find("CA reload failed"), std::string::npos);
}

// Istio security policies in the config directory are read and shown with the local workloads
// each applies to (enforcement comes with the HBONE path).
TEST_F(AgentE2E, PoliciesAreShownWithTheWorkloadsTheyApplyTo) {
  writeFile(dir_ + "/config/20-policies.yaml", R"(apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-from-client, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/client"]}}]
    to: [{operation: {ports: ["8080"]}}]
)");
  Json rows;
  ASSERT_TRUE(waitFor(
      [&] {
        rows = jsonRows("policies -o json");
        return rows.size() == 2;
      },
      5000))
      << rows.dump(2) << run("tail -5 " + dir_ + "/meshletd.log").out;
  std::map<std::string, Json> by_name;
  for (const auto& r : rows) by_name[r["name"]] = r;
  EXPECT_EQ(by_name["strict"]["action_or_mode"], "STRICT");
  EXPECT_EQ(by_name["strict"]["scope"], "namespace");
  EXPECT_EQ(count(by_name["strict"]["applies_to"].get<std::string>(), "shop/"), 3);
  const Json& authz = by_name["web-from-client"];
  EXPECT_EQ(authz["kind"], "AuthorizationPolicy");
  EXPECT_EQ(authz["scope"], "workload");
  EXPECT_EQ(authz["selector"], "app=web");
  std::string applies = authz["applies_to"];
  EXPECT_NE(applies.find(sb_->pod("web-1").name), std::string::npos) << applies;
  EXPECT_NE(applies.find(sb_->pod("web-2").name), std::string::npos) << applies;
  EXPECT_EQ(applies.find(sb_->pod("client").name), std::string::npos) << applies;
  fs::remove(dir_ + "/config/20-policies.yaml");
  ASSERT_TRUE(waitFor([&] { return jsonRows("policies -o json").empty(); }, 5000));
}

TEST_F(AgentE2E, BalancesServiceTrafficAcrossReadyPods) {
  std::string out = connectMany("198.19.0.10", 60);
  EXPECT_EQ(count(out, "web-1") + count(out, "web-2"), 60) << out;
  EXPECT_GE(count(out, "web-1"), 10) << out;
  EXPECT_GE(count(out, "web-2"), 10) << out;

  auto services = Json::parse(run(cli("services -o json")).out, nullptr, false);
  ASSERT_TRUE(services.is_array());
  bool found = false;
  for (const auto& s : services) {
    if (s["name"] == "web") {
      found = true;
      EXPECT_EQ(s["cluster_ip"], "198.19.0.10");
      EXPECT_EQ(s["ready"], 2);
    }
  }
  EXPECT_TRUE(found) << services.dump();
  auto eps = Json::parse(run(cli("endpoints shop/web -o json")).out, nullptr, false);
  ASSERT_TRUE(eps.is_array());
  EXPECT_EQ(eps.size(), 2u) << eps.dump();
}

TEST_F(AgentE2E, ServiceWithoutReadyEndpointRefusesAtOnce) {
  auto r = testing::decode(sb_->runInPod(
      sb_->pod("client"), [] { return testing::encode(testing::tcpConnect("198.19.0.30", 80)); }));
  EXPECT_EQ(r.err, ECONNREFUSED);
  EXPECT_LT(r.connect_ms, 100);
}

TEST_F(AgentE2E, OpenConnectionIsShownSplicedWithItsService) {
  // Hold a connection open in the client pod while the CLI looks at it.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t holder = sb_->spawnInPod(sb_->pod("client"), [fds] {
    close(fds[1]);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    inet_pton(AF_INET, "198.19.0.10", &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return 1;
    char buf[64];
    if (write(s, "hello", 5) != 5 || read(s, buf, sizeof(buf)) <= 0) return 2;
    char c;
    if (read(fds[0], &c, 1) < 0) return 3;  // wait until the test is done looking
    close(s);
    return 0;
  });
  close(fds[0]);
  Json conns;
  bool seen = waitFor(
      [&] {
        conns = Json::parse(run(cli("connections -o json")).out, nullptr, false);
        if (!conns.is_array()) return false;
        for (const auto& c : conns) {
          if (c["direction"] == "outbound" && c["service"] == "shop/web" && c["state"] == "open")
            return true;
        }
        return false;
      },
      3000);
  ASSERT_TRUE(seen) << conns.dump(2);
  for (const auto& c : conns) {
    if (c["direction"] == "outbound" && c["service"] == "shop/web" && c["state"] == "open") {
      EXPECT_EQ(c["path"], "spliced");
      EXPECT_EQ(c["service_address"], "198.19.0.10:80");
      EXPECT_EQ(c["workload"], "shop/client");
      EXPECT_GE(c["bytes_sent"].get<int64_t>(), 5);
    }
  }
  // The table form has the same columns, for people.
  auto table = run(cli("connections"));
  EXPECT_NE(table.out.find("SERVICE ADDRESS"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("spliced"), std::string::npos) << table.out;
  close(fds[1]);
  int st;
  waitpid(holder, &st, 0);
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST_F(AgentE2E, ConfigChangeTakesEffectWithinOneSecond) {
  writeBaseConfig(/*web2_ready=*/false);
  auto t0 = std::chrono::steady_clock::now();
  bool only_web1 = waitFor(
      [] {
        std::string out = connectMany("198.19.0.10", 10);
        return count(out, "web-1") == 10;
      },
      3000);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(only_web1);
  EXPECT_LT(ms, 1000) << "took " << ms << " ms";
  writeBaseConfig(true);
  EXPECT_TRUE(waitFor([] { return count(connectMany("198.19.0.10", 20), "web-2") > 0; }, 3000));
}

// An endpoint that stops being ready takes no new connections, but the connections it already
// has keep working (the rewrite happened at their connect()).
TEST_F(AgentE2E, EndpointLeavingKeepsItsExistingConnections) {
  int to_child[2], from_child[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(from_child), 0);
  // In the client pod: connect until web-2 answers, report, then echo once more on command.
  pid_t holder = sb_->spawnInPod(sb_->pod("client"), [to_child, from_child] {
    close(to_child[1]);
    close(from_child[0]);
    for (int attempt = 0; attempt < 50; ++attempt) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(80);
      inet_pton(AF_INET, "198.19.0.10", &a.sin_addr);
      int s = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return 1;
      char greet[5] = {};
      if (read(s, greet, 5) != 5) return 2;
      if (std::string(greet, 5) != "web-2") {
        close(s);
        continue;
      }
      if (write(from_child[1], "held", 4) != 4) return 3;
      char c;
      if (read(to_child[0], &c, 1) != 1) return 4;  // the endpoint has left by now
      char buf[16] = {};
      if (write(s, "still-here", 10) != 10) return 5;
      ssize_t n = read(s, buf, sizeof(buf));
      std::string reply(buf, n > 0 ? n : 0);
      if (write(from_child[1], reply.data(), reply.size()) < 0) return 6;
      close(s);
      return 0;
    }
    return 7;
  });
  close(to_child[0]);
  close(from_child[1]);
  char held[4];
  ASSERT_EQ(read(from_child[0], held, 4), 4);
  uint64_t gen = status().value("generation", 0);
  writeBaseConfig(/*web2_ready=*/false);
  ASSERT_TRUE(waitFor([&] { return status().value("generation", 0u) > gen; }, 3000));
  std::string out = connectMany("198.19.0.10", 10);
  EXPECT_EQ(count(out, "web-1"), 10) << out;  // new connections avoid the leaving endpoint
  ASSERT_EQ(write(to_child[1], "x", 1), 1);
  char buf[32] = {};
  ssize_t n = read(from_child[0], buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "still-here");  // the old one still echoes
  int st = 0;
  waitpid(holder, &st, 0);
  EXPECT_EQ(WEXITSTATUS(st), 0);
  close(to_child[1]);
  close(from_child[0]);
  writeBaseConfig(true);
}

TEST_F(AgentE2E, BadConfigIsRejectedWholeAndTheLastGoodStateStays) {
  uint64_t gen = status().value("generation", 0);
  // One good change and one bad file in the same directory: nothing of it may apply.
  writeFile(dir_ + "/config/20-new.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: new, namespace: shop}\n"
            "spec: {clusterIP: 198.19.0.40, ports: [{port: 80}]}\n---\n"
            "apiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: shop}\n"
            "spec: {clusterIP: 198.19.0.41, ports: [{port: 70000}]}\n");
  Json st;
  ASSERT_TRUE(waitFor([&] { return (st = status()).value("config_ok", true) == false; }, 3000));
  std::string err = st.value("last_error", "");
  EXPECT_NE(err.find("20-new.yaml"), std::string::npos) << err;
  EXPECT_NE(err.find("document 2"), std::string::npos) << err;
  EXPECT_NE(err.find("Service shop/broken"), std::string::npos) << err;
  EXPECT_NE(err.find("spec.ports[0].port"), std::string::npos) << err;
  EXPECT_EQ(st.value("generation", 0u), gen);
  auto services = run(cli("services -o json")).out;
  EXPECT_EQ(services.find("198.19.0.40"), std::string::npos) << "half-applied: " << services;
  std::string out = connectMany("198.19.0.10", 10);
  EXPECT_EQ(count(out, "web-1") + count(out, "web-2"), 10) << out;
  // The status table says so too.
  auto table = run(cli("status"));
  EXPECT_NE(table.out.find("70000 is out of range"), std::string::npos) << table.out;
  fs::remove(dir_ + "/config/20-new.yaml");
  ASSERT_TRUE(waitFor([] { return status().value("config_ok", false); }, 3000));
}

// The sum of the samples of `name` whose labels include every one of `labels` (`k="v"`).
double metricSum(const std::string& body, const std::string& name,
                 const std::vector<std::string>& labels) {
  double sum = 0;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0) continue;
    bool all = std::all_of(labels.begin(), labels.end(),
                           [&](const std::string& l) { return line.find(l) != std::string::npos; });
    if (all) sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

TEST_F(AgentE2E, MetricsPassPromtoolAndCountSplicedConnections) {
  int port = status().value("metrics_port", 0);
  ASSERT_GT(port, 0);
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  // Connections from the client to web, as the client's side reports them.
  const std::vector<std::string> to_web = {"reporter=\"source\"", "source_workload=\"client\"",
                                           "destination_service_name=\"web\""};
  auto counts = [&](const std::string& body) {
    return std::make_pair(metricSum(body, "istio_tcp_connections_opened_total", to_web),
                          metricSum(body, "istio_tcp_connections_closed_total", to_web));
  };
  auto before = counts(run("curl -s " + url).out);
  connectMany("198.19.0.10", 5);
  std::string body;
  // Each connection counted once, opened and closed, whatever series it shares with others.
  ASSERT_TRUE(waitFor(
      [&] {
        body = run("curl -s " + url).out;
        return counts(body).second >= before.second + 5;
      },
      4000))
      << body;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // one more collection
  body = run("curl -s " + url).out;
  auto after = counts(body);
  EXPECT_EQ(after.first - before.first, 5) << body;
  EXPECT_EQ(after.second - before.second, 5) << body;
  auto check = run("curl -s " + url + " | promtool check metrics");
  EXPECT_EQ(check.code, 0) << check.out;
  for (const char* name :
       {"istio_tcp_connections_opened_total", "istio_tcp_sent_bytes_total",
        "istio_tcp_received_bytes_total", "meshlet_config_generation",
        "meshlet_spliced_connections_total", "meshlet_map_entries", "meshlet_map_capacity",
        "meshlet_config_rejected_total", "meshlet_config_last_sync_duration_seconds"}) {
    EXPECT_NE(body.find(name), std::string::npos) << name;
  }
  EXPECT_NE(body.find("reporter=\"source\""), std::string::npos);
  EXPECT_NE(body.find("reporter=\"destination\""), std::string::npos);
  EXPECT_NE(body.find("destination_service=\"web.shop.svc.cluster.local\""), std::string::npos);
  EXPECT_NE(body.find("source_workload=\"client\""), std::string::npos);
}

// The agent restarts in the middle of a long transfer: the transfer completes intact, new
// connections are balanced while no agent runs, and the new agent adopts the datapath.
TEST_F(AgentE2E, RestartDuringLongTransferLosesNothing) {
  std::string result_file = dir_ + "/transfer.result";
  fs::remove(result_file);
  pid_t xfer = sb_->spawnInPod(sb_->pod("client"), [result_file] {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    inet_pton(AF_INET, "198.19.0.10", &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    std::string verdict;
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      verdict = "connect failed";
    } else {
      char greet[5];
      if (read(s, greet, 5) != 5) verdict = "no greeting";
      const size_t chunk = 256 << 10, chunks = 160;  // 40 MiB over ~3 s
      std::thread writer([&] {
        std::string buf(chunk, 0);
        for (size_t c = 0; c < chunks; ++c) {
          for (size_t i = 0; i < chunk; ++i) buf[i] = static_cast<char>((c * 7 + i * 13) & 0xff);
          size_t off = 0;
          while (off < chunk) {
            ssize_t n = write(s, buf.data() + off, chunk - off);
            if (n <= 0) return;
            off += n;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(18));
        }
        shutdown(s, SHUT_WR);
      });
      size_t got = 0;
      bool ok = true;
      char buf[65536];
      ssize_t n;
      while ((n = read(s, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; ++i, ++got) {
          size_t c = got / chunk, off = got % chunk;
          if (buf[i] != static_cast<char>((c * 7 + off * 13) & 0xff)) ok = false;
        }
      }
      writer.join();
      verdict = ok && got == chunk * chunks ? "intact" : "broken after " + std::to_string(got);
    }
    std::ofstream(result_file) << verdict;
    return 0;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto ids_before = run(cli("services -o json")).out;
  stopAgent();
  // No agent: new connections are still balanced by the pinned programs and maps.
  std::string out = connectMany("198.19.0.10", 30);
  EXPECT_EQ(count(out, "web-1") + count(out, "web-2"), 30) << out;
  EXPECT_GT(count(out, "web-1"), 0);
  EXPECT_GT(count(out, "web-2"), 0);
  auto down = run(cli("status"));
  EXPECT_NE(down.code, 0);
  EXPECT_NE(down.out.find("cannot reach meshletd"), std::string::npos) << down.out;
  EXPECT_EQ(std::count(down.out.begin(), down.out.end(), '\n'), 1) << down.out;
  auto maps = run(cli("bpf maps -o json"));
  EXPECT_EQ(maps.code, 0) << maps.out;
  EXPECT_NE(maps.out.find("meshlet_svc_v1"), std::string::npos);

  startAgent();
  EXPECT_TRUE(status().value("adopted", false));
  EXPECT_EQ(run(cli("services -o json")).out, ids_before) << "service ids changed on restart";
  int st = 0;
  waitpid(xfer, &st, 0);
  std::ifstream f(result_file);
  std::string verdict((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(verdict, "intact");
}

TEST_F(AgentE2E, UninstallRemovesEverything) {
  stopAgent();
  auto r = run(std::string(MESHLETD_BIN) + " --uninstall --bpffs " + sb_->bpffs());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(fs::exists(sb_->bpffs()));
  auto attached = run("bpftool cgroup show " + sb_->cgroup());
  EXPECT_EQ(attached.out.find("meshlet"), std::string::npos) << attached.out;
  // The service address is no longer translated.
  auto c = testing::decode(sb_->runInPod(sb_->pod("client"), [] {
    return testing::encode(testing::tcpConnect("198.19.0.10", 80, 300));
  }));
  EXPECT_NE(c.err, 0);
  startAgent();  // leave the suite as we found it
}

}  // namespace
}  // namespace meshlet
