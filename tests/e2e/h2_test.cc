// End-to-end: HTTP/2 (h2c) and gRPC on the L7 path. Pods in network namespaces, the real
// meshletd, real HTTP/2 servers in the backend pods (nghttpd, a python grpcio server) and real
// clients in the client pod (curl --http2-prior-knowledge, nghttp, a python grpcio client).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/lib/e2e_util.h"
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

constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-grpcio

std::string podYaml(const TestPod& p, const std::string& labels) {
  testing::PodYaml y;
  y.ns = "rpc";
  y.labels = labels;
  return testing::podYaml(p, y);
}

// web: nghttpd (h2c only) in two subsets, x-canary: yes routes to v2. greeter: a gRPC server,
// with a retry policy so that it is on the L7 path.
const char* kConfig = R"(apiVersion: v1
kind: Namespace
metadata:
  name: rpc
  labels: {istio.io/dataplane-mode: meshlet}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: rpc}
spec:
  clusterIP: 198.19.0.50
  selector: {app: web}
  ports: [{name: http2, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: rpc}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: rpc}
spec:
  hosts: [web]
  http:
  - name: canary
    match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: teapot
    match: [{uri: {exact: /teapot}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: web}}]
  - headers:
      response: {add: {x-served-by: meshlet}}
    route: [{destination: {host: web, subset: v1}}]
---
apiVersion: v1
kind: Service
metadata: {name: greeter, namespace: rpc}
spec:
  clusterIP: 198.19.0.51
  selector: {app: greeter}
  ports: [{name: grpc, port: 50051, targetPort: 50051}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter, namespace: rpc}
spec:
  hosts: [greeter]
  http:
  - name: stalled
    match: [{headers: {x-stall: {exact: "yes"}}}]
    fault: {delay: {fixedDelay: 20s, percentage: {value: 100}}}
    route: [{destination: {host: greeter}}]
  - retries: {attempts: 2, retryOn: connect-failure}
    route: [{destination: {host: greeter}}]
---
# patchy: an HTTP/2 port with two endpoints, web-v1 and a pod where nothing listens; round
# robin sends every other first attempt to the dead one, and Istio's default retry policy
# (connect-failure) takes the request to web-v1.
apiVersion: v1
kind: Service
metadata: {name: patchy, namespace: rpc}
spec:
  clusterIP: 198.19.0.52
  selector: {tier: patchy}
  ports: [{name: http2, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: patchy, namespace: rpc}
spec:
  host: patchy
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
)";

// A gRPC server without generated code: /test.Echo/Call answers "pod=<name> echo=<request>
// canary=<x-canary metadata>", or NOT_FOUND for the request "missing"; /test.Echo/Stream
// answers five messages.
const char* kGrpcServer = R"(import sys
from concurrent import futures
import grpc
port, name = sys.argv[1], sys.argv[2].encode()
def call(req, ctx):
    if req == b'missing':
        ctx.abort(grpc.StatusCode.NOT_FOUND, 'no such thing')
    md = dict(ctx.invocation_metadata())
    return b'pod=' + name + b' echo=' + req + b' canary=' + md.get('x-canary', '').encode()
def stream(req, ctx):
    for i in range(5):
        yield req + b'-' + str(i).encode()
class Handler(grpc.GenericRpcHandler):
    def service(self, details):
        if details.method == '/test.Echo/Call':
            return grpc.unary_unary_rpc_method_handler(call)
        if details.method == '/test.Echo/Stream':
            return grpc.unary_stream_rpc_method_handler(stream)
        return None
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((Handler(),))
server.add_insecure_port('0.0.0.0:' + port)
server.start()
server.wait_for_termination()
)";

// Prints "OK <response>" or "ERR <code number> <details>" for each call. Metadata "timeout=S"
// is the calls' deadline (default 5 s) and is not sent.
const char* kGrpcClient = R"(import sys
import grpc
target, kind, payload = sys.argv[1], sys.argv[2], sys.argv[3].encode()
big = payload.startswith(b'big:')
if big:
    payload = b'x' * int(payload[4:])
