// End-to-end across two nodes on one machine: two node network namespaces joined by a veth
// pair, each with its own bridge, pods, cgroup subtree, pin directory and meshletd. A pod on
// node A talks to a pod on node B; the kernel on A steers the connection into A's agent, which
// carries it over HBONE (mTLS + HTTP/2 CONNECT) to B's agent, which checks policy and delivers.
// Real clients: our sockets, tcpdump on the link between the nodes, openssl s_client.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/lib/e2e_util.h"
#include "tests/lib/http_server.h"
#include "tests/lib/sandbox.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace meshlet {
namespace {

using testing::run;
using testing::Sandbox;
using testing::TestPod;
using testing::waitFor;
using testing::writeFile;

constexpr const char* kServiceIp = "198.19.0.20";
constexpr const char* kHttpServiceIp = "198.19.0.21";  // the same pod, HTTP on 8081: L7 path
constexpr const char* kH2ServiceIp = "198.19.0.22";    // the same pod, h2c (nghttpd) on 8082

std::string podYaml(const TestPod& p, const std::string& app, const std::string& node) {
  testing::PodYaml y;
  y.ns = "shop";
  y.labels = "{app: " + app + "}";
  y.node = node;
  y.service_account = app;
  y.container_port = "tcp";
  return testing::podYaml(p, y);
}

// What the client saw: the greeting, the echo of what it sent, and the errno of the first
// failure ("" when the exchange completed).
struct Exchange {
  std::string greeting, echo, peer, error;
};

std::string readSome(int fd, size_t want, int timeout_ms, std::string* error) {
  std::string got;
  while (got.size() < want) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) {
      *error = "timeout";
      break;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, std::min(sizeof(buf), want - got.size()));
    if (n < 0) {
      *error = strerror(errno);
      break;
    }
    if (n == 0) {
      *error = "closed";
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Runs in the client pod: connect, read the greeting, send `payload`, read it back.
std::string exchange(const std::string& ip, int port, const std::string& greeting,
                     const std::string& payload) {
  Json out;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  std::string error;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    error = std::string("connect: ") + strerror(errno);
  } else {
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len);
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &peer.sin_addr, buf, sizeof(buf));
    out["peer"] = std::string(buf) + ":" + std::to_string(ntohs(peer.sin_port));
    out["greeting"] = readSome(fd, greeting.size(), 3000, &error);
    if (error.empty() && write(fd, payload.data(), payload.size()) < 0) error = strerror(errno);
    if (error.empty()) out["echo"] = readSome(fd, payload.size(), 3000, &error);
  }
  close(fd);
  out["error"] = error;
  return out.dump();
}

// Runs in the client pod: streams `chunks` x 64 KiB of a pattern to the echo server, one chunk
// every `gap_ms`, reading the echo at the same time; "ok <bytes>" when every byte came back in
// order, else what went wrong.
std::string longTransfer(const std::string& ip, int port, int chunks, int gap_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    return std::string("connect: ") + strerror(errno);
  }
  std::string error;
  std::string greeting = readSome(fd, 3, 3000, &error);
  if (greeting != "db\n") return "no greeting: " + error;
  const size_t total = static_cast<size_t>(chunks) * 65536;
  // A pattern with a period of 65537 bytes: chunks differ, and both sides work from one
  // precomputed buffer, so the app writes and checks at memory speed (as fast as iperf3).
  constexpr size_t kPeriod = 65537;
  std::string pattern(kPeriod + 65536, '\0');
  for (size_t i = 0; i < pattern.size(); ++i) {
    size_t k = i % kPeriod;
    pattern[i] = static_cast<char>((k * 131) ^ (k >> 11));
  }
  std::string write_error;
  std::thread writer([&] {
    for (int c = 0; c < chunks; ++c) {
      const char* chunk = pattern.data() + (static_cast<size_t>(c) * 65536) % kPeriod;
      for (size_t off = 0; off < 65536;) {
        ssize_t w = send(fd, chunk + off, 65536 - off, MSG_NOSIGNAL);
        if (w <= 0) {
          write_error = std::string("send: ") + strerror(errno);
          return;
        }
        off += static_cast<size_t>(w);
      }
      if (gap_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
    }
  });
  size_t got = 0;
  std::string result;
  char buf[65536];
  while (got < total) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) {
      result = "stalled after " + std::to_string(got) + " bytes";
      break;
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
      result = (n == 0 ? std::string("closed") : std::string(strerror(errno))) + " after " +
               std::to_string(got) + " bytes";
      break;
    }
    if (std::memcmp(buf, pattern.data() + got % kPeriod, static_cast<size_t>(n)) != 0) {
      result = "corrupt in the " + std::to_string(n) + " bytes after byte " + std::to_string(got);
      break;
    }
    got += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_RDWR);
  writer.join();
  close(fd);
  if (!write_error.empty()) return write_error + " (" + result + ")";
  return result.empty() ? "ok " + std::to_string(got) : result;
}

Exchange decodeExchange(const std::string& s) {
  Json j = Json::parse(s, nullptr, false);
  Exchange e;
  if (!j.is_object()) {
    e.error = "bad result: " + s;
    return e;
  }
  e.greeting = j.value("greeting", "");
  e.echo = j.value("echo", "");
  e.peer = j.value("peer", "");
  e.error = j.value("error", "");
  return e;
}

