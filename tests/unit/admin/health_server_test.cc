#include "agent/admin/health_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace meshlet {
namespace {

// ---- the pure request handling ----

struct Case {
  const char* name;
  std::string request;
  int code;
};

TEST(HealthRequestTest, AnswersByMethodPathAndState) {
  const std::vector<Case> cases = {
      {"get, HTTP/1.1", "GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n", 200},
      {"get, HTTP/1.0, no headers", "GET /healthz/ready HTTP/1.0\r\n\r\n", 200},
      {"bare LF line ends", "GET /healthz/ready HTTP/1.1\nHost: x\n\n", 200},
      {"kubelet's probe",
       "GET /healthz/ready HTTP/1.1\r\nHost: 198.18.0.1:15021\r\n"
       "User-Agent: kube-probe/1.31\r\nAccept: */*\r\nConnection: close\r\n\r\n",
       200},
      {"query string", "GET /healthz/ready?verbose=1 HTTP/1.1\r\n\r\n", 200},
      {"empty line before the request line", "\r\nGET /healthz/ready HTTP/1.1\r\n\r\n", 200},
      {"a body after the head is ignored",
       "GET /healthz/ready HTTP/1.1\r\nContent-Length: 3\r\n\r\nx y", 200},
      {"head", "HEAD /healthz/ready HTTP/1.1\r\n\r\n", 200},
      {"other path", "GET /metrics HTTP/1.1\r\n\r\n", 404},
      {"prefix of the path", "GET /healthz HTTP/1.1\r\n\r\n", 404},
      {"longer path", "GET /healthz/ready/x HTTP/1.1\r\n\r\n", 404},
      {"post", "POST /healthz/ready HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405},
      {"garbage", "hello\r\n\r\n", 400},
      {"empty", "\r\n\r\n", 400},
      {"no version", "GET /healthz/ready\r\n\r\n", 400},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
      {"HTTP/0.9-style version", "GET /healthz/ready HTTP/0.9\r\n\r\n", 400},
      {"not a path", "GET healthz/ready HTTP/1.1\r\n\r\n", 400},
      {"space in the target", "GET /healthz /ready HTTP/1.1\r\n\r\n", 400},
      {"double space", "GET  /healthz/ready HTTP/1.1\r\n\r\n", 400},
      {"control byte in the method", std::string("G\x01T /healthz/ready HTTP/1.1\r\n\r\n"), 400},
      {"control byte in the target", std::string("GET /healthz\x7f HTTP/1.1\r\n\r\n"), 400},
      {"header without a colon", "GET /healthz/ready HTTP/1.1\r\nHost x\r\n\r\n", 400},
      {"header with a space in its name", "GET /healthz/ready HTTP/1.1\r\nHo st: x\r\n\r\n", 400},
      {"tls client hello", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n", 13),
       400},
  };
  for (const auto& c : cases) {
    HealthReply r = answerHealthRequest(c.request, true, "");
    EXPECT_EQ(r.code, c.code) << c.name << ": " << r.body;
  }
}

TEST(HealthRequestTest, ReadyAndNotReadyBodies) {
  const std::string get = "GET /healthz/ready HTTP/1.1\r\n\r\n";
  HealthReply ready = answerHealthRequest(get, true, "");
  EXPECT_EQ(ready.code, 200);
  EXPECT_EQ(ready.body, "ready\n");
  HealthReply not_ready = answerHealthRequest(get, false, "no configuration applied yet");
  EXPECT_EQ(not_ready.code, 503);
  EXPECT_EQ(not_ready.body, "not ready: no configuration applied yet\n");
  // Unknown paths say where the endpoint is; a wrong path is 404 whatever the state.
  HealthReply other = answerHealthRequest("GET /x HTTP/1.1\r\n\r\n", false, "r");
  EXPECT_EQ(other.code, 404);
  EXPECT_NE(other.body.find("/healthz/ready"), std::string::npos);
}

TEST(HealthRequestTest, ReplyIsWellFormedHttp) {
  std::string wire = formatHealthReply({503, "not ready: x\n"});
  EXPECT_EQ(wire.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << wire;
  EXPECT_NE(wire.find("Content-Length: 13\r\n"), std::string::npos) << wire;
  EXPECT_NE(wire.find("Connection: close\r\n"), std::string::npos) << wire;
  EXPECT_EQ(wire.substr(wire.size() - 17), "\r\n\r\nnot ready: x\n");
  // HEAD: the same headers (Content-Length of the body it would have sent), no body.
  HealthReply head = answerHealthRequest("HEAD /healthz/ready HTTP/1.1\r\n\r\n", true, "");
  std::string head_wire = formatHealthReply(head);
  EXPECT_NE(head_wire.find("Content-Length: 6\r\n"), std::string::npos);
  EXPECT_EQ(head_wire.substr(head_wire.size() - 4), "\r\n\r\n");
  EXPECT_NE(formatHealthReply({405, "m\n"}).find("Allow: GET, HEAD\r\n"), std::string::npos);
}

TEST(HealthRequestTest, HeadStateIsBounded) {
  EXPECT_EQ(requestHeadState(""), HeadState::kIncomplete);
  EXPECT_EQ(requestHeadState("GET /healthz/ready HTTP/1.1\r\nHost: x\r\n"), HeadState::kIncomplete);
  EXPECT_EQ(requestHeadState("GET /healthz/ready HTTP/1.1\r\n\r\n"), HeadState::kComplete);
  EXPECT_EQ(requestHeadState("GET / HTTP/1.0\n\n"), HeadState::kComplete);
  std::string big =
      "GET /healthz/ready HTTP/1.1\r\nX-Pad: " + std::string(kHealthMaxRequestBytes, 'a');
  EXPECT_EQ(requestHeadState(big), HeadState::kTooLarge);
  EXPECT_EQ(requestHeadState(big + "\r\n\r\n"), HeadState::kTooLarge);
}

// ---- the server, over real sockets ----

int connectTo(int port, int family = AF_INET) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int rc;
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    a.sin6_addr = in6addr_loopback;
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  if (rc != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until the server closes or `timeout_ms` passes.
std::string readAll(int fd, int timeout_ms = 3000) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return out + "<timeout>";
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// One request on a fresh connection; the whole answer (or "<connect failed>").
std::string exchange(int port, const std::string& request, int family = AF_INET) {
  int fd = connectTo(port, family);
  if (fd < 0) return "<connect failed>";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out = readAll(fd);
  close(fd);
  return out;
}

int statusCode(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return -1;
  return std::stoi(response.substr(9, 3));
}

std::string body(const std::string& response) {
  auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

const char* kProbe = "GET /healthz/ready HTTP/1.1\r\nHost: localhost\r\n\r\n";

class HealthServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = server_.start("127.0.0.1:0");
    ASSERT_TRUE(st.ok()) << st.error().message();
    ASSERT_GT(server_.port(), 0);
  }
  HealthServer server_;
};

TEST_F(HealthServerTest, NotReadyUntilToldThenReadyThenNotReadyAgain) {
  std::string r = exchange(server_.port(), kProbe);
  EXPECT_EQ(statusCode(r), 503) << r;
  EXPECT_EQ(body(r), "not ready: the agent is starting\n");
  server_.setNotReady("no configuration applied yet");
  r = exchange(server_.port(), kProbe);
  EXPECT_EQ(statusCode(r), 503) << r;
  EXPECT_EQ(body(r), "not ready: no configuration applied yet\n");
  server_.setReady();
  EXPECT_TRUE(server_.ready());
  r = exchange(server_.port(), kProbe);
  EXPECT_EQ(statusCode(r), 200) << r;
  EXPECT_EQ(body(r), "ready\n");
  server_.setNotReady("the agent is stopping");
  EXPECT_EQ(statusCode(exchange(server_.port(), kProbe)), 503);
}

TEST_F(HealthServerTest, OtherPathsMethodsAndMalformedRequests) {
  server_.setReady();
  EXPECT_EQ(statusCode(exchange(server_.port(), "GET /metrics HTTP/1.1\r\n\r\n")), 404);
  EXPECT_EQ(statusCode(exchange(server_.port(), "DELETE /healthz/ready HTTP/1.1\r\n\r\n")), 405);
  EXPECT_EQ(statusCode(exchange(server_.port(), "GARBAGE\r\n\r\n")), 400);
  EXPECT_EQ(statusCode(exchange(server_.port(), std::string("\0\0\0\0\n\n", 6))), 400);
  // A head that never ends within the bound is refused, not buffered forever.
  std::string huge = "GET /healthz/ready HTTP/1.1\r\nX: " + std::string(64 * 1024, 'a');
  EXPECT_EQ(statusCode(exchange(server_.port(), huge)), 431);
  // The server is still fine after all that.
  EXPECT_EQ(statusCode(exchange(server_.port(), kProbe)), 200);
}

TEST_F(HealthServerTest, RequestSentByteByByteIsAnswered) {
  server_.setReady();
  int fd = connectTo(server_.port());
  ASSERT_GE(fd, 0);
  for (const char* p = kProbe; *p; ++p) {
    ASSERT_EQ(send(fd, p, 1, MSG_NOSIGNAL), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string r = readAll(fd);
  close(fd);
  EXPECT_EQ(statusCode(r), 200) << r;
}

TEST_F(HealthServerTest, IdleAndHalfSentClientsDoNotBlockAProbe) {
  server_.setReady();
  // Far more silent connections than the server keeps, plus one that sends half a request and
  // one that hangs up mid-request.
  std::vector<int> idle;
  for (int i = 0; i < 40; ++i) {
    int fd = connectTo(server_.port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  int half = connectTo(server_.port());
  ASSERT_GE(half, 0);
  send(half, "GET /healthz/re", 15, MSG_NOSIGNAL);
  int gone = connectTo(server_.port());
  ASSERT_GE(gone, 0);
  send(gone, "GET /he", 7, MSG_NOSIGNAL);
  close(gone);

  auto t0 = std::chrono::steady_clock::now();
  std::string r = exchange(server_.port(), kProbe);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(statusCode(r), 200) << r;
  EXPECT_LT(ms, 1000) << "a probe waited behind idle connections";
  for (int fd : idle) close(fd);
  close(half);
}

TEST_F(HealthServerTest, SilentClientIsDroppedAfterTheDeadline) {
  int fd = connectTo(server_.port());
  ASSERT_GE(fd, 0);
  auto t0 = std::chrono::steady_clock::now();
  std::string r = readAll(fd, 10000);
  auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0)
               .count();
  close(fd);
  EXPECT_EQ(r, "");  // closed without an answer, not left open
  EXPECT_LE(s, 7);
}

TEST_F(HealthServerTest, StopClosesThePort) {
  int port = server_.port();
  server_.stop();
  server_.stop();  // twice is fine
  EXPECT_EQ(exchange(port, kProbe), "<connect failed>");
}

TEST(HealthServerStartTest, RejectsBadAddressesAndABusyPort) {
  HealthServer a;
  EXPECT_FALSE(a.start("no-port").ok());
  HealthServer b;
  EXPECT_FALSE(b.start("127.0.0.1:notaport").ok());
  HealthServer c;
  EXPECT_FALSE(c.start("198.18.0.0.1:0").ok());  // hosts are numeric addresses

  HealthServer first;
  ASSERT_TRUE(first.start("127.0.0.1:0").ok());
  HealthServer second;
  auto st = second.start("127.0.0.1:" + std::to_string(first.port()));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("Address already in use"), std::string::npos)
      << st.error().message();
}

TEST(HealthServerStartTest, ServesOnIpv6Loopback) {
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  if (probe < 0) GTEST_SKIP() << "no IPv6 here";
  close(probe);
  HealthServer s;
  auto st = s.start("[::1]:0");
  if (!st.ok()) GTEST_SKIP() << "cannot bind [::1]: " << st.error().message();
  s.setReady();
  EXPECT_EQ(statusCode(exchange(s.port(), kProbe, AF_INET6)), 200);
}

}  // namespace
}  // namespace meshlet
