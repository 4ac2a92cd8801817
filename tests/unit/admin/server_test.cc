#include "agent/admin/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace meshlet {
namespace {

// ---- parseAdminRequest ----

TEST(AdminParseRequestTest, RequestLineWithoutQuery) {
  auto r = parseAdminRequest("GET /v1/status HTTP/1.0\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->method, "GET");
  EXPECT_EQ(r->path, "/v1/status");
  EXPECT_TRUE(r->query.empty());
}

TEST(AdminParseRequestTest, OnlyTheRequestLineMatters) {
  // No CRLF at all, HTTP/1.1, other method: still a request line.
  auto r = parseAdminRequest("POST /v1/services HTTP/1.1");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->path, "/v1/services");
  // Garbage headers after the request line are ignored.
  auto h = parseAdminRequest("GET /v1/workloads HTTP/1.0\r\n\x01\x02 nonsense\r\n\r\n");
  ASSERT_TRUE(h.ok()) << h.error().message();
  EXPECT_EQ(h->path, "/v1/workloads");
}

TEST(AdminParseRequestTest, DecodesQuery) {
  auto r = parseAdminRequest(
      "GET /v1/endpoints?service=demo%2Fweb&who=a+b&lower=x%2fy&flag&na%6De=v HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->path, "/v1/endpoints");
  EXPECT_EQ(r->query.size(), 5u);
  EXPECT_EQ(r->query.at("service"), "demo/web");
  EXPECT_EQ(r->query.at("who"), "a b");
  EXPECT_EQ(r->query.at("lower"), "x/y");
  EXPECT_EQ(r->query.at("flag"), "");
  EXPECT_EQ(r->query.at("name"), "v");  // keys are decoded too
}

TEST(AdminParseRequestTest, QueryEdgeCases) {
  auto r = parseAdminRequest("GET /v1/endpoints?&&a=1&&b=%41%2&c=%zz&d=50%& HTTP/1.0\r\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->query.size(), 4u);
  EXPECT_EQ(r->query.at("a"), "1");
  EXPECT_EQ(r->query.at("b"), "A%2");  // a truncated escape stays literal
  EXPECT_EQ(r->query.at("c"), "%zz");  // so does a non-hex one
  EXPECT_EQ(r->query.at("d"), "50%");
  // An empty query string.
  auto e = parseAdminRequest("GET /v1/endpoints? HTTP/1.0\r\n");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->path, "/v1/endpoints");
  EXPECT_TRUE(e->query.empty());
  // A repeated key: the last one wins.
  auto d = parseAdminRequest("GET /v1/endpoints?service=a%2Fb&service=c%2Fd HTTP/1.0\r\n");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->query.at("service"), "c/d");
}

TEST(AdminParseRequestTest, RejectsMissingHttpVersion) {
  EXPECT_FALSE(parseAdminRequest("GET /v1/status\r\n\r\n").ok());
  EXPECT_FALSE(parseAdminRequest("GET /v1/status \r\n\r\n").ok());
  EXPECT_FALSE(parseAdminRequest("GET /v1/status FTP/1.0\r\n\r\n").ok());
  EXPECT_FALSE(parseAdminRequest("GET /v1/status http/1.0\r\n\r\n").ok());
}

TEST(AdminParseRequestTest, RejectsTargetThatIsNotAPath) {
  auto abs = parseAdminRequest("GET http://node/v1/status HTTP/1.0\r\n\r\n");
  ASSERT_FALSE(abs.ok());
  EXPECT_NE(abs.error().message().find("path"), std::string::npos) << abs.error().message();
  EXPECT_FALSE(parseAdminRequest("OPTIONS * HTTP/1.0\r\n\r\n").ok());
  EXPECT_FALSE(parseAdminRequest("GET v1/status HTTP/1.0\r\n\r\n").ok());
  EXPECT_FALSE(parseAdminRequest("GET  HTTP/1.0\r\n\r\n").ok());  // empty target
}

TEST(AdminParseRequestTest, RejectsGarbageAndEmpty) {
  auto g = parseAdminRequest("\x16\x03\x01\x02\x00garbage");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message().find("malformed"), std::string::npos) << g.error().message();
  EXPECT_FALSE(parseAdminRequest("").ok());
  EXPECT_FALSE(parseAdminRequest("\r\n\r\n").ok());
  EXPECT_FALSE(parseAdminRequest("GET").ok());
  EXPECT_FALSE(parseAdminRequest(std::string(10000, 'A')).ok());
}

// ---- AdminServer over a real unix socket ----

struct HttpReply {
  int code = 0;
  std::string status_line;
  std::string headers;
  std::string body;
  long content_length = -1;
};