md = [tuple(kv.split('=', 1)) for kv in sys.argv[4:]]
timeout = float(dict(md).pop('timeout', 5))
md = [kv for kv in md if kv[0] != 'timeout']
with grpc.insecure_channel(target, options=[('grpc.enable_http_proxy', 0)]) as ch:
    try:
        if kind == 'stream':
            out = list(ch.unary_stream('/test.Echo/Stream')(payload, timeout=timeout, metadata=md))
            print('OK', b'|'.join(out).decode())
        else:
            for _ in range(int(kind)):
                out = ch.unary_unary('/test.Echo/Call')(payload, timeout=timeout,
                                                        metadata=md)
                print('OK', 'len=%d' % len(out) if big else out.decode())
    except grpc.RpcError as e:
        print('ERR', e.code().value[0], e.details())
)";

// Sends `bytes` on a raw connection and returns everything read until the peer closed (or 3 s).
std::string rawExchange(const std::string& ip, int port, const std::string& bytes, bool* closed) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  *closed = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return "";
  }
  send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return got;
}

// The HTTP/2 frame types in `bytes`, in order ("4" SETTINGS, "7" GOAWAY...); for a GOAWAY, its
// error code after a colon.
std::vector<std::string> frameTypes(const std::string& bytes) {
  std::vector<std::string> out;
  size_t p = 0;
  auto u8 = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])); };
  while (p + 9 <= bytes.size()) {
    uint32_t len = (u8(p) << 16) | (u8(p + 1) << 8) | u8(p + 2);
    uint32_t type = u8(p + 3);
    std::string t = std::to_string(type);
    if (type == 7 && p + 9 + 8 <= bytes.size()) {
      size_t e = p + 9 + 4;
      t += ":" + std::to_string((u8(e) << 24) | (u8(e + 1) << 16) | (u8(e + 2) << 8) | u8(e + 3));
    }
    out.push_back(t);
    p += 9 + len;
  }
  return out;
}

