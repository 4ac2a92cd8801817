// End-to-end: the L7 path. Pods in network namespaces, the real meshletd, real HTTP servers in
// the backend pods and curl (or raw sockets, for what curl will not send) in the client pod.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
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

using testing::count;
using testing::run;
using testing::Sandbox;
using testing::TestPod;
using testing::waitFor;
using testing::writeFile;

constexpr const char* kWeb = "198.19.0.40";
constexpr const char* kFlaky = "198.19.0.41";

std::string podYaml(const TestPod& p, const std::string& labels) {
  testing::PodYaml y;
  y.ns = "shop";
  y.labels = labels;
  return testing::podYaml(p, y);
}

const char* kConfig = R"(apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio.io/dataplane-mode: meshlet}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.19.0.40
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: flaky, namespace: shop}
spec:
  clusterIP: 198.19.0.41
  selector: {app: flaky}
  ports: [{name: http-flaky, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: canary-header
    match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: old-path
    match: [{uri: {prefix: /old/}}]
    redirect: {uri: /new/place}
  - name: api
    match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /v1/}
    headers:
      request: {set: {x-added: "yes"}, remove: [x-drop]}
      response: {add: {x-served-by: meshlet}}
    route: [{destination: {host: web, subset: v1}}]
  - name: faulty
    match: [{uri: {exact: /fault}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: web}}]
  - name: slow
    match: [{uri: {prefix: /delay/}}]
    timeout: 300ms
    route: [{destination: {host: web}}]
  - name: delayed
    match: [{uri: {exact: /injected-delay}}]
    fault: {delay: {fixedDelay: 200ms, percentage: {value: 100}}}
    route: [{destination: {host: web}}]
  - name: split
    match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: web, subset: v1}, weight: 80}
    - {destination: {host: web, subset: v2}, weight: 20}
---
# eject: flaky's pods without retries, with outlier detection.
apiVersion: v1
kind: Service
metadata: {name: eject, namespace: shop}
spec:
  clusterIP: 198.19.0.42
  selector: {app: flaky}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: eject, namespace: shop}
spec:
  host: eject
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}
---
# gate: one request in flight at most; queue: one connection at most, the rest wait.
apiVersion: v1
kind: Service
metadata: {name: gate, namespace: shop}
spec:
  clusterIP: 198.19.0.43
  selector: {app: web, version: v1}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: gate, namespace: shop}
spec:
  host: gate
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 1}}
---
apiVersion: v1
kind: Service
metadata: {name: queue, namespace: shop}
spec:
  clusterIP: 198.19.0.44
  selector: {app: web, version: v1}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: queue, namespace: shop}
spec:
  host: queue
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}
---
# limited: 5 requests a minute for the service, 2 for its route "tight".
apiVersion: v1
kind: Service
metadata:
  name: limited
  namespace: shop
  annotations: {meshlet.io/local-rate-limit: 5/m}
spec:
  clusterIP: 198.19.0.45
  selector: {app: web, version: v1}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: limited
  namespace: shop
  annotations: {meshlet.io/local-rate-limit.tight: 2/m}
spec:
  hosts: [limited]
  http:
  - name: tight
    match: [{uri: {prefix: /tight}}]
    route: [{destination: {host: limited}}]
  - route: [{destination: {host: limited}}]
---
# vault: HTTP AuthorizationPolicy. GET /public/* from the client's identity only, and never
# with x-block: yes.
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: shop}
spec:
  clusterIP: 198.19.0.46
  selector: {app: vault}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: vault-allow, namespace: shop}