class CrossNode : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reason_ = testing::kernelTestsUnavailable();
    if (reason_.empty() && run("command -v tcpdump").code != 0) reason_ = "tcpdump is missing";
    if (reason_.empty() && run("command -v openssl").code != 0) reason_ = "openssl is missing";
    if (!reason_.empty()) return;
    a_ = new Sandbox(1);
    b_ = new Sandbox(2);
    link_ = testing::joinNodes(*a_, *b_);
    a_->addPod("client");
    a_->addPod("outsider");  // not in the mesh
    a_->addPod("neighbor");  // in the mesh, on the client's node
    b_->addPod("server");
    b_->spawnInPod(b_->pod("server"), [] { return testing::serveTcp(AF_INET, 8080, "db\n"); });
    b_->spawnInPod(b_->pod("server"), [] { return testing::serveHttp(8081, "server"); });
    a_->spawnInPod(a_->pod("neighbor"), [] { return testing::serveTcp(AF_INET, 8080, "db\n"); });

    dir_ = "/tmp/meshlet-test-xnode-" + a_->id();
    for (const char* d : {"/a/config", "/b/config", "/h2docs"}) fs::create_directories(dir_ + d);
    if (run("command -v nghttpd").code == 0) {
      writeFile(dir_ + "/h2docs/who", "pod=server h2\n");
      b_->execInPod(b_->pod("server"), {"nghttpd", "--no-tls", "-d", dir_ + "/h2docs", "8082"},
                    dir_ + "/nghttpd.log");
    }
    auto ca = run(std::string(MESHLET_CLI_BIN) + " ca init --dir " + dir_ + "/ca");
    if (ca.code != 0) ADD_FAILURE() << "meshlet ca init failed: " << ca.out;
    publishCa("a", 1);
    publishCa("b", 1);
    writeConfig("");
    pid_a_ =
        testing::spawnAgent(MESHLETD_BIN, dir_ + "/a", a_->cgroup(), a_->bpffs(), agentArgs("a"));
    pid_b_ =
        testing::spawnAgent(MESHLETD_BIN, dir_ + "/b", b_->cgroup(), b_->bpffs(), agentArgs("b"));
    for (const char* n : {"a", "b"}) {
      std::string node = n;
      bool up = waitFor([&] { return nodeReady(node); }, 15000);
      if (!up) {
        ADD_FAILURE() << "agent " << node << " did not issue its certificate; log:\n"
                      << run("cat " + dir_ + "/" + node + "/meshletd.log").out;
      }
    }
  }
  static void TearDownTestSuite() {
    testing::stopAgent(pid_a_);
    testing::stopAgent(pid_b_);
    for (Sandbox* s : {a_, b_}) {
      if (s) run(std::string(MESHLETD_BIN) + " --uninstall --bpffs " + s->bpffs());
    }
    delete a_;
    delete b_;
    a_ = b_ = nullptr;
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!reason_.empty()) GTEST_SKIP() << "cross-node tests cannot run here: " << reason_;
    ASSERT_GT(pid_a_, 0);
    ASSERT_GT(pid_b_, 0);
  }

  // The same cluster state for both agents (each reads its own copy, as each node would read
  // the API server), plus `extra` documents.
  static void writeConfig(const std::string& extra, bool with_server = true) {
    std::string yaml = std::string(R"(apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio.io/dataplane-mode: meshlet}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: )") + kServiceIp +
                       R"(
  selector: {app: db}
  ports: [{name: tcp, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: dbweb, namespace: shop}
spec:
  clusterIP: )" + kHttpServiceIp +
                       R"(
  selector: {app: db}
  ports: [{name: http, port: 80, targetPort: 8081}]
---
apiVersion: v1
kind: Service
metadata: {name: dbh2, namespace: shop}
spec:
  clusterIP: )" + kH2ServiceIp +
                       R"(
  selector: {app: db}
  ports: [{name: http2, port: 80, targetPort: 8082}]