class H2E2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reason_ = testing::kernelTestsUnavailable();
    for (const char* tool : {"curl", "nghttp", "nghttpd"}) {
      if (reason_.empty() && run(std::string("command -v ") + tool).code != 0) {
        reason_ = std::string(tool) + " missing (tools/install-deps.sh)";
      }
    }
    if (reason_.empty() && run(std::string(kPython) + " -c 'import grpc'").code != 0) {
      reason_ = "python3-grpcio missing (tools/install-deps.sh)";
    }
    if (!reason_.empty()) return;
    sb_ = new Sandbox();
    dir_ = "/tmp/meshlet-test-h2-" + sb_->id();
    fs::create_directories(dir_ + "/config");
    writeFile(dir_ + "/grpc_server.py", kGrpcServer);
    writeFile(dir_ + "/grpc_client.py", kGrpcClient);
    sb_->addPod("client");
    for (const char* name : {"web-v1", "web-v2"}) {
      sb_->addPod(name);
      std::string docs = dir_ + "/" + name;
      fs::create_directories(docs);
      writeFile(docs + "/who", std::string("pod=") + name + "\n");
      writeFile(docs + "/big", std::string(1 << 20, 'x'));
      sb_->execInPod(sb_->pod(name), {"nghttpd", "--no-tls", "-d", docs, "8080"},
                     dir_ + "/" + name + ".log");
    }
    sb_->addPod("dead");  // nothing listens there
    sb_->addPod("greeter");
    sb_->execInPod(sb_->pod("greeter"), {kPython, dir_ + "/grpc_server.py", "50051", "greeter"},
                   dir_ + "/greeter.log");
    writeFile(dir_ + "/config/00-config.yaml", kConfig);
    writeFile(dir_ + "/config/10-pods.yaml",
              podYaml(sb_->pod("client"), "{app: client}") + "---\n" +
                  podYaml(sb_->pod("web-v1"), "{app: web, version: v1, tier: patchy}") + "---\n" +
                  podYaml(sb_->pod("dead"), "{tier: patchy}") + "---\n" +
                  podYaml(sb_->pod("web-v2"), "{app: web, version: v2}") + "---\n" +
                  podYaml(sb_->pod("greeter"), "{app: greeter}"));
    agent_pid_ = testing::spawnAgent(MESHLETD_BIN, dir_, sb_->cgroup(), sb_->bpffs(), {});
    bool up = waitFor(
        [] {
          auto r = run(cli("status -o json"));
          auto j = Json::parse(r.out, nullptr, false);
          return r.code == 0 && j.is_array() && !j.empty() && j[0].value("generation", 0) >= 1;
        },
        10000);
    if (!up) ADD_FAILURE() << "agent did not come up: " << run("cat " + dir_ + "/meshletd.log").out;
    // The agent's listeners in the client pod are open (and the servers up) once answered.
    waitFor([] { return curl("-o /dev/null -w '%{http_code}' http://198.19.0.50/who") == "200"; },
            10000);
    waitFor([] { return grpc("1", "ready").rfind("OK", 0) == 0; }, 10000);
  }
  static void TearDownTestSuite() {
    testing::stopAgent(agent_pid_);
    if (sb_) run(std::string(MESHLETD_BIN) + " --uninstall --bpffs " + sb_->bpffs());
    delete sb_;  // the servers (by PID), the pods
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
  static std::string inClient(const std::string& cmd) {
    return sb_->runInPod(sb_->pod("client"), [cmd] { return run(cmd).out; });
  }
  // curl in the client pod (HTTP/1.1 unless args say otherwise); its stdout.
  static std::string curl(const std::string& args) {
    return inClient("curl -sS --max-time 5 " + args);
  }
  static std::string h2curl(const std::string& args) {
    return curl("--http2-prior-knowledge " + args);
  }
  // `kind`: a number of unary calls, or "stream".
  static std::string grpc(const std::string& kind, const std::string& payload,
                          const std::string& metadata = "") {
    return inClient(std::string(kPython) + " " + dir_ + "/grpc_client.py 198.19.0.51:50051 " +
                    kind + " " + payload + " " + metadata + " 2>&1");
  }
  static std::string metrics() {
    auto status = Json::parse(run(cli("status -o json")).out, nullptr, false);
    if (!status.is_array() || status.empty()) return "";
    int port = status[0].value("metrics_port", 0);
    return run("curl -s http://127.0.0.1:" + std::to_string(port) + "/metrics").out;
  }

  static inline Sandbox* sb_ = nullptr;
  static inline std::string dir_;
  static inline std::string reason_;
  static inline pid_t agent_pid_ = -1;
};

TEST_F(H2E2E, H2cRequestsAreRoutedLikeHttp1) {
  // Prior knowledge: HTTP/2 all the way; the route's response header is added.
  std::string out = h2curl("-i http://198.19.0.50/who");
  EXPECT_EQ(out.rfind("HTTP/2 200", 0), 0u) << out;
  EXPECT_NE(out.find("pod=web-v1"), std::string::npos) << out;
  EXPECT_NE(out.find("x-served-by: meshlet"), std::string::npos) << out;
  EXPECT_NE(out.find("content-length: 11"), std::string::npos) << out;
  EXPECT_EQ(out.find("x-meshlet-downstream-h2"), std::string::npos) << out;
  // A header match sends every request to v2. (One curl per request: curl 7.88.1 fails to reuse
  // an h2c prior-knowledge connection, against nghttpd directly too.)
  out = inClient(
      "for i in 1 2 3 4 5; do curl -sS --max-time 5 --http2-prior-knowledge -H 'x-canary: yes' "
      "http://198.19.0.50/who?$i; done");
  EXPECT_EQ(count(out, "pod=web-v2"), 5) << out;
  // A local answer (fault abort) goes back over HTTP/2 too.
  EXPECT_EQ(h2curl("-o /dev/null -w '%{http_version} %{http_code}' http://198.19.0.50/teapot"),
            "2 418");
  // A 1 MiB body streams through intact (flow control both ways on the bridge).
  EXPECT_EQ(h2curl("-o /dev/null -w '%{http_code} %{size_download}' http://198.19.0.50/big"),
            "200 1048576");
  // An HTTP/1.1 client is still answered over HTTP/1.1, and one asking to upgrade to h2c is
  // served without the upgrade.
  EXPECT_EQ(curl("-o /dev/null -w '%{http_version} %{http_code}' http://198.19.0.50/who"),
            "1.1 200");
  EXPECT_EQ(curl("--http2 -o /dev/null -w '%{http_version} %{http_code}' "
                 "http://198.19.0.50/who"),
            "1.1 200");
  // (nghttpd speaks HTTP/2 only: the port's name, http2, makes the upstream HTTP/2 for them.)
}