spec:
  selector: {matchLabels: {app: vault}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/default]}}]
    to: [{operation: {methods: [GET], paths: ["/public/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: vault-deny, namespace: shop}
spec:
  selector: {matchLabels: {app: vault}}
  action: DENY
  rules:
  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
---
# mirrored: web v1 answers; every /all request and half of the others are copied to sink.
apiVersion: v1
kind: Service
metadata: {name: mirrored, namespace: shop}
spec:
  clusterIP: 198.19.0.47
  selector: {app: web, version: v1}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: sink, namespace: shop}
spec:
  clusterIP: 198.19.0.48
  selector: {app: sink}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mirrored, namespace: shop}
spec:
  hosts: [mirrored]
  http:
  - name: all
    match: [{uri: {prefix: /all}}]
    route: [{destination: {host: mirrored}}]
    mirror: {host: sink}
  - name: half
    route: [{destination: {host: mirrored}}]
    mirror: {host: sink}
    mirrorPercentage: {value: 50}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: shop}
spec:
  hosts: [flaky.shop.svc.cluster.local]
  http:
  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: flaky}}]
)";

// What a raw connection from the calling process got back for `request`: everything read
// until the peer closed, `until` appeared `times` times, or 3 s passed.
std::string exchange(const std::string& ip, int port, const std::string& request,
                     const std::string& until = "", int times = 1) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return "connect failed: " + std::string(strerror(errno));
  }
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!until.empty() && count(got, until) >= times) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return got;
}

class L7E2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reason_ = testing::kernelTestsUnavailable();
    if (reason_.empty() && run("command -v curl").code != 0) reason_ = "curl missing";
    if (!reason_.empty()) return;
    sb_ = new Sandbox();
    sb_->addPod("client");
    dir_ = "/tmp/meshlet-test-l7-" + sb_->id();
    fs::create_directories(dir_ + "/config");
    struct Backend {
      const char* name;
      int status;
    };
    for (Backend b : {Backend{"web-v1", 0}, Backend{"web-v2", 0}, Backend{"flaky-bad", 503},
                      Backend{"flaky-good", 0}, Backend{"vault", 0}, Backend{"sink", 0}}) {
      std::string name = b.name;
      int status = b.status;
      // Every pod logs what it served (the mirror test reads sink's log).
      std::string log = dir_ + "/" + name + ".requests";
      sb_->addPod(name);
      sb_->spawnInPod(sb_->pod(name),
                      [name, status, log] { return testing::serveHttp(8080, name, status, log); });
    }
    writeFile(dir_ + "/config/00-config.yaml", kConfig);
    writeFile(dir_ + "/config/10-pods.yaml",
              podYaml(sb_->pod("client"), "{app: client}") + "---\n" +
                  podYaml(sb_->pod("web-v1"), "{app: web, version: v1}") + "---\n" +
                  podYaml(sb_->pod("web-v2"), "{app: web, version: v2}") + "---\n" +
                  podYaml(sb_->pod("flaky-bad"), "{app: flaky}") + "---\n" +
                  podYaml(sb_->pod("flaky-good"), "{app: flaky}") + "---\n" +
                  podYaml(sb_->pod("vault"), "{app: vault}") + "---\n" +
                  podYaml(sb_->pod("sink"), "{app: sink}"));
    agent_pid_ = testing::spawnAgent(MESHLETD_BIN, dir_, sb_->cgroup(), sb_->bpffs(),
                                     {"--access-log", dir_ + "/access.log"});
    bool up = waitFor(
        [] {
          auto r = run(cli("status -o json"));
          auto j = Json::parse(r.out, nullptr, false);
          return r.code == 0 && j.is_array() && !j.empty() && j[0].value("generation", 0) >= 1;
        },
        10000);
    if (!up) ADD_FAILURE() << "agent did not come up: " << run("cat " + dir_ + "/meshletd.log").out;
    // The agent's listeners in the client pod are open once a request is answered.
    waitFor(
        [] { return curl("-o /dev/null -w '%{http_code}' http://198.19.0.40/api/ready") == "200"; },
        10000);
  }
  static void TearDownTestSuite() {
    testing::stopAgent(agent_pid_);
    if (sb_) run(std::string(MESHLETD_BIN) + " --uninstall --bpffs " + sb_->bpffs());
    delete sb_;
    sb_ = nullptr;
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!reason_.empty()) GTEST_SKIP() << "end-to-end tests cannot run here: " << reason_;
    ASSERT_GT(agent_pid_, 0);
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << run("tail -n 40 " + dir_ + "/meshletd.log").out;
  }

  static std::string cli(const std::string& args) {
    return std::string(MESHLET_CLI_BIN) + " --admin-socket " + dir_ + "/admin.sock --bpffs " +
           sb_->bpffs() + " " + args;
  }
  // curl in the client pod; its stdout.
  static std::string curl(const std::string& args) {
    std::string cmd = "curl -sS --max-time 5 " + args;
    return sb_->runInPod(sb_->pod("client"), [cmd] { return run(cmd).out; });
  }
  // The lines of the request log backend pod `pod` keeps (serveHttp's log_path).
  static std::vector<std::string> requestLog(const std::string& pod) {
    std::ifstream in(dir_ + "/" + pod + ".requests");
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  static std::string raw(const std::string& ip, const std::string& request,
                         const std::string& until = "", int times = 1) {
    return sb_->runInPod(sb_->pod("client"),
                         [=] { return exchange(ip, 80, request, until, times); });
  }

  static inline Sandbox* sb_ = nullptr;
  static inline std::string dir_;
  static inline std::string reason_;
  static inline pid_t agent_pid_ = -1;
};

