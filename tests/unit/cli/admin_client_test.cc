#include "agent/admin/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace meshlet {
namespace {

std::string tempSocketPath() {
  static std::atomic<int> n{0};
  return "/tmp/meshlet-test-admin-" + std::to_string(::getpid()) + "-" + std::to_string(n++) +
         ".sock";
}

// A one-shot HTTP/1.0 server on a unix socket: accepts one connection, reads the request head,
// answers `response` (unless silent), then waits for the client to close.
class FakeServer {
 public:
  explicit FakeServer(std::string response, bool silent = false)
      : path_(tempSocketPath()), response_(std::move(response)), silent_(silent) {
    ::unlink(path_.c_str());
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    EXPECT_EQ(::listen(listen_fd_, 4), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    thread_.join();
    ::close(listen_fd_);
    ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  // The request as received (valid after the client returned).
  std::string request() {
    thread_.join();
    thread_ = std::thread([] {});
    return request_;
  }

 private:
  void serve() {
    int c = ::accept(listen_fd_, nullptr, nullptr);
    if (c < 0) return;
    char buf[4096];
    while (request_.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(c, buf, sizeof(buf));
      if (n <= 0) break;
      request_.append(buf, static_cast<size_t>(n));
    }
    if (!silent_) {
      size_t off = 0;
      while (off < response_.size()) {
        ssize_t n = ::write(c, response_.data() + off, response_.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::close(c);
      return;
    }
    // Silent: hold the connection until the client gives up.
    while (::read(c, buf, sizeof(buf)) > 0) {
    }
    ::close(c);
  }

  std::string path_;
  std::string response_;
  bool silent_;
  int listen_fd_ = -1;
  std::string request_;
  std::thread thread_;
};

std::string httpResponse(int code, const std::string& reason, const std::string& body) {
  return "HTTP/1.0 " + std::to_string(code) + " " + reason +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

TEST(AdminClient, Returns200JsonInServerKeyOrder) {
  FakeServer server(httpResponse(200, "OK", R"([{"namespace":"default","name":"web","ready":2}])"));
  auto got = adminGet(server.path(), "/v1/services");
  ASSERT_TRUE(got) << got.error().message();
  ASSERT_TRUE(got->is_array());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0]["name"], "web");
  EXPECT_EQ((*got)[0]["ready"], 2);
  std::string keys;
  for (const auto& item : (*got)[0].items()) keys += item.key() + ",";
  EXPECT_EQ(keys, "namespace,name,ready,");
  EXPECT_EQ(server.request().rfind("GET /v1/services HTTP/1.0\r\n", 0), 0u);
}

TEST(AdminClient, Returns200ObjectWithoutContentLength) {
  FakeServer server(
      "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"node_name\":\"a\"}");
  auto got = adminGet(server.path(), "/v1/status");
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ((*got)["node_name"], "a");
}

TEST(AdminClient, Non2xxReturnsErrorField) {
  FakeServer server(httpResponse(500, "Internal Server Error", R"({"error":"no snapshot yet"})"));
  auto got = adminGet(server.path(), "/v1/workloads");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message(), "no snapshot yet");
}

TEST(AdminClient, ReportsTheHttpStatus) {
  FakeServer bad(httpResponse(400, "Bad Request", R"({"error":"bad URL"})"));
  int status = -1;
  auto got = adminGet(bad.path(), "/v1/routes/explain", 5000, &status);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message(), "bad URL");
  EXPECT_EQ(status, 400);
  FakeServer good(httpResponse(200, "OK", "[]"));
  got = adminGet(good.path(), "/v1/routes", 5000, &status);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(status, 200);
  got = adminGet("/nonexistent/meshlet-admin.sock", "/v1/routes", 5000, &status);
  ASSERT_FALSE(got);
  EXPECT_EQ(status, 0);
}

TEST(AdminClient, Non2xxWithoutJsonBodyNamesTheStatus) {
  FakeServer server(httpResponse(404, "Not Found", "nope"));
  auto got = adminGet(server.path(), "/v1/nothing");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message(), "meshletd answered HTTP 404 Not Found");
}

TEST(AdminClient, GarbageResponseIsAnError) {
  FakeServer server("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  auto got = adminGet(server.path(), "/v1/status");
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("bad answer from meshletd at " + server.path()),
            std::string::npos)
      << got.error().message();
}

TEST(AdminClient, InvalidJsonBodyIsAnError) {
  FakeServer server(httpResponse(200, "OK", "{not json"));
  auto got = adminGet(server.path(), "/v1/status");
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("not JSON"), std::string::npos) << got.error().message();
}

TEST(AdminClient, EmptyResponseIsAnError) {
  FakeServer server("");
  auto got = adminGet(server.path(), "/v1/status");
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("empty response"), std::string::npos);
}

TEST(AdminClient, TruncatedBodyIsAnError) {
  FakeServer server("HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n[]");
  auto got = adminGet(server.path(), "/v1/status");
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("truncated"), std::string::npos);
}

TEST(AdminClient, SilentServerTimesOut) {
  FakeServer server("", /*silent=*/true);
  auto start = std::chrono::steady_clock::now();
  auto got = adminGet(server.path(), "/v1/status", 200);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message(),
            "meshletd at " + server.path() + " did not answer within 200 ms");
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(AdminClient, NothingListeningIsOneLineError) {
  std::string path = tempSocketPath();
  auto got = adminGet(path, "/v1/status");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message(), "cannot reach meshletd at " + path +
                                       ": No such file or directory (is the agent running?)");
  EXPECT_EQ(got.error().message().find('\n'), std::string::npos);
  EXPECT_EQ(got.error().code(), ENOENT);
}

TEST(AdminClient, StaleSocketFileIsConnectionRefused) {
  std::string path = tempSocketPath();
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);  // bound, never listened: the file stays, nobody answers
  auto got = adminGet(path, "/v1/status");
  ::unlink(path.c_str());
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message(),
            "cannot reach meshletd at " + path + ": Connection refused (is the agent running?)");
}

TEST(AdminHttp, ParsesStatusHeadersAndBody) {
  auto r = parseHttpResponse("HTTP/1.1 201 Created\r\ncontent-length: 2\r\nX-A: b\r\n\r\n{}junk");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->reason, "Created");
  EXPECT_EQ(r->body, "{}");
  EXPECT_FALSE(parseHttpResponse("HTTP/1.0 2x0 OK\r\n\r\n"));
  EXPECT_FALSE(parseHttpResponse("HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n"));
  EXPECT_FALSE(parseHttpResponse("HTTP/1.0 200 OK\r\nno colon\r\n\r\n"));
}

TEST(AdminHttp, UrlEncodeKeepsSlash) {
  EXPECT_EQ(urlEncodeQueryValue("default/web-v1"), "default/web-v1");
  EXPECT_EQ(urlEncodeQueryValue("a b&c"), "a%20b%26c");
}

}  // namespace
}  // namespace meshlet