---
)" + podYaml(a_->pod("client"), "client", "node-a") +
                       "---\n" + podYaml(a_->pod("neighbor"), "neighbor", "node-a") +
                       (with_server ? "---\n" + podYaml(b_->pod("server"), "db", "node-b") : "") +
                       extra;
    for (const char* n : {"/a", "/b"}) writeFile(dir_ + n + "/config/cluster.yaml", yaml);
  }
  static std::string cli(const std::string& node, const std::string& args) {
    return std::string(MESHLET_CLI_BIN) + " --admin-socket " + dir_ + "/" + node + "/admin.sock " +
           args;
  }
  // Certificates issued, and the mesh proxy serving every pod of the node (listeners open,
  // certificate loaded): until then a connection from the other node is refused.
  static bool nodeReady(const std::string& node) {
    size_t pods = node == "a" ? 2 : 1;
    return certsIssued(node) && status(node)["tunnels"].value("ready_pods", 0u) == pods;
  }
  static bool certsIssued(const std::string& node) {
    auto r = run(cli(node, "certs -o json"));
    auto j = Json::parse(r.out, nullptr, false);
    if (r.code != 0 || !j.is_array() || j.size() != (node == "a" ? 2u : 1u)) return false;
    for (const auto& c : j) {
      if (c.value("state", "") != "valid") return false;
    }
    return true;
  }
  // Each node reads its own copy of the cluster's CA directory (dir_/ca), as a kubelet-mounted
  // Secret: dir_/NODE/ca is a symlink, swapped atomically to a new copy. A replaced root keeps
  // signing for 3 s after an agent reads the change.
  static std::vector<std::string> agentArgs(const std::string& node) {
    return {"--node-name", "node-" + node, "--ca-dir", dir_ + "/" + node + "/ca",
            "--ca-rollover-delay", "3s"};
  }
  static void publishCa(const std::string& node, int version) {
    std::string base = dir_ + "/" + node;
    std::string copy = base + "/ca-v" + std::to_string(version);
    auto r = run("cp -a " + dir_ + "/ca " + copy + " && ln -sfn " + copy + " " + base +
                 "/ca.new && mv -T " + base + "/ca.new " + base + "/ca");
    if (r.code != 0) ADD_FAILURE() << "publishing the CA to node " << node << ": " << r.out;
  }

  static Exchange fromClient(const std::string& ip, int port, const std::string& payload) {
    return decodeExchange(a_->runInPod(
        a_->pod("client"), [ip, port, payload] { return exchange(ip, port, "db\n", payload); }));
  }
  static Json status(const std::string& node) {
    auto r = run(cli(node, "status -o json"));
    auto j = Json::parse(r.out, nullptr, false);
    return r.code == 0 && j.is_array() && !j.empty() ? j[0] : Json::object();
  }
  static std::string scrape(const std::string& node) {
    int port = status(node).value("metrics_port", 0);
    return run("curl -s http://127.0.0.1:" + std::to_string(port) + "/metrics").out;
  }
  // Tunnel rows, but for the L7 tests' pooled upstream connections (to port 8081, and the
  // HTTP/2 one to 8082), which stay open after them.
  static Json tunnelRows(const std::string& node) {
    auto r = run(cli(node, "connections -o json"));
    auto j = Json::parse(r.out, nullptr, false);
    Json rows = Json::array();
    if (r.code != 0 || !j.is_array()) return rows;
    for (const auto& row : j) {
      bool l7 = false;
      for (const char* f : {"local", "remote", "service_address"}) {
        std::string v = row.value(f, "");
        l7 |= v.size() > 5 &&
              (v.substr(v.size() - 5) == ":8081" || v.substr(v.size() - 5) == ":8082");
      }
      if (l7) continue;
      if (row.value("path", "") == "tunnel") rows.push_back(row);
    }
    return rows;
  }
  static Exchange fromOutsider(const std::string& payload) {
    std::string ip = b_->pod("server").ip4;
    return decodeExchange(a_->runInPod(
        a_->pod("outsider"), [ip, payload] { return exchange(ip, 8080, "db\n", payload); }));
  }
  static bool scrapeHas(const std::string& node, const std::string& metric,
                        const std::vector<std::string>& labels) {
    std::string m = scrape(node);
    for (size_t p = m.find(metric + "{"); p != std::string::npos; p = m.find(metric + "{", p + 1)) {
      std::string line = m.substr(p, m.find('\n', p) - p);
      bool all = true;
      for (const auto& l : labels) all &= line.find(l) != std::string::npos;
      if (all) return true;
    }
    return false;
  }
  static std::string logs() {
    return "agent a:\n" + run("tail -n 30 " + dir_ + "/a/meshletd.log").out + "agent b:\n" +
           run("tail -n 30 " + dir_ + "/b/meshletd.log").out;
  }

  static inline Sandbox* a_ = nullptr;
  static inline Sandbox* b_ = nullptr;
  static inline std::string link_;
  static inline std::string dir_;
  static inline std::string reason_;
  static inline pid_t pid_a_ = -1;
  static inline pid_t pid_b_ = -1;
};