TEST_F(L7E2E, FirstMatchingRouteWinsWithRewriteAndHeaderRules) {
  // A header match sends every request to subset v2, whatever the path.
  std::string out = curl("-H 'x-canary: yes' 'http://198.19.0.40/api/[1-10]'");
  EXPECT_EQ(count(out, "pod=web-v2"), 10) << out;
  // /api/ goes to v1 with its prefix rewritten, a request header set and one removed, and a
  // response header added; the proxy adds a request id and trace context.
  // Hop-by-hop fields stay on the client's hop: TE, Keep-Alive, Connection and the fields it
  // names.
  out = curl(
      "-i -H 'x-drop: 1' -H 'connection: keep-alive, x-hop' -H 'x-hop: 1' "
      "-H 'keep-alive: timeout=5' -H 'te: trailers' -H 'x-end: 1' "
      "http://198.19.0.40/api/items?x=1");
  for (const char* hop : {"h:x-hop", "h:keep-alive", "h:te:", "h:connection"}) {
    EXPECT_EQ(out.find(hop), std::string::npos) << hop << " went upstream: " << out;
  }
  EXPECT_NE(out.find("h:x-end: 1"), std::string::npos) << out;
  EXPECT_NE(out.find("HTTP/1.1 200"), std::string::npos) << out;
  EXPECT_NE(out.find("pod=web-v1"), std::string::npos) << out;
  EXPECT_NE(out.find("target=/v1/items?x=1"), std::string::npos) << out;
  EXPECT_NE(out.find("h:x-added: yes"), std::string::npos) << out;
  EXPECT_EQ(out.find("h:x-drop"), std::string::npos) << out;
  EXPECT_NE(out.find("x-served-by: meshlet"), std::string::npos) << out;
  EXPECT_NE(out.find("h:x-request-id: "), std::string::npos) << out;
  EXPECT_NE(out.find("h:traceparent: 00-"), std::string::npos) << out;
  EXPECT_NE(out.find("h:x-b3-traceid: "), std::string::npos) << out;
  // A request id the client sent is kept.
  out = curl("-H 'x-request-id: abc-123' http://198.19.0.40/api/id");
  EXPECT_NE(out.find("h:x-request-id: abc-123"), std::string::npos) << out;
  // No route matches "/": 404.
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' http://198.19.0.40/"), "404");
}

TEST_F(L7E2E, RedirectAnswersWithTheNewLocation) {
  std::string out = curl("-i 'http://198.19.0.40/old/thing?q=1'");
  EXPECT_NE(out.find("HTTP/1.1 301"), std::string::npos) << out;
  EXPECT_NE(out.find("location: http://198.19.0.40/new/place?q=1"), std::string::npos) << out;
  EXPECT_EQ(out.find("pod="), std::string::npos) << out;  // no backend saw it
}