int connectTo(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Sends `raw`, half-closes, reads the answer to EOF.
HttpReply roundTrip(const std::string& path, const std::string& raw) {
  HttpReply r;
  int fd = connectTo(path);
  if (fd < 0) {
    ADD_FAILURE() << "connect " << path << ": " << std::strerror(errno);
    return r;
  }
  size_t off = 0;
  while (off < raw.size()) {
    ssize_t n = ::send(fd, raw.data() + off, raw.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += n;
  }
  ::shutdown(fd, SHUT_WR);
  std::string all;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    all.append(buf, n);
  }
  ::close(fd);
  auto head_end = all.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    ADD_FAILURE() << "no header terminator in reply: " << all;
    return r;
  }
  std::string head = all.substr(0, head_end);
  r.body = all.substr(head_end + 4);
  auto eol = head.find("\r\n");
  r.status_line = head.substr(0, eol);
  r.headers = eol == std::string::npos ? "" : head.substr(eol + 2);
  if (r.status_line.rfind("HTTP/1.0 ", 0) == 0) r.code = std::atoi(r.status_line.c_str() + 9);
  auto cl = r.headers.find("Content-Length: ");
  if (cl != std::string::npos) r.content_length = std::atol(r.headers.c_str() + cl + 16);
  return r;
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = "/tmp/meshlet-test-admin-" + std::to_string(::getpid());
    ::unlink(path_.c_str());
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  // Answers /v1/status and echoes the query of /v1/echo; 404 otherwise.
  AdminHandler handler() {
    return [this](const AdminRequest& req) -> AdminResponse {
      calls_++;
      if (req.path == "/v1/status") return {200, R"({"node_name":"node-a","generation":3})"};
      if (req.path == "/v1/echo") return {200, nlohmann::json(req.query).dump()};
      if (req.path == "/v1/boom") throw std::runtime_error("boom");
      return {404, R"({"error":"no such path"})"};
    };
  }

  std::string path_;
  std::atomic<int> calls_{0};
};

TEST_F(AdminServerTest, GetKnownPathAnswers200Json) {
  AdminServer server(handler());
  ASSERT_TRUE(server.start(path_).ok());
  HttpReply r = roundTrip(path_, "GET /v1/status HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.status_line, "HTTP/1.0 200 OK");
  EXPECT_NE(r.headers.find("Content-Type: application/json"), std::string::npos) << r.headers;
  EXPECT_EQ(r.content_length, static_cast<long>(r.body.size()));
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["node_name"], "node-a");
  EXPECT_EQ(j["generation"], 3);
  EXPECT_EQ(calls_.load(), 1);
}

TEST_F(AdminServerTest, HandlerSeesDecodedQuery) {
  AdminServer server(handler());
  ASSERT_TRUE(server.start(path_).ok());
  HttpReply r = roundTrip(path_, "GET /v1/echo?service=demo%2Fweb&x=a+b HTTP/1.0\r\n\r\n");
  ASSERT_EQ(r.code, 200);
  EXPECT_EQ(r.content_length, static_cast<long>(r.body.size()));
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["service"], "demo/web");
  EXPECT_EQ(j["x"], "a b");
}

TEST_F(AdminServerTest, ServesOneRequestPerConnectionRepeatedly) {
  AdminServer server(handler());
  ASSERT_TRUE(server.start(path_).ok());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(roundTrip(path_, "GET /v1/status HTTP/1.0\r\n\r\n").code, 200);
  }
  HttpReply nf = roundTrip(path_, "GET /v1/nope HTTP/1.0\r\n\r\n");
  EXPECT_EQ(nf.status_line, "HTTP/1.0 404 Not Found");
  EXPECT_EQ(calls_.load(), 6);
}