// tcpdump on node A's end of the link between the nodes, started and stopped by PID.
class Capture {
 public:
  Capture(const std::string& netns, const std::string& ifname, const std::string& file)
      : file_(file), log_(file + ".log") {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execlp("ip", "ip", "netns", "exec", netns.c_str(), "tcpdump", "-U", "--immediate-mode", "-n",
             "-Z", "root", "-s", "0", "-i", ifname.c_str(), "-w", file.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    ready_ = waitFor([this] { return run("grep -q 'listening on' " + log_).code == 0; }, 5000);
  }
  ~Capture() { stop(); }
  bool ready() const { return ready_; }
  // Stops tcpdump (it flushes on SIGINT) and returns the capture's bytes.
  std::string stop() {
    if (pid_ > 0) {
      kill(pid_, SIGINT);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    std::ifstream f(file_, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  // Packets matching a tcpdump filter in the capture.
  int packets(const std::string& filter) const {
    auto r = run("tcpdump -n -r " + file_ + " '" + filter + "' 2>/dev/null | wc -l");
    return std::atoi(r.out.c_str());
  }

 private:
  pid_t pid_ = -1;
  std::string file_, log_;
  bool ready_ = false;
};

// The app on node A dials the service; the bytes reach the pod on node B and come back, the
// app sees the service address as its peer, and what crossed the wire between the nodes is
// TLS on port 15008: the marker the app sent is nowhere in the capture.
TEST_F(CrossNode, ServiceTrafficIsTunnelledAndEncryptedBetweenNodes) {
  Capture cap(a_->nodeNetns(), link_, dir_ + "/link.pcap");
  ASSERT_TRUE(cap.ready());
  const std::string marker = "MESHLET-CLEARTEXT-MARKER-" + a_->id() + "-0123456789";
  Exchange e = fromClient(kServiceIp, 80, marker);
  EXPECT_EQ(e.error, "") << logs();
  EXPECT_EQ(e.greeting, "db\n");
  EXPECT_EQ(e.echo, marker);
  EXPECT_EQ(e.peer, std::string(kServiceIp) + ":80");

  // Straight to the pod's IP: tunnelled too.
  Exchange direct = fromClient(b_->pod("server").ip4, 8080, marker + "-direct");
  EXPECT_EQ(direct.error, "") << logs();
  EXPECT_EQ(direct.echo, marker + "-direct");

  std::string pcap = cap.stop();
  EXPECT_GT(cap.packets("tcp port 15008"), 6) << "no HBONE traffic on the link; tcpdump said: "
                                              << run("cat " + dir_ + "/link.pcap.log").out;
  EXPECT_EQ(cap.packets("tcp port 8080"), 0) << "plaintext to the app crossed the link";
  EXPECT_EQ(pcap.find(marker), std::string::npos) << "the marker crossed the link in clear";
  EXPECT_EQ(pcap.find("db\n"), std::string::npos);
}

// A service on the L7 path whose pod is on the other node: the client's agent proxies each
// request and carries it over HBONE, so the request is answered and the link carries only TLS.
TEST_F(CrossNode, L7RequestsToAnotherNodeGoThroughTheTunnel) {
  Capture cap(a_->nodeNetns(), link_, dir_ + "/l7.pcap");
  ASSERT_TRUE(cap.ready());
  const std::string marker = "MESHLET-L7-MARKER-" + a_->id();
  std::string cmd = "curl -sS --max-time 5 -H 'x-marker: " + marker + "' 'http://" +
                    kHttpServiceIp + "/hello[1-5]'";
  std::string out = a_->runInPod(a_->pod("client"), [cmd] { return run(cmd).out; });
  EXPECT_EQ(testing::count(out, "pod=server"), 5) << out << logs();
  EXPECT_EQ(testing::count(out, "h:x-marker: " + marker), 5) << out;
  std::string pcap = cap.stop();
  EXPECT_GT(cap.packets("tcp port 15008"), 4) << run("cat " + dir_ + "/l7.pcap.log").out;
  EXPECT_EQ(cap.packets("tcp port 8081"), 0) << "plaintext HTTP crossed the link";
  EXPECT_EQ(pcap.find(marker), std::string::npos) << "the marker crossed the link in clear";
}

// HTTP/2 on the L7 path to a pod on the other node: the client's agent bridges each stream and
// opens its h2c upstream inside the HBONE link.
TEST_F(CrossNode, H2RequestsToAnotherNodeGoThroughTheTunnel) {
  if (run("command -v nghttpd").code != 0 || run("command -v nghttp").code != 0) {
    GTEST_SKIP() << "nghttp2-server/nghttp2-client missing (tools/install-deps.sh)";
  }
  Capture cap(a_->nodeNetns(), link_, dir_ + "/h2.pcap");
  ASSERT_TRUE(cap.ready());
  std::string url = std::string("http://") + kH2ServiceIp + "/who";
  std::string cmd = "nghttp " + url + " " + url + "?2 " + url + "?3 2>&1";
  std::string out;
  // nghttpd may still be starting in the server pod.
  testing::waitFor(
      [&] {
        out = a_->runInPod(a_->pod("client"), [cmd] { return run(cmd).out; });
        return testing::count(out, "pod=server h2") == 3;
      },
      5000);
  EXPECT_EQ(testing::count(out, "pod=server h2"), 3) << out << logs();
  cap.stop();
  EXPECT_GT(cap.packets("tcp port 15008"), 4) << run("cat " + dir_ + "/h2.pcap.log").out;
  EXPECT_EQ(cap.packets("tcp port 8082"), 0) << "plaintext HTTP/2 crossed the link";
}

// An AuthorizationPolicy with HTTP attributes on the pod of the other node: the client's agent
// decides each request (GET /hello* allowed, POST denied with 403); the destination's agent
// accepts the L7 path's connections on the L4 parts of the rule, and still fails safe for the
// plain TCP path (the rule's HTTP parts cannot be checked there).
TEST_F(CrossNode, L7PolicyOnAnotherNodeIsDecidedPerRequest) {
  writeConfig(R"(---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-http, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}]
    to: [{operation: {methods: [GET], paths: ["/hello*"]}}]
)");
  auto curl = [](const std::string& args) {
    std::string cmd = "curl -sS --max-time 5 " + args;
    return a_->runInPod(a_->pod("client"), [cmd] { return run(cmd).out; });
  };
  const std::string url = std::string("http://") + kHttpServiceIp;
  std::string code;
  EXPECT_TRUE(waitFor(
      [&] {
        code = curl("-o /dev/null -w '%{http_code}' -X POST " + url + "/hello");
        return code == "403";
      },
      5000))
      << code << logs();
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' " + url + "/other"), "403");
  std::string out = curl(url + "/hello-policy");
  EXPECT_NE(out.find("pod=server"), std::string::npos) << out << logs();
  // The TCP service to the same pod: the rule needs HTTP attributes, so at L4 nothing allows.
  // (Node B's agent may apply the policy a little after node A's.)
  EXPECT_TRUE(
      waitFor([] { return !fromClient(kServiceIp, 80, "denied-at-l4").error.empty(); }, 5000))
      << "the L4 path passed an ALLOW rule it cannot check";
  writeConfig("");
  EXPECT_TRUE(waitFor([&] { return fromClient(kServiceIp, 80, "back").error.empty(); }, 5000));
}

// While a tunnelled connection is open, `meshlet connections` on both nodes shows it with the
// identity the other side proved and (on the destination) the policy decision; the Istio TCP
// metrics of both agents carry mutual_tls and both principals, and pass promtool.
TEST_F(CrossNode, ConnectionsAndMetricsShowTheTunnelAndBothIdentities) {
  pid_t holder = a_->spawnInPod(a_->pod("client"), [] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    inet_pton(AF_INET, kServiceIp, &a.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return 1;
    std::string payload(5000, 'x');
    if (write(fd, payload.data(), payload.size()) < 0) return 1;
    sleep(30);
    return 0;
  });
  const std::string client_id = "spiffe://cluster.local/ns/shop/sa/client";
  const std::string db_id = "spiffe://cluster.local/ns/shop/sa/db";
  Json out, in;
  EXPECT_TRUE(waitFor(
      [&] {
        out = tunnelRows("a");
        in = tunnelRows("b");
        return out.size() == 1 && in.size() == 1 && out[0].value("bytes_sent", 0) >= 5000 &&
               in[0].value("bytes_received", 0) >= 5000;
      },
      5000))
      << out.dump(2) << in.dump(2) << logs();
  if (out.size() == 1 && in.size() == 1) {
    EXPECT_EQ(out[0]["direction"], "outbound");
    EXPECT_EQ(out[0]["workload"], "shop/client");
    EXPECT_EQ(out[0]["peer"], "shop/server");
    EXPECT_EQ(out[0]["peer_identity"], db_id);
    EXPECT_EQ(out[0]["service"], "db.shop.svc.cluster.local");
    EXPECT_EQ(out[0]["service_address"], std::string(kServiceIp) + ":80");
    EXPECT_EQ(in[0]["direction"], "inbound");
    EXPECT_EQ(in[0]["workload"], "shop/server");
    EXPECT_EQ(in[0]["peer"], "shop/client");
    EXPECT_EQ(in[0]["peer_identity"], client_id);
    EXPECT_EQ(in[0]["policy"], "allowed");
    EXPECT_EQ(in[0]["service"], "db.shop.svc.cluster.local");
  }
  a_->kill(holder);
  // The app's leg to the agent was spliced by the kernel (sockhash), not carried by loopback TCP.

  for (const char* n : {"a", "b"}) {
    std::string node = n;
    std::string want = node == "a" ? "reporter=\"source\"" : "reporter=\"destination\"";
    std::string metrics;
    EXPECT_TRUE(waitFor(
        [&] {
          metrics = scrape(node);
          for (size_t p = metrics.find("istio_tcp_sent_bytes_total{"); p != std::string::npos;
               p = metrics.find("istio_tcp_sent_bytes_total{", p + 1)) {
            std::string line = metrics.substr(p, metrics.find('\n', p) - p);
            if (line.find("connection_security_policy=\"mutual_tls\"") != std::string::npos &&
                line.find("source_principal=\"" + client_id + "\"") != std::string::npos &&
                line.find("destination_principal=\"" + db_id + "\"") != std::string::npos &&
                line.find("destination_service=\"db.shop.svc.cluster.local\"") !=
                    std::string::npos &&
                line.find(want) != std::string::npos) {
              return true;
            }
          }
          return false;
        },
        5000))
        << "node " << node << ":\n"
        << metrics;
    int port = status(node).value("metrics_port", 0);
    // (The suite's L7 tests put Istio's request histogram in the scrape too.)
    EXPECT_EQ(testing::promtoolProblems(port), "");
  }
}

// The root is rotated while a connection streams through the tunnel (the old root kept in
// trust-bundle.pem, a new one written by `meshlet ca init --force`): both agents renew their
// workloads' certificates, the open stream keeps flowing on its link, and a new connection
// takes a new link with the new certificates.
TEST_F(CrossNode, RootRotationDuringALongTransferBreaksNothing) {
  auto serials = [](const std::string& node) {
    std::set<std::string> s;
    auto j = Json::parse(run(cli(node, "certs -o json")).out, nullptr, false);
    if (j.is_array()) {
      for (const auto& c : j) s.insert(c.value("serial", ""));
    }
    return s;
  };
  auto before_a = serials("a"), before_b = serials("b");
  std::string result;
  std::thread transfer([&] {
    result = a_->runInPod(a_->pod("client"),
                          [] { return longTransfer(kServiceIp, 80, 120, 40); });  // ~5 s
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  // The one-step rotation of the cluster's CA, reaching node a first and node b 1.5 s later.
  run("cp " + dir_ + "/ca/ca-cert.pem " + dir_ + "/ca/trust-bundle.pem");
  auto init = run(std::string(MESHLET_CLI_BIN) + " ca init --force --dir " + dir_ + "/ca");
  EXPECT_EQ(init.code, 0) << init.out;
  publishCa("a", 2);
  auto renewed = [&](const std::string& node, const std::set<std::string>& before) {
    auto now = serials(node);
    if (now.empty() || now.count("")) return false;
    for (const auto& s : now) {
      if (before.count(s)) return false;
    }
    return true;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  publishCa("b", 2);
  // The old root keeps signing for the rollover delay (3 s after an agent reads the change, at
  // most 1 s after it lands): no certificate from the new root yet.
  EXPECT_EQ(serials("a"), before_a);
  EXPECT_EQ(serials("b"), before_b);
  // Every connection made through the rotation works, before, during and after the switch.
  // Without the rollover delay agent a signs with the new root while agent b does not trust it
  // yet, and b refuses a's new links ("unknown ca").
  int made = 0;
  std::vector<std::string> failures;
  bool switched = false;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       std::chrono::steady_clock::now() < deadline;) {
    switched = renewed("a", before_a) && renewed("b", before_b);
    std::string payload = "rotation-" + std::to_string(made++);
    Exchange e = fromClient(kServiceIp, 80, payload);
    if (e.echo != payload) failures.push_back(payload + ": " + e.error);
    if (switched) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(switched) << "the certificates were not renewed from the new root\n" << logs();
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << made
                                << " connections failed, first: " << failures.front() << "\n"
                                << logs();
  EXPECT_EQ(fromClient(kServiceIp, 80, "after-rotation").echo, "after-rotation") << logs();
  transfer.join();
  EXPECT_EQ(result, "ok " + std::to_string(120 * 65536)) << logs();
}

// A bulk transfer at full speed, 128 MiB each way, echoed: the agents' backpressure (a full
// HBONE stream stops the reading of the app's socket) reaches the app as a slower send, never
// as an error, and every byte arrives in order. (The sockmap splice of the local legs, now
// removed, failed iperf3's sends with ENOMEM after a few seconds in the benchmark; this test
// is too short to show that.)
TEST_F(CrossNode, BulkTransferAtFullSpeedCompletesIntact) {
  std::string result =
      a_->runInPod(a_->pod("client"), [] { return longTransfer(kServiceIp, 80, 2048, 0); });
  EXPECT_EQ(result, "ok " + std::to_string(2048 * 65536)) << logs();
}

// An agent restart, on either node: the tunnel's in-pod listeners and HBONE links belong to the
// agent process, so a restart resets the connections that were open through it and refuses new
// ones until it is back (the kernel keeps steering them to 127.0.0.1:15001); once it is up, new
// connections flow again without anyone re-dialling by hand.
TEST_F(CrossNode, AgentRestartOnEitherNodeResumesNewConnections) {
  for (const char* n : {"a", "b"}) {
    std::string node = n;
    std::string open_result;
    std::thread open_conn([&] {
      open_result = a_->runInPod(a_->pod("client"),
                                 [] { return longTransfer(kServiceIp, 80, 200, 40); });  // ~8 s
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    pid_t& pid = node == "a" ? pid_a_ : pid_b_;
    Sandbox* sb = node == "a" ? a_ : b_;
    testing::stopAgent(pid);
    if (node == "a") {
      // Agent A is down: its listener is gone, the kernel still steers, the connect is refused.
      EXPECT_EQ(fromClient(kServiceIp, 80, "while-down").error, "connect: Connection refused");
    }
    pid = testing::spawnAgent(MESHLETD_BIN, dir_ + "/" + node, sb->cgroup(), sb->bpffs(),
                              agentArgs(node));
    EXPECT_TRUE(waitFor([&] { return nodeReady(node); }, 15000)) << logs();
    Exchange after;
    EXPECT_TRUE(waitFor(
        [&] {
          after = fromClient(kServiceIp, 80, "after-restart-" + node);
          return after.echo == "after-restart-" + node;
        },
        10000))
        << "restarting " << node << ": " << after.error << "\n"
        << logs();
    open_conn.join();
    // Honest: the connection that was open through the restarted agent did not survive.
    EXPECT_NE(open_result.rfind("ok", 0), 0u) << open_result;
  }
}

// A pooled HBONE link serves later connections to the same destination, and is closed once
// that destination leaves the cluster state.
TEST_F(CrossNode, PooledLinkIsReusedAndClosedWhenItsEndpointLeaves) {
  auto pooled = [] { return status("a")["tunnels"].value("pooled_links", -1); };
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(fromClient(kServiceIp, 80, "pooled").echo, "pooled") << logs();
  }
  EXPECT_TRUE(waitFor([&] { return pooled() == 1; }, 2000)) << status("a").dump(2);
  writeConfig("", /*with_server=*/false);
  EXPECT_TRUE(waitFor([&] { return pooled() == 0; }, 5000)) << status("a").dump(2);
  writeConfig("");
  Exchange back;
  EXPECT_TRUE(waitFor(
      [&] {
        back = fromClient(kServiceIp, 80, "back");
        return back.echo == "back";
      },
      5000))
      << back.error << logs();
}

// Established TCP connections to an HBONE port (15008) in the calling process's netns: the
// agent's links, dialled from inside the client pod.
int hboneLinksHere() {
  std::ifstream f("/proc/self/net/tcp");
  std::string line;
  int n = 0;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state;
    in >> slot >> local >> remote >> state;
    if (state == "01" && remote.size() > 5 && remote.substr(remote.size() - 5) == ":3AA0") ++n;
  }
  return n;
}

// Many connections open at once between one pair of pods: past a link's share of streams
// (100), the next connection gets a link of its own instead of waiting behind the others, every
// one of them works, and the extra link closes once its connections are done.
TEST_F(CrossNode, ManyConcurrentConnectionsSpreadOverLinks) {
  EXPECT_EQ(fromClient(kServiceIp, 80, "warm").echo, "warm") << logs();
  std::string result = a_->runInPod(a_->pod("client"), [] {
    std::vector<int> fds;
    int greeted = 0;
    for (int i = 0; i < 150; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(80);
      inet_pton(AF_INET, kServiceIp, &a.sin_addr);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        close(fd);
        continue;
      }
      fds.push_back(fd);
      std::string error;
      if (readSome(fd, 3, 3000, &error) == "db\n") ++greeted;
    }
    int links = hboneLinksHere();
    for (int fd : fds) close(fd);
    return std::to_string(greeted) + " " + std::to_string(links);
  });
  EXPECT_EQ(result, "150 2") << logs();
  // The full link closes once its streams are done; the pool keeps the newer one.
  auto links = [this] {
    return a_->runInPod(a_->pod("client"), [] { return std::to_string(hboneLinksHere()); });
  };
  EXPECT_TRUE(waitFor([&] { return links() == "1"; }, 5000)) << links();
  EXPECT_EQ(fromClient(kServiceIp, 80, "after").echo, "after") << logs();
}

// A port of the destination pod where nothing listens: agent B's connect to the app is refused
// (on the spot, in its pod), the CONNECT is answered 503, and the client's connection, already
// accepted by agent A, is reset at once instead of hanging. The link stays up for others.
TEST_F(CrossNode, ClosedDestinationPortResetsTheClientAtOnce) {
  EXPECT_EQ(fromClient(kServiceIp, 80, "warm").echo, "warm") << logs();
  auto start = std::chrono::steady_clock::now();
  Exchange closed = fromClient(b_->pod("server").ip4, 8099, "nobody-home");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  EXPECT_EQ(closed.error, "Connection reset by peer") << logs();
  EXPECT_LT(ms, 2000);
  EXPECT_EQ(fromClient(kServiceIp, 80, "still-up").echo, "still-up") << logs();
  EXPECT_TRUE(waitFor([] { return status("a")["tunnels"].value("pooled_links", -1) == 1; }, 2000))
      << status("a").dump(2);
}

// HBONE only talks to workloads with a certificate from the mesh: openssl s_client from a pod
// outside the mesh, with no client certificate, is refused by the destination's agent.
TEST_F(CrossNode, HboneRefusesAClientWithoutACertificate) {
  const TestPod& out = a_->pod("outsider");
  std::string target = b_->pod("server").ip4 + ":15008";
  auto r =
      run("ip netns exec " + out.netns + " sh -c 'sleep 1 | timeout 10 openssl s_client -connect " +
          target + " -alpn h2 -tls1_3 -ign_eof'");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("alert"), std::string::npos) << r.out;
  // The mesh's own traffic still works.
  EXPECT_EQ(fromClient(kServiceIp, 80, "after-s_client").echo, "after-s_client") << logs();
}

// An AuthorizationPolicy on node B's workload that allows another identity denies the client
// (the app's connection is reset, and B says who denied it); changing the policy to allow the
// client's identity lets the next connection through.
TEST_F(CrossNode, PolicyOnTheDestinationDeniesThenAllowsTheClientIdentity) {
  auto policy = [](const std::string& sa) {
    return "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n"
           "  name: db-callers\n  namespace: shop\nspec:\n  selector:\n    matchLabels: {app: db}\n"
           "  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principals: "
           "[\"cluster.local/ns/shop/sa/" +
           sa + "\"]\n";
  };
  writeConfig(policy("someone-else"));
  Exchange denied;
  ASSERT_TRUE(waitFor(
      [&] {
        denied = fromClient(kServiceIp, 80, "should-not-arrive");
        return !denied.error.empty();
      },
      5000))
      << logs();
  EXPECT_EQ(denied.echo, "");
  EXPECT_NE(testing::count(run("cat " + dir_ + "/b/meshletd.log").out,
                           "denied spiffe://cluster.local/ns/shop/sa/client"),
            0);

  std::string denials;
  EXPECT_TRUE(waitFor(
      [&] {
        denials = scrape("b");
        return denials.find(
                   "meshlet_authz_denied_connections_total{destination_workload=\"db\","
                   "destination_workload_namespace=\"shop\",policy=\"-\","
                   "source_principal=\"spiffe://cluster.local/ns/shop/sa/client\"}") !=
               std::string::npos;
      },
      3000))
      << denials;
  // The proxy's counters reach `meshlet status` within a few hundred ms.
  EXPECT_TRUE(waitFor([] { return status("b")["tunnels"]["denied"].value("-", 0) >= 1; }, 2000))
      << status("b").dump(2);

  writeConfig(policy("client"));
  Exchange allowed;
  EXPECT_TRUE(waitFor(
      [&] {
        allowed = fromClient(kServiceIp, 80, "now-allowed");
        return allowed.echo == "now-allowed";
      },
      5000))
      << allowed.error << "\n"
      << logs();
  writeConfig("");
}

// Same node, no TLS: the kernel knows both ends, so an AuthorizationPolicy on the neighbor pod
// is enforced at connect() — the client's connect is refused at once (ECONNREFUSED), the
// refusal shows in `meshlet connections` and the denial metric with the policy's name; without
// the policy the pair is spliced again.
TEST_F(CrossNode, SameNodePolicyIsEnforcedInTheKernelAtConnect) {
  const std::string neighbor = a_->pod("neighbor").ip4;
  writeConfig(R"(---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-client, namespace: shop}
spec:
  selector:
    matchLabels: {app: neighbor}
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/client"]
    to:
    - operation:
        ports: ["8080"]
)");
  Exchange denied;
  ASSERT_TRUE(waitFor(
      [&] {
        denied = fromClient(neighbor, 8080, "x");
        return !denied.error.empty();
      },
      5000))
      << logs();
  EXPECT_EQ(denied.error, "connect: Connection refused");
  Json rows;
  EXPECT_TRUE(waitFor(
      [&] {
        auto r = run(cli("a", "connections -o json"));
        rows = Json::parse(r.out, nullptr, false);
        if (!rows.is_array()) return false;
        for (const auto& row : rows) {
          if (row.value("state", "") == "denied" && row.value("workload", "") == "shop/client" &&
              row.value("peer", "") == "shop/neighbor" &&
              row.value("remote", "") == neighbor + ":8080" &&
              row.value("policy", "") == "denied by shop/no-client") {
            return true;
          }
        }
        return false;
      },
      3000))
      << rows.dump(2);
  EXPECT_TRUE(waitFor(
      [] {
        return scrapeHas("a", "meshlet_authz_denied_connections_total",
                         {"policy=\"shop/no-client\"", "destination_workload=\"neighbor\"",
                          "source_principal=\"spiffe://cluster.local/ns/shop/sa/client\""});
      },
      8000))
      << scrape("a");

  writeConfig("");
  Exchange allowed;
  EXPECT_TRUE(waitFor(
      [&] {
        allowed = fromClient(neighbor, 8080, "spliced-again");
        return allowed.echo == "spliced-again";
      },
      5000))
      << allowed.error << logs();
}

// PeerAuthentication against a client outside the mesh (a plain pod on node A dialling the
// server pod's IP): STRICT refuses its plaintext (the sk_lookup program in the server pod's
// netns steers it to B's agent, which resets it) while mesh traffic still flows over HBONE;
// PERMISSIVE with an AuthorizationPolicy lets it through the agent, counted as plaintext.
TEST_F(CrossNode, StrictRefusesPlaintextFromOutsideTheMeshPermissiveAcceptsIt) {
  // No policy (what the previous test left is gone within a second): straight to the app.
  Exchange before;
  ASSERT_TRUE(waitFor(
      [&] {
        before = fromOutsider("plain-before");
        return before.echo == "plain-before";
      },
      5000))
      << before.error << logs();

  writeConfig(R"(---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: shop-strict, namespace: shop}
spec:
  mtls: {mode: STRICT}
)");
  Exchange refused;
  ASSERT_TRUE(waitFor(
      [&] {
        refused = fromOutsider("must-not-arrive");
        return !refused.error.empty();
      },
      5000))
      << logs();
  EXPECT_EQ(refused.echo, "");
  EXPECT_EQ(fromClient(kServiceIp, 80, "mesh-still-works").echo, "mesh-still-works") << logs();
  EXPECT_TRUE(
      waitFor([] { return status("b")["tunnels"].value("plaintext_rejected", 0) >= 1; }, 2000))
      << status("b").dump(2);
  EXPECT_TRUE(waitFor(
      [] {
        return scrapeHas("b", "meshlet_mtls_rejected_connections_total",
                         {"policy=\"shop/shop-strict\"", "destination_workload=\"db\""});
      },
      3000))
      << scrape("b");

  writeConfig(R"(---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: shop-strict, namespace: shop}
spec:
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from-node-a, namespace: shop}
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        ipBlocks: ["198.18.1.0/24"]
)");
  Exchange accepted;
  EXPECT_TRUE(waitFor(
      [&] {
        accepted = fromOutsider("plain-permissive");
        return accepted.echo == "plain-permissive";
      },
      5000))
      << accepted.error << "\n"
      << logs();
  EXPECT_TRUE(waitFor(
      [] {
        return scrapeHas("b", "istio_tcp_connections_opened_total",
                         {"meshlet_path=\"captured\"", "connection_security_policy=\"none\"",
                          "reporter=\"destination\"", "destination_workload=\"db\""});
      },
      3000))
      << scrape("b");
  writeConfig("");
}

}  // namespace
}  // namespace meshlet