TEST_F(L7E2E, WeightsSplitRequestsAsConfigured) {
  // 400 requests on one keep-alive connection: 80 % v1, 20 % v2. The count of v2 is binomial
  // (mean 80, sd 8): [40, 120] fails by chance far less than once in a million runs.
  std::string out = curl("'http://198.19.0.40/split[1-400]'");
  int v1 = count(out, "pod=web-v1"), v2 = count(out, "pod=web-v2");
  EXPECT_EQ(v1 + v2, 400) << out.substr(0, 2000);
  EXPECT_GE(v2, 40);
  EXPECT_LE(v2, 120);
}

TEST_F(L7E2E, FaultAbortDelayAndTimeout) {
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' http://198.19.0.40/fault"), "418");
  std::string t =
      curl("-o /dev/null -w '%{http_code} %{time_total}' http://198.19.0.40/injected-delay");
  EXPECT_EQ(t.substr(0, 3), "200") << t;
  EXPECT_GE(std::stod(t.substr(4)), 0.19) << t;
  // The route's 300 ms timeout: a backend that answers after 1 s gets a 504 at ~300 ms.
  t = curl("-o /dev/null -w '%{http_code} %{time_total}' http://198.19.0.40/delay/1000");
  EXPECT_EQ(t.substr(0, 3), "504") << t;
  EXPECT_LT(std::stod(t.substr(4)), 0.9) << t;
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' http://198.19.0.40/delay/20"), "200");
}

TEST_F(L7E2E, RetriesRecoverFromAFailingBackend) {
  // One of flaky's two pods answers 503 to everything; retries on 5xx go to the other.
  std::string out = curl("-o /dev/null -w '%{http_code}\\n' 'http://198.19.0.41/r[1-40]'");
  EXPECT_EQ(count(out, "200"), 40) << out;
}

