#include "agent/admin/health_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <vector>

namespace meshlet {
namespace {

constexpr size_t kMaxConnections = 32;  // a probe needs one; past this the oldest is dropped
constexpr auto kConnectionDeadline = std::chrono::seconds(5);  // whole request + reply

const char* reasonPhrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

bool isTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c);
}

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), isTokenChar);
}

// The end of the head (index just past the empty line), or npos.
size_t headEnd(std::string_view data) {
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] != '\n') continue;
    if (i + 1 < data.size() && data[i + 1] == '\n') return i + 2;
    if (i + 2 < data.size() && data[i + 1] == '\r' && data[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

HealthReply badRequest(const std::string& why) { return {400, "bad request: " + why + "\n"}; }

}  // namespace

HeadState requestHeadState(std::string_view data) {
  size_t end = headEnd(data);
  if (end != std::string_view::npos) {
    return end <= kHealthMaxRequestBytes ? HeadState::kComplete : HeadState::kTooLarge;
  }
  return data.size() >= kHealthMaxRequestBytes ? HeadState::kTooLarge : HeadState::kIncomplete;
}

HealthReply answerHealthRequest(std::string_view head, bool ready, const std::string& reason) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < head.size()) {
    size_t nl = head.find('\n', pos);
    std::string_view line = head.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl == std::string_view::npos ? head.size() : nl + 1;
    if (line.empty()) {
      if (lines.empty()) continue;  // empty lines before the request line are allowed
      break;                        // end of the head; a body, if any, is ignored
    }
    lines.push_back(line);
  }
  if (lines.empty()) return badRequest("empty request");

  std::string_view request_line = lines[0];
  size_t sp1 = request_line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || request_line.find(' ', sp2 + 1) != std::string_view::npos) {
    return badRequest("the request line must be METHOD TARGET HTTP/1.x");
  }
  std::string_view method = request_line.substr(0, sp1);
  std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = request_line.substr(sp2 + 1);
  if (!isToken(method)) return badRequest("invalid method");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return badRequest("not HTTP/1.0 or 1.1");
  if (target.empty() || target[0] != '/') return badRequest("the target must be a path");
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return badRequest("control character in the target");
    }
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || !isToken(lines[i].substr(0, colon))) {
      return badRequest("malformed header line");
    }
  }

  if (method != "GET" && method != "HEAD") {
    return {405, "method not allowed: use GET\n"};
  }
  bool head_only = method == "HEAD";
  std::string_view path = target.substr(0, target.find('?'));
  if (path != kReadyPath) {
    return {404, "not found: the readiness endpoint is " + std::string(kReadyPath) + "\n",
            head_only};
  }
  if (ready) return {200, "ready\n", head_only};
  return {503, "not ready: " + reason + "\n", head_only};
}

std::string formatHealthReply(const HealthReply& reply) {
  std::string out = "HTTP/1.1 " + std::to_string(reply.code) + " " + reasonPhrase(reply.code) +
                    "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                    std::to_string(reply.body.size()) + "\r\nConnection: close\r\n";
  if (reply.code == 405) out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (!reply.head_only) out += reply.body;
  return out;
}

Status HealthServer::start(const std::string& addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Error("readiness address must be HOST:PORT, got \"" + addr + "\"");
  }
  std::string host = addr.substr(0, colon);
  std::string port = addr.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return Error("readiness address " + addr + ": " + gai_strerror(rc));
  }
  Error last("readiness address " + addr + ": no usable address");
  for (addrinfo* ai = res; ai != nullptr && listen_fd_ < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      last = Error::fromErrno("readiness socket", errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
      last = Error::fromErrno("cannot serve readiness on " + addr, errno);
      ::close(fd);
      continue;
    }
    listen_fd_ = fd;
  }
  freeaddrinfo(res);
  if (listen_fd_ < 0) return last;
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    return Error::fromErrno("getsockname", errno);
  }
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return thread_.start([this] { serve(); });
}

void HealthServer::stop() {
  thread_.stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void HealthServer::setState(bool ready, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  reason_ = reason;
  ready_ = ready;
}

void HealthServer::serve() {
  using Clock = std::chrono::steady_clock;
  struct Conn {
    int fd;
    Clock::time_point deadline;
    std::string in;
    std::string out;  // non-empty once answered
    size_t sent = 0;
    bool draining = false;  // answered; reading what the client still sends until it hangs up
  };
  std::vector<Conn> conns;
  auto closeConn = [](Conn& c) {
    ::close(c.fd);
    c.fd = -1;
  };
  for (;;) {
    std::vector<pollfd> fds;
    fds.push_back({thread_.wakeFd(), POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    auto now = Clock::now();
    int timeout_ms = -1;
    for (const Conn& c : conns) {
      fds.push_back({c.fd, static_cast<short>(c.out.empty() || c.draining ? POLLIN : POLLOUT), 0});
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now).count();
      left = std::max<int64_t>(left, 0) + 1;
      if (timeout_ms < 0 || left < timeout_ms) timeout_ms = static_cast<int>(left);
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;
    now = Clock::now();
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      if (now >= c.deadline) {
        closeConn(c);  // too slow (or trickling bytes): drop without an answer
        continue;
      }
      if (fds[i + 2].revents == 0) continue;
      if (c.draining) {
        // Closing with unread bytes would reset the connection and could destroy the answer
        // before the client reads it: read and drop them until the client closes.
        char buf[2048];
        ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) closeConn(c);
        continue;
      }
      if (c.out.empty()) {
        char buf[2048];
        ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) {
          closeConn(c);  // closed (or failed) before a whole request
          continue;
        }
        c.in.append(buf, static_cast<size_t>(n));
        switch (requestHeadState(c.in)) {
          case HeadState::kIncomplete: continue;
          case HeadState::kTooLarge: c.out = formatHealthReply({431, "request too large\n"}); break;
          case HeadState::kComplete: {
            std::string reason;
            bool ready;
            {
              std::lock_guard<std::mutex> lock(mu_);
              reason = reason_;
              ready = ready_;
            }
            c.out = formatHealthReply(answerHealthRequest(c.in, ready, reason));
            break;
          }
        }
      }
      ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        closeConn(c);
        continue;
      }
      c.sent += static_cast<size_t>(n);
      if (c.sent == c.out.size()) {
        shutdown(c.fd, SHUT_WR);
        c.draining = true;
        c.deadline = std::min(c.deadline, Clock::now() + std::chrono::seconds(1));
      }
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(), [](const Conn& c) { return c.fd < 0; }),
                conns.end());
    if (fds[1].revents & POLLIN) {
      int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c >= 0) {
        if (conns.size() >= kMaxConnections) {  // full: the oldest (likely idle) one makes room
          closeConn(conns.front());
          conns.erase(conns.begin());
        }
        conns.push_back({c, Clock::now() + kConnectionDeadline, {}, {}, 0, false});
      }
    }
  }
  for (Conn& c : conns) closeConn(c);
}

}  // namespace meshlet
