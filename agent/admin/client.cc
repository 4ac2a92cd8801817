#include "agent/admin/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace meshlet {

namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string unreachable(const std::string& socket_path, int err) {
  std::string hint = (err == EACCES || err == EPERM) ? "(the admin socket is root-only)"
                                                     : "(is the agent running?)";
  return "cannot reach meshletd at " + socket_path + ": " + std::strerror(err) + " " + hint;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// Milliseconds left before `deadline` (0 when past it).
int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for `events` on fd; returns 0 when ready, ETIMEDOUT, or an errno.
int waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int ms = remainingMs(deadline);
    if (ms == 0) return ETIMEDOUT;
    int n = ::poll(&p, 1, ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return ETIMEDOUT;
    return 0;
  }
}

}  // namespace

Result<HttpResponse> parseHttpResponse(const std::string& raw) {
  size_t header_end = raw.find("\r\n\r\n");
  size_t sep_len = 4;
  if (header_end == std::string::npos) {
    header_end = raw.find("\n\n");
    sep_len = 2;
  }
  if (header_end == std::string::npos) {
    return Error(raw.empty() ? "empty response" : "no end of HTTP headers in the response");
  }
  std::string head = raw.substr(0, header_end);
  size_t line_end = head.find('\n');
  std::string status_line = trim(head.substr(0, line_end));
  if (status_line.rfind("HTTP/1.", 0) != 0) {
    return Error("not an HTTP response: \"" + status_line.substr(0, 60) + "\"");
  }
  size_t sp = status_line.find(' ');
  if (sp == std::string::npos) return Error("malformed status line: \"" + status_line + "\"");
  std::string rest = status_line.substr(sp + 1);
  size_t sp2 = rest.find(' ');
  std::string code_text = rest.substr(0, sp2);
  HttpResponse resp;
  if (code_text.size() != 3 || !std::all_of(code_text.begin(), code_text.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      })) {
    return Error("malformed status line: \"" + status_line + "\"");
  }
  resp.status = std::atoi(code_text.c_str());
  resp.reason = sp2 == std::string::npos ? "" : trim(rest.substr(sp2 + 1));

  long content_length = -1;
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 1;
  while (pos < head.size()) {
    size_t end = head.find('\n', pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) return Error("malformed header line: \"" + line + "\"");
    std::string name = lower(trim(line.substr(0, colon)));
    std::string value = trim(line.substr(colon + 1));
    if (name == "content-type") {
      resp.content_type = value;
    } else if (name == "content-length") {
      char* endp = nullptr;
      errno = 0;
      long n = std::strtol(value.c_str(), &endp, 10);
      if (value.empty() || errno != 0 || *endp != '\0' || n < 0) {
        return Error("bad Content-Length: \"" + value + "\"");
      }
      content_length = n;
    }
  }
  resp.body = raw.substr(header_end + sep_len);
  if (content_length >= 0) {
    if (resp.body.size() < static_cast<size_t>(content_length)) {
      return Error("truncated response: got " + std::to_string(resp.body.size()) + " of " +
                   std::to_string(content_length) + " body bytes");
    }
    resp.body.resize(static_cast<size_t>(content_length));
  }
  return resp;
}

Result<nlohmann::ordered_json> adminGet(const std::string& socket_path, const std::string& path,
                                        int timeout_ms, int* http_status) {
  if (http_status) *http_status = 0;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms > 0 ? timeout_ms : 1);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return Error(unreachable(socket_path, ENAMETOOLONG), ENAMETOOLONG);
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());

  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return Error::fromErrno("socket(AF_UNIX)", errno);

  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0) {
    int err = errno;
    if (err != EINPROGRESS && err != EAGAIN) return Error(unreachable(socket_path, err), err);
    // Backlog full: wait for the connection to complete.
    err = waitFor(fd.get(), POLLOUT, deadline);
    if (err == 0) {
      socklen_t len = sizeof(err);
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    }
    if (err != 0) return Error(unreachable(socket_path, err), err);
  }

  const std::string timed_out =
      "meshletd at " + socket_path + " did not answer within " + std::to_string(timeout_ms) + " ms";
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: meshletd\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
      int w = waitFor(fd.get(), POLLOUT, deadline);
      if (w == ETIMEDOUT) return Error(timed_out, ETIMEDOUT);
      if (w != 0) return Error::fromErrno("sending to meshletd at " + socket_path, w);
      continue;
    }
    return Error::fromErrno("sending to meshletd at " + socket_path, err);
  }
  std::string raw;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      if (raw.size() > (64u << 20)) return Error("answer from meshletd is larger than 64 MiB");
      continue;
    }
    if (n == 0) break;
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      int w = waitFor(fd.get(), POLLIN, deadline);
      if (w == ETIMEDOUT) return Error(timed_out, ETIMEDOUT);
      if (w != 0) return Error::fromErrno("reading from meshletd at " + socket_path, w);
      continue;
    }
    if (err == ECONNRESET && !raw.empty()) break;
    return Error::fromErrno("reading from meshletd at " + socket_path, err);
  }

  const std::string bad = "bad answer from meshletd at " + socket_path;
  auto resp = parseHttpResponse(raw);
  if (!resp) return resp.error().wrap(bad);
  if (http_status) *http_status = resp->status;

  nlohmann::ordered_json body = nlohmann::ordered_json::parse(resp->body, nullptr, false);
  bool ok_status = resp->status >= 200 && resp->status < 300;
  if (!ok_status) {
    if (!body.is_discarded() && body.is_object()) {
      auto it = body.find("error");
      if (it != body.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
        return Error(it->get<std::string>());
      }
    }
    std::string msg = "meshletd answered HTTP " + std::to_string(resp->status);
    if (!resp->reason.empty()) msg += " " + resp->reason;
    return Error(msg);
  }
  if (body.is_discarded()) {
    std::string snippet = resp->body.substr(0, 60);
    return Error(bad + ": body is not JSON: \"" + snippet + "\"");
  }
  return body;
}

std::string urlEncodeQueryValue(const std::string& value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

}  // namespace meshlet