TEST_F(L7E2E, MirrorGetsACopyOfTheRequestsItsPercentageSays) {
  auto sinkLog = [] { return requestLog("sink"); };
  size_t before = sinkLog().size();
  // Route "all" mirrors every request, body included; the client's answers come from web v1
  // only, and the mirror sees the authority with "-shadow" appended.
  std::string out = curl(
      "-H 'host: mirrored.shop' --data-binary @/etc/os-release "
      "'http://198.19.0.47/all/[1-20]'");
  EXPECT_EQ(count(out, "pod=web-v1"), 20) << out.substr(0, 2000);
  EXPECT_EQ(count(out, "pod=sink"), 0);
  size_t body = fs::file_size("/etc/os-release");
  std::vector<std::string> seen;
  EXPECT_TRUE(waitFor([&] { return (seen = sinkLog()).size() >= before + 20; }, 5000))
      << seen.size() - before;
  int copies = 0;
  for (size_t i = before; i < seen.size(); ++i) {
    copies += seen[i].rfind("POST /all/", 0) == 0 &&
              seen[i].find(" mirrored.shop-shadow " + std::to_string(body)) != std::string::npos;
  }
  EXPECT_EQ(copies, 20) << seen.back();
  // Route "half": mirrorPercentage 50. Of 400 requests the mirror gets a binomial share (mean
  // 200, sd 10): [140, 260] fails by chance far less than once in a million runs.
  before = sinkLog().size();
  out = curl("-o /dev/null -w '%{http_code}\\n' 'http://198.19.0.47/half/[1-400]'");
  EXPECT_EQ(count(out, "200"), 400);
  // Copies still in flight land within a second; then the count stays.
  for (size_t last = SIZE_MAX, n = 0; (n = sinkLog().size()) != last; last = n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  int half = static_cast<int>(sinkLog().size() - before);
  EXPECT_GE(half, 140);
  EXPECT_LE(half, 260);
}

// Upstream connections are reused: a client's keep-alive requests go over one connection, and
// when the client leaves, that connection serves the next client (gate: no connection limit, the
// session keeps the connection between requests; queue: maxConnections 1, it goes back to the
// pool after each request).
TEST_F(L7E2E, UpstreamConnectionsAreReusedAcrossRequestsAndClients) {
  auto webLog = [] { return requestLog("web-v1"); };
  for (const char* vip : {"198.19.0.43", "198.19.0.44"}) {
    SCOPED_TRACE(vip);
    size_t before = webLog().size();
    std::string base = std::string("'http://") + vip + "/reuse/";
    EXPECT_EQ(count(curl("-o /dev/null -w '%{http_code}\\n' " + base + "a[1-5]'"), "200"), 5);
    // The first client's close reaches the agent before the second one connects.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(count(curl("-o /dev/null -w '%{http_code}\\n' " + base + "b[1-5]'"), "200"), 5);
    std::vector<std::string> seen = webLog();
    std::set<std::string> ports;
    int requests = 0;
    for (size_t i = before; i < seen.size(); ++i) {
      if (seen[i].rfind("GET /reuse/", 0) != 0) continue;
      ++requests;
      ports.insert(seen[i].substr(seen[i].rfind(' ') + 1));
    }
    EXPECT_EQ(requests, 10);
    EXPECT_EQ(ports.size(), 1u) << "upstream connections (client ports at web-v1): "
                                << ports.size();
  }
}

// The h2 bridge's internal mark is removed from an HTTP/1.1 app's request and has no effect
// (it would make the upstream HTTP/2, which these HTTP/1.1 backends do not speak); an
// "Upgrade: h2c" is not taken: the request is served over HTTP/1.1.
TEST_F(L7E2E, H2MarkAndH2cUpgradeFromHttp1Clients) {
  std::string out = curl("-i -H 'x-meshlet-downstream-h2: 1' http://198.19.0.40/api/mark");
  EXPECT_NE(out.find("HTTP/1.1 200"), std::string::npos) << out;
  EXPECT_NE(out.find("pod=web-v1"), std::string::npos) << out;
  EXPECT_EQ(out.find("x-meshlet-downstream-h2"), std::string::npos) << out;
  out = curl("-i --http2 http://198.19.0.40/api/up");
  EXPECT_NE(out.find("HTTP/1.1 200"), std::string::npos) << out;
  EXPECT_EQ(out.find("101 Switching"), std::string::npos) << out;
  EXPECT_EQ(out.find("h:upgrade"), std::string::npos) << out;
  EXPECT_EQ(out.find("h:http2-settings"), std::string::npos) << out;
}

TEST_F(L7E2E, MalformedRequestsGetAnErrorAndTheConnectionCloses) {
  std::string out = raw(kWeb, "GARBAGE\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
  out = raw(kWeb,
            "GET /api/x HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nTransfer-Encoding: "
            "chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
  out = raw(kWeb,
            "GET /api/x HTTP/1.1\r\nHost: web\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 431", 0), 0u) << out;
  // The agent still serves.
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' http://198.19.0.40/api/ok"), "200");
}

TEST_F(L7E2E, PipelinedRequestsAreAnsweredInOrder) {
  std::string out = raw(kWeb,
                        "GET /api/first HTTP/1.1\r\nHost: web\r\n\r\n"
                        "GET /api/second HTTP/1.1\r\nHost: web\r\n\r\n"
                        "GET /api/third HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
                        "pod=", 3);
  size_t a = out.find("target=/v1/first"), b = out.find("target=/v1/second"),
         c = out.find("target=/v1/third");
  ASSERT_NE(a, std::string::npos) << out;
  ASSERT_NE(b, std::string::npos) << out;
  ASSERT_NE(c, std::string::npos) << out;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

TEST_F(L7E2E, LargeChunkedUploadStreamsThrough) {
  // 8 MiB, chunked: more than the proxy's queues hold, so it must stream with backpressure.
  std::string out = sb_->runInPod(sb_->pod("client"), [] {
    return run("head -c 8388608 /dev/zero | curl -sS --max-time 20 -H 'Transfer-Encoding: "
               "chunked' --data-binary @- http://198.19.0.40/api/upload")
        .out;
  });
  EXPECT_NE(out.find("body-bytes=8388608"), std::string::npos) << out;
  EXPECT_NE(out.find("method=POST"), std::string::npos) << out;
}

TEST_F(L7E2E, UpgradeSwitchesTheConnectionToRawBytes) {
  std::string out = sb_->runInPod(sb_->pod("client"), [] {
    return exchange(kWeb, 80,
                    "GET /api/ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: "
                    "meshlet-echo\r\n\r\nhello-after-upgrade",
                    "hello-after-upgrade");
  });
  EXPECT_EQ(out.rfind("HTTP/1.1 101", 0), 0u) << out;
  EXPECT_NE(out.find("hello-after-upgrade"), std::string::npos) << out;
}

// A backend that keeps failing is ejected after consecutive5xxErrors and gets no more requests.
TEST_F(L7E2E, OutlierDetectionEjectsTheFailingBackend) {
  std::string out = curl("-o /dev/null -w '%{http_code}\\n' 'http://198.19.0.42/e[1-20]'");
  std::vector<std::string> codes;
  std::istringstream lines(out);
  for (std::string l; std::getline(lines, l);) codes.push_back(l);
  ASSERT_EQ(codes.size(), 20u) << out;
  // Round robin: bad, good, bad (second 503: ejected), then only the good one answers.
  EXPECT_GE(count(out, "503"), 1) << out;
  EXPECT_LE(count(out, "503"), 2) << out;
  for (size_t i = 4; i < codes.size(); ++i) EXPECT_EQ(codes[i], "200") << "request " << i;
  EXPECT_NE(run("cat " + dir_ + "/meshletd.log")
                .out.find("outlier detection ejected " + sb_->pod("flaky-bad").ip4 + ":8080"),
            std::string::npos);
}

// connectionPool: over http2MaxRequests a request is refused at once (503, flag UO); over
// maxConnections it waits for the connection in use.
TEST_F(L7E2E, ConnectionPoolLimitsOverflowOrQueue) {
  std::string out = curl(
      "-o /dev/null -w '%{http_code} %{time_total}\\n' http://198.19.0.43/delay/1500 & sleep 0.3; "
      "curl -sS -o /dev/null -w '%{http_code} %{time_total}\\n' http://198.19.0.43/delay/1500; "
      "wait");
  EXPECT_EQ(count(out, "200 "), 1) << out;
  EXPECT_EQ(count(out, "503 "), 1) << out;
  // Two at once through one connection: both answered, the second after the first.
  out = curl(
      "-o /dev/null -w '%{http_code} %{time_total}\\n' http://198.19.0.44/delay/800 & sleep 0.2; "
      "curl -sS -o /dev/null -w '%{http_code} %{time_total}\\n' http://198.19.0.44/delay/800; "
      "wait");
  EXPECT_EQ(count(out, "200 "), 2) << out;
  double longest = 0;
  std::istringstream lines(out);
  for (std::string code, t; lines >> code >> t;) longest = std::max(longest, std::stod(t));
  EXPECT_GE(longest, 1.35) << out;  // 800 ms waiting + 800 ms served, less the 200 ms head start
}

// Local rate limits: the service's bucket is taken first, then the route's; an empty one
// answers 429.
TEST_F(L7E2E, LocalRateLimitsAnswer429) {
  std::string out = curl("-o /dev/null -w '%{http_code} ' 'http://198.19.0.45/tight[1-4]'");
  EXPECT_EQ(out, "200 200 429 429 ");  // the route's 2 tokens (the service's: 5 - 4 = 1 left)
  out = curl("-o /dev/null -w '%{http_code} ' 'http://198.19.0.45/other[1-3]'");
  EXPECT_EQ(out, "200 429 429 ");
}

// AuthorizationPolicy with HTTP attributes, on the L7 path: methods and paths in an ALLOW,
// a header condition in a DENY; a denied request gets 403 "RBAC: access denied".
TEST_F(L7E2E, HttpAuthorizationPolicyAllowsAndDenies) {
  std::string out = curl("http://198.19.0.46/public/a");
  EXPECT_NE(out.find("pod=vault"), std::string::npos) << out;
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' -X POST http://198.19.0.46/public/a"), "403");
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' http://198.19.0.46/private"), "403");
  EXPECT_EQ(curl("http://198.19.0.46/private"), "RBAC: access denied");
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' -H 'x-block: yes' http://198.19.0.46/public/a"),
            "403");
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' -H 'x-block: no' http://198.19.0.46/public/a"),
            "200");
}

// Every request is counted in Istio's request metrics (a real scrape, checked by promtool)
// with its response code and flags, and written to the access log as one JSON line.
TEST_F(L7E2E, RequestsAreCountedAndLogged) {
  const std::string id = "e2e-metrics-" + sb_->id();
  EXPECT_EQ(
      curl("-o /dev/null -w '%{http_code}' -H 'x-request-id: " + id + "' http://198.19.0.40/api/m"),
      "200");
  EXPECT_EQ(curl("-o /dev/null -w '%{http_code}' http://198.19.0.40/nothing-here"), "404");
  auto status = Json::parse(run(cli("status -o json")).out, nullptr, false);
  ASSERT_TRUE(status.is_array() && !status.empty()) << status.dump();
  int port = status[0].value("metrics_port", 0);
  ASSERT_GT(port, 0);
  std::string metrics = run("curl -s http://127.0.0.1:" + std::to_string(port) + "/metrics").out;
  auto has = [&](const std::string& metric, const std::vector<std::string>& labels) {
    for (size_t p = metrics.find(metric + "{"); p != std::string::npos;
         p = metrics.find(metric + "{", p + 1)) {
      std::string line = metrics.substr(p, metrics.find('\n', p) - p);
      bool all = true;
      for (const auto& l : labels) all &= line.find(l) != std::string::npos;
      if (all) return true;
    }
    return false;
  };
  const std::string svc = "destination_service=\"web.shop.svc.cluster.local\"";
  EXPECT_TRUE(has(
      "istio_requests_total",
      {svc, "response_code=\"200\"", "response_flags=\"-\"", "reporter=\"source\"",
       "source_workload=\"client\"", "destination_workload=\"web\"", "request_protocol=\"http\""}))
      << metrics;
  EXPECT_TRUE(has("istio_requests_total", {svc, "response_code=\"404\"", "response_flags=\"NR\""}))
      << metrics;
  EXPECT_TRUE(has("istio_request_duration_milliseconds_bucket", {svc, "response_code=\"200\""}));
  EXPECT_TRUE(has("istio_response_bytes_sum", {svc}));
  EXPECT_TRUE(has("istio_request_bytes_count", {svc}));
  EXPECT_EQ(testing::promtoolProblems(port), "");

  // The access log line of the first request, found by its request id.
  Json line;
  waitFor(
      [&] {
        std::ifstream f(dir_ + "/access.log");
        std::string l;
        while (std::getline(f, l)) {
          if (l.find(id) != std::string::npos) line = Json::parse(l, nullptr, false);
        }
        return line.is_object();
      },
      3000);
  ASSERT_TRUE(line.is_object()) << run("tail -n 5 " + dir_ + "/access.log").out;
  EXPECT_EQ(line.value("method", ""), "GET");
  EXPECT_EQ(line.value("path", ""), "/api/m");
  EXPECT_EQ(line.value("response_code", 0), 200);
  EXPECT_EQ(line.value("route_name", ""), "api");
  EXPECT_EQ(line.value("upstream_cluster", ""), "outbound|80|v1|web.shop.svc.cluster.local");
  EXPECT_EQ(line.value("upstream_host", ""), sb_->pod("web-v1").ip4 + ":8080");
  EXPECT_EQ(line.value("trace_id", "").size(), 32u);
}

// An open connection on the L7 path is shown by `meshlet connections` with its path, pod and
// service, and the requests it carried.
TEST_F(L7E2E, OpenConnectionIsShownOnTheL7Path) {
  pid_t holder = sb_->spawnInPod(sb_->pod("client"), [] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    inet_pton(AF_INET, kWeb, &a.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return 1;
    std::string req = "GET /api/held HTTP/1.1\r\nHost: web\r\n\r\n";
    if (write(fd, req.data(), req.size()) < 0) return 1;
    sleep(30);
    return 0;
  });
  Json row;
  bool found = waitFor(
      [&] {
        auto j = Json::parse(run(cli("connections -o json")).out, nullptr, false);
        if (!j.is_array()) return false;
        for (const auto& r : j) {
          // The report is refreshed every 200 ms: other tests' sessions may still be listed.
          if (r.value("path", "") == "l7" && r.value("policy", "") == "1 requests" &&
              r.value("service", "") == "web.shop.svc.cluster.local") {
            row = r;
          }
        }
        return row.is_object();
      },
      5000);
  EXPECT_TRUE(found) << run(cli("connections")).out;
  if (found) {
    EXPECT_EQ(row.value("workload", ""), "shop/client");
    EXPECT_EQ(row.value("service", ""), "web.shop.svc.cluster.local");
    EXPECT_EQ(row.value("service_address", ""), std::string(kWeb) + ":80");
  }
  sb_->kill(holder);
}

TEST_F(L7E2E, RoutesCommandExplainsTheMatch) {
  // The routes of web in matching order, why the port is on the L7 path, and what each does.
  auto r = run(cli("routes shop/web"));
  ASSERT_EQ(r.code, 0) << r.out;
  size_t last = 0;
  for (const char* route :
       {"canary-header", "old-path", "api", "faulty", "slow", "delayed", "split"}) {
    size_t at = r.out.find(std::string(" ") + route + " ");
    EXPECT_NE(at, std::string::npos) << route << "\n" << r.out;
    EXPECT_GT(at, last) << route << "\n" << r.out;
    last = at;
  }
  for (const char* text :
       {"web.shop", "VirtualService shop/web", "header x-canary=yes", "uri prefix /api/",
        "redirect /new/place 301", "rewrite uri /v1/", "fault abort 418 100%", "timeout 300ms",
        "route web.shop.svc.cluster.local|v1 80%, web.shop.svc.cluster.local|v2 20%"}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;
  }
  EXPECT_EQ(r.out.find("flaky"), std::string::npos) << r.out;
  auto rows = Json::parse(run(cli("routes -o json")).out, nullptr, false);
  ASSERT_TRUE(rows.is_array()) << rows.dump();
  bool flaky = false;
  for (const auto& row : rows) {
    if (row.value("service", "") != "flaky.shop") continue;
    flaky = true;
    EXPECT_EQ(row.value("kind", ""), "route");
    EXPECT_NE(row.value("action", "").find("retries 3 on 5xx"), std::string::npos) << row.dump();
    EXPECT_EQ(row["endpoints"], Json::array({2})) << row.dump();
  }
  EXPECT_TRUE(flaky) << rows.dump(2);

  // /api/x takes api, after canary-header (no header) and old-path (another prefix).
  r = run(cli("routes --explain GET http://web.shop/api/x"));
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* text :
       {"Route:", " api\n", "uri prefix /api/", "canary-header",
        "header x-canary: absent (want exact \"yes\")", "old-path",
        "uri: \"/api/x\" is not prefix \"/old/\"", "web.shop.svc.cluster.local|v1"}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;
  }
  r = run(cli("routes --explain GET http://web.shop/api/x -H 'x-canary: yes' -o json"));
  EXPECT_EQ(r.code, 0) << r.out;
  auto j = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array() && j.size() == 1) << r.out;
  EXPECT_EQ(j[0].value("route", ""), "canary-header") << r.out;
  EXPECT_TRUE(j[0]["not_matched"].empty()) << r.out;
  // The cluster IP names the same service; nothing matches "/": 404, exit 1.
  r = run(cli("routes --explain GET http://198.19.0.40/"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no route: 404 NR"), std::string::npos) << r.out;
  // A usage error: exit 2.
  r = run(cli("routes --explain GET http://nothing.shop/"));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("no service nothing.shop.svc.cluster.local"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace meshlet