TEST_F(H2E2E, ConcurrentStreamsOnOneConnectionAreAllAnswered) {
  // nghttp: 20 requests as concurrent streams of one connection; its statistics list each
  // stream's status and path.
  std::string out = inClient("nghttp -n -s -m 20 http://198.19.0.50/who 2>&1");
  EXPECT_EQ(count(out, " 200 "), 20) << out;
  EXPECT_EQ(count(out, " /who"), 20) << out;
  // Different subsets on streams of one connection.
  out = inClient("nghttp -H 'x-canary: yes' http://198.19.0.50/who http://198.19.0.50/who?2 2>&1");
  EXPECT_EQ(count(out, "pod=web-v2"), 2) << out;
  // h2load: 2000 requests, 4 connections, up to 25 streams in flight on each.
  out = inClient("h2load -n 2000 -c 4 -m 25 http://198.19.0.50/who 2>&1");
  EXPECT_NE(out.find("2000 succeeded, 0 failed, 0 errored"), std::string::npos) << out;
  EXPECT_NE(out.find("status codes: 2000 2xx"), std::string::npos) << out;
  // curl: 30 connections at once, one stream each (see above for why not multiplexed).
  out = h2curl(
      "-Z --parallel-immediate --parallel-max 30 -o /dev/null -w '%{http_code}\\n' "
      "'http://198.19.0.50/who?[1-30]'");
  EXPECT_EQ(count(out, "200\n"), 30) << out;
}

TEST_F(H2E2E, GrpcCallsStatusesAndMetrics) {
  std::string out = grpc("3", "hello", "x-canary=yes");
  EXPECT_EQ(count(out, "OK pod=greeter echo=hello canary=yes"), 3) << out;
  // 2 MiB each way through both bridges (flow control, chunked request body, DATA frames).
  out = grpc("1", "big:2097152");
  EXPECT_EQ(out, "OK len=" + std::to_string(2097152 + 25) + "\n") << out;
  out = grpc("stream", "s");
  EXPECT_EQ(out, "OK s-0|s-1|s-2|s-3|s-4\n") << out;
  // An error status arrives as it was sent (trailers-only response through both bridges).
  out = grpc("1", "missing");
  EXPECT_EQ(out, "ERR 5 no such thing\n") << out;
  std::string m;
  auto has = [&](const std::vector<std::string>& labels) {
    for (size_t p = m.find("istio_requests_total{"); p != std::string::npos;
         p = m.find("istio_requests_total{", p + 1)) {
      std::string line = m.substr(p, m.find('\n', p) - p);
      bool all = true;
      for (const auto& l : labels) all &= line.find(l) != std::string::npos;
      if (all) return true;
    }
    return false;
  };
  const std::string svc = "destination_service=\"greeter.rpc.svc.cluster.local\"";
  EXPECT_TRUE(waitFor(
      [&] {
        m = metrics();
        return has({svc, "request_protocol=\"grpc\"", "grpc_response_status=\"5\"",
                    "response_code=\"200\""}) &&
               has({svc, "request_protocol=\"grpc\"", "grpc_response_status=\"0\""});
      },
      3000))
      << m;
  // h2 without gRPC counts as "http".
  EXPECT_TRUE(has({"destination_service=\"web.rpc.svc.cluster.local\"", "request_protocol=\"http\"",
                   "response_code=\"200\""}))
      << m;
}