TEST_F(AdminServerTest, PostIsMethodNotAllowed) {
  AdminServer server(handler());
  ASSERT_TRUE(server.start(path_).ok());
  HttpReply r = roundTrip(path_, "POST /v1/status HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.status_line, "HTTP/1.0 405 Method Not Allowed");
  EXPECT_EQ(r.content_length, static_cast<long>(r.body.size()));
  auto j = nlohmann::json::parse(r.body);
  EXPECT_TRUE(j.contains("error"));
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(AdminServerTest, GarbageIsBadRequest) {
  AdminServer server(handler());
  ASSERT_TRUE(server.start(path_).ok());
  HttpReply r = roundTrip(path_, "\x16\x03\x01 not http at all");
  EXPECT_EQ(r.status_line, "HTTP/1.0 400 Bad Request");
  EXPECT_EQ(r.content_length, static_cast<long>(r.body.size()));
  auto j = nlohmann::json::parse(r.body);
  ASSERT_TRUE(j.contains("error"));
  EXPECT_TRUE(j["error"].is_string());
  // An empty request (client connects and closes) is also a 400, and the server survives it.
  EXPECT_EQ(roundTrip(path_, "").code, 400);
  EXPECT_EQ(roundTrip(path_, "GET http://x/v1/status HTTP/1.0\r\n\r\n").code, 400);
  EXPECT_EQ(calls_.load(), 0);
  EXPECT_EQ(roundTrip(path_, "GET /v1/status HTTP/1.0\r\n\r\n").code, 200);
}

TEST_F(AdminServerTest, HandlerExceptionIsInternalError) {
  AdminServer server(handler());
  ASSERT_TRUE(server.start(path_).ok());
  HttpReply r = roundTrip(path_, "GET /v1/boom HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.code, 500);
  EXPECT_EQ(r.status_line, "HTTP/1.0 500 Internal Server Error");
  EXPECT_EQ(r.content_length, static_cast<long>(r.body.size()));
  auto j = nlohmann::json::parse(r.body);
  ASSERT_TRUE(j.contains("error"));
  EXPECT_NE(j["error"].get<std::string>().find("boom"), std::string::npos) << r.body;
  // Still serving afterwards.
  EXPECT_EQ(roundTrip(path_, "GET /v1/status HTTP/1.0\r\n\r\n").code, 200);
}

TEST_F(AdminServerTest, SocketIsRootOnly) {
  AdminServer server(handler());
  ASSERT_TRUE(server.start(path_).ok());
  struct stat st{};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(AdminServerTest, StopRemovesSocketAndIsIdempotent) {
  AdminServer server(handler());
  ASSERT_TRUE(server.start(path_).ok());
  ASSERT_TRUE(std::filesystem::exists(path_));
  server.stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_EQ(connectTo(path_), -1);
  server.stop();  // a second stop (and the destructor's) is harmless
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(AdminServerTest, DestructorStopsAndRemovesSocket) {
  {
    AdminServer server(handler());
    ASSERT_TRUE(server.start(path_).ok());
    ASSERT_EQ(roundTrip(path_, "GET /v1/status HTTP/1.0\r\n\r\n").code, 200);
  }
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(AdminServerTest, ReplacesStaleSocket) {
  // A socket left behind by a dead agent: bound, never listening, closed.
  int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(stale, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::chmod(path_.c_str(), 0666);
  ::close(stale);
  ASSERT_EQ(connectTo(path_), -1);  // stale: nobody answers

  AdminServer server(handler());
  Status st = server.start(path_);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(roundTrip(path_, "GET /v1/status HTTP/1.0\r\n\r\n").code, 200);
  struct stat sb{};
  ASSERT_EQ(::stat(path_.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 07777, 0600u);
}

TEST_F(AdminServerTest, ReplacesStaleRegularFile) {
  { std::ofstream(path_) << "left over"; }
  AdminServer server(handler());
  ASSERT_TRUE(server.start(path_).ok());
  struct stat sb{};
  ASSERT_EQ(::stat(path_.c_str(), &sb), 0);
  EXPECT_TRUE(S_ISSOCK(sb.st_mode));
  EXPECT_EQ(roundTrip(path_, "GET /v1/status HTTP/1.0\r\n\r\n").code, 200);
}

TEST_F(AdminServerTest, StopLeavesASuccessorsSocketAlone) {
  // An agent restart that overlaps: the new agent replaces the socket, then the old one stops.
  AdminServer old_agent(handler());
  ASSERT_TRUE(old_agent.start(path_).ok());
  AdminServer new_agent(handler());
  ASSERT_TRUE(new_agent.start(path_).ok());
  ASSERT_EQ(roundTrip(path_, "GET /v1/status HTTP/1.0\r\n\r\n").code, 200);
  old_agent.stop();
  EXPECT_TRUE(std::filesystem::exists(path_)) << "the new agent's socket was unlinked";
  int fd = connectTo(path_);
  EXPECT_GE(fd, 0) << "the new agent is unreachable";
  if (fd >= 0) ::close(fd);
}

TEST_F(AdminServerTest, CreatesSocketDirectory) {
  std::string dir = path_ + ".d";
  std::string nested = dir + "/run/admin.sock";
  std::filesystem::remove_all(dir);
  {
    AdminServer server(handler());
    Status st = server.start(nested);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(roundTrip(nested, "GET /v1/status HTTP/1.0\r\n\r\n").code, 200);
  }
  EXPECT_FALSE(std::filesystem::exists(nested));
  std::filesystem::remove_all(dir);
}

TEST_F(AdminServerTest, RejectsTooLongPath) {
  AdminServer server(handler());
  std::string long_path = "/tmp/" + std::string(200, 'x') + ".sock";
  Status st = server.start(long_path);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("too long"), std::string::npos) << st.error().message();
}

}  // namespace
}  // namespace meshlet