// A client that gives up on a stream (gRPC's deadline: RST_STREAM CANCEL) cancels the request in
// the agent at once: here it waits in a 20 s fault delay, and its record (no response, DC) comes
// when the client leaves, not when the delay ends.
TEST_F(H2E2E, StreamResetByTheClientCancelsTheRequest) {
  std::string out = grpc("1", "hello", "x-stall=yes timeout=1");
  EXPECT_EQ(out.rfind("ERR 4 ", 0), 0u) << out;  // DEADLINE_EXCEEDED
  std::string m;
  EXPECT_TRUE(waitFor(
      [&] {
        m = metrics();
        for (size_t p = m.find("istio_requests_total{"); p != std::string::npos;
             p = m.find("istio_requests_total{", p + 1)) {
          std::string line = m.substr(p, m.find('\n', p) - p);
          if (line.find("destination_service_name=\"greeter\"") != std::string::npos &&
              line.find("response_flags=\"DI,DC\"") != std::string::npos &&
              line.find("response_code=\"0\"") != std::string::npos) {
            return true;
          }
        }
        return false;
      },
      3000))
      << m;
}

// The pool tells the session when an HTTP/2 upstream could not be reached, so the connect-failure
// retry applies as for HTTP/1.1 (before, the session saw its socket pair close: UC, no retry).
TEST_F(H2E2E, ConnectFailureToAnH2UpstreamIsRetriedElsewhere) {
  // Round robin over two endpoints: half the first attempts go to the dead one. One connection
  // per request (curl 7.88 fails reusing a prior-knowledge h2 connection for a URL glob, even
  // straight to nghttpd).
  auto ten = [](const std::string& flags) {
    return inClient("for i in 1 2 3 4 5 6 7 8 9 10; do curl -sS --max-time 5 " + flags +
                    " -w '%{http_code}\\n' http://198.19.0.52/who?$i; done 2>&1");
  };
  std::string h2 = ten("--http2-prior-knowledge");
  EXPECT_EQ(count(h2, "pod=web-v1\n200"), 10) << h2;
  std::string h1 = ten("");
  EXPECT_EQ(count(h1, "pod=web-v1\n200"), 10) << h1;
}

TEST_F(H2E2E, MalformedH2GetsGoawayAndTheAgentKeepsServing) {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::string got = sb_->runInPod(sb_->pod("client"), [&] {
    bool closed = false;
    std::string r =
        rawExchange("198.19.0.50", 80, preface + "this is not an HTTP/2 frame", &closed);
    return (closed ? "C" : "O") + r;
  });
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got[0], 'C');  // the agent closed the connection
  std::vector<std::string> types = frameTypes(got.substr(1));
  std::string all;
  for (const auto& t : types) all += t + " ";
  // SETTINGS, then GOAWAY with an error code (PROTOCOL_ERROR 1 or FRAME_SIZE_ERROR 6).
  bool goaway = false;
  for (const auto& t : types) goaway |= t == "7:1" || t == "7:6";
  EXPECT_TRUE(goaway) << all;
  // A truncated preface followed by a close: no answer, no crash.
  sb_->runInPod(sb_->pod("client"), [&] {
    bool c = false;
    return rawExchange("198.19.0.50", 80, preface.substr(0, 10), &c);
  });
  EXPECT_EQ(h2curl("-o /dev/null -w '%{http_code}' http://198.19.0.50/who"), "200");
  EXPECT_EQ(grpc("1", "after").rfind("OK", 0), 0u);
}

}  // namespace
}  // namespace meshlet
