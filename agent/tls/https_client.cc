#include "agent/tls/https_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace meshlet::tls {
namespace {

constexpr size_t kMaxHeaderBytes = 64 << 10;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void setTimeouts(int fd, int ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Buffered reads from a TLS connection, for headers, chunk sizes and bodies.
class Reader {
 public:
  explicit Reader(TlsConn& conn) : conn_(conn) {}

  // One CRLF- (or LF-) terminated line, without the terminator.
  Result<std::string> line(size_t max) {
    while (true) {
      size_t nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        std::string out = buf_.substr(pos_, nl - pos_);
        pos_ = nl + 1;
        if (!out.empty() && out.back() == '\r') out.pop_back();
        return out;
      }
      if (buf_.size() - pos_ > max) return Error("HTTP: line longer than " + std::to_string(max));
      auto n = fill();
      if (!n.ok()) return n.error();
      if (*n == 0) return Error("HTTP: connection closed in the middle of a line", ECONNRESET);
    }
  }

  // Up to `max` bytes that are available (reading once when none are buffered); empty at EOF.
  Result<std::string_view> some(size_t max) {
    if (pos_ == buf_.size()) {
      auto n = fill();
      if (!n.ok()) return n.error();
      if (*n == 0) return std::string_view();
    }
    size_t take = std::min(max, buf_.size() - pos_);
    std::string_view out(buf_.data() + pos_, take);
    pos_ += take;
    return out;
  }

 private:
  Result<size_t> fill() {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ > (1u << 20)) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    char tmp[16384];
    auto n = conn_.read(tmp, sizeof(tmp));
    if (!n.ok()) return n.error();
    buf_.append(tmp, *n);
    return *n;
  }

  TlsConn& conn_;
  std::string buf_;
  size_t pos_ = 0;
};

// Where body bytes go: collected whole (capped), or split into lines for a callback.
class BodySink {
 public:
  BodySink(std::string* whole, size_t max_body, const HttpsClient::LineFn* on_line, size_t max_line)
      : whole_(whole), max_body_(max_body), on_line_(on_line), max_line_(max_line) {}

  // False when the line callback asked to stop.
  Result<bool> put(std::string_view data) {
    if (!on_line_) {
      if (whole_->size() + data.size() > max_body_) {
        return Error("HTTP: response body larger than " + std::to_string(max_body_) + " bytes",
                     EFBIG);
      }
      whole_->append(data);
      return true;
    }
    while (!data.empty()) {
      size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        partial_.append(data);
        if (partial_.size() > max_line_) {
          return Error("HTTP: stream line larger than " + std::to_string(max_line_) + " bytes",
                       EFBIG);
        }
        return true;
      }
      partial_.append(data.substr(0, nl));
      data.remove_prefix(nl + 1);
      if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
      bool go_on = partial_.empty() || (*on_line_)(partial_);
      partial_.clear();
      if (!go_on) return false;
    }
    return true;
  }

  // End of body: a last line without a newline still counts.
  void finish() {
    if (on_line_ && !partial_.empty()) (*on_line_)(partial_);
    partial_.clear();
  }

 private:
  std::string* whole_;
  size_t max_body_;
  const HttpsClient::LineFn* on_line_;
  size_t max_line_;
  std::string partial_;
};

Result<size_t> parseChunkSize(const std::string& line) {
  std::string hex = line.substr(0, line.find(';'));  // chunk extensions are ignored
  while (!hex.empty() && (hex.back() == ' ' || hex.back() == '\t')) hex.pop_back();
  if (hex.empty() || hex.size() > 15 ||
      hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return Error("HTTP: invalid chunk size \"" + line.substr(0, 40) + "\"");
  }
  return static_cast<size_t>(std::stoull(hex, nullptr, 16));
}

// Reads a chunked body into `sink`. False when the sink said stop.
Result<bool> readChunked(Reader& in, BodySink& sink) {
  while (true) {
    auto size_line = in.line(1024);
    if (!size_line.ok()) return size_line.error();
    auto size = parseChunkSize(*size_line);
    if (!size.ok()) return size.error();
    if (*size == 0) {
      while (true) {  // trailers, then the empty line
        auto t = in.line(kMaxHeaderBytes);
        if (!t.ok()) return t.error();
        if (t->empty()) return true;
      }
    }
    size_t left = *size;
    while (left > 0) {
      auto part = in.some(left);
      if (!part.ok()) return part.error();
      if (part->empty()) return Error("HTTP: connection closed inside a chunk", ECONNRESET);
      left -= part->size();
      auto go = sink.put(*part);
      if (!go.ok()) return go.error();
      if (!*go) return false;
    }
    auto crlf = in.line(2);
    if (!crlf.ok()) return crlf.error();
    if (!crlf->empty()) return Error("HTTP: chunk not followed by CRLF");
  }
}

}  // namespace

HttpsClient::HttpsClient(HttpsClientOptions opts) : opts_(std::move(opts)) {}

std::string HttpsClient::address() const {
  bool v6 = opts_.host.find(':') != std::string::npos;
  return (v6 ? "[" + opts_.host + "]" : opts_.host) + ":" + std::to_string(opts_.port);
}

void HttpsClient::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (active_fd_ >= 0) ::shutdown(active_fd_, SHUT_RDWR);
}

Result<int> HttpsClient::dial(int io_timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(opts_.port);
  int rc = getaddrinfo(opts_.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return Error("cannot resolve " + opts_.host + ": " + gai_strerror(rc), EHOSTUNREACH);
  }
  Error last("no address for " + opts_.host, EHOSTUNREACH);
  int fd = -1;
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      last = Error::fromErrno("socket", errno);
      continue;
    }
    rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int n = poll(&p, 1, opts_.connect_timeout_ms);
      int err = 0;
      socklen_t len = sizeof(err);
      if (n == 0) {
        err = ETIMEDOUT;
      } else if (n < 0) {
        err = errno;
      } else {
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) break;
    last = Error::fromErrno("cannot connect to " + address(), errno);
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return last;
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // Keepalive: a watch whose peer vanished without a reset (a node or load balancer gone) is
  // noticed within about a minute instead of at the end of the watch's timeoutSeconds.
  int idle = 30, interval = 10, probes = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
  setTimeouts(fd, io_timeout_ms);
  return fd;
}

Result<HttpResponse> HttpsClient::get(const std::string& target, const std::string& token) {
  return request(target, token, opts_.io_timeout_ms, nullptr, nullptr);
}

Result<HttpResponse> HttpsClient::stream(const std::string& target, const std::string& token,
                                         int idle_timeout_ms, const LineFn& on_line,
                                         const StatusFn& on_status) {
  return request(target, token, idle_timeout_ms, &on_line, on_status ? &on_status : nullptr);
}

Result<HttpResponse> HttpsClient::request(const std::string& target, const std::string& token,
                                          int io_timeout_ms, const LineFn* on_line,
                                          const StatusFn* on_status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) return Error("request cancelled", ECANCELED);
  }
  if (!opts_.tls) return Error("HTTPS client without a TLS context", EINVAL);
  auto fd = dial(io_timeout_ms);
  if (!fd.ok()) return fd.error();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) {
      ::close(*fd);
      return Error("request cancelled", ECANCELED);
    }
    active_fd_ = *fd;
  }
  struct Clear {
    HttpsClient* c;
    ~Clear() {
      std::lock_guard<std::mutex> lock(c->mu_);
      c->active_fd_ = -1;
    }
  } clear{this};
  auto wasCancelled = [this](Error e) -> Error {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_ ? Error("request cancelled", ECANCELED) : e;
  };

  auto conn = TlsConn::connect(*fd, *opts_.tls, opts_.host);  // owns the fd from here
  if (!conn.ok()) return wasCancelled(conn.error().wrap(address()));
  TlsConn& c = **conn;
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + address() +
                    "\r\nUser-Agent: meshletd\r\nAccept: application/json\r\n"
                    "Connection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  req += "\r\n";
  if (auto st = c.write(req); !st) return wasCancelled(st.error().wrap(address()));

  Reader in(c);
  HttpResponse resp;
  auto status_line = in.line(kMaxHeaderBytes);
  if (!status_line.ok()) return wasCancelled(status_line.error().wrap(address()));
  // "HTTP/1.1 200 OK"
  if (status_line->rfind("HTTP/1.", 0) != 0 || status_line->size() < 12 ||
      !std::isdigit(static_cast<unsigned char>((*status_line)[9]))) {
    return Error(address() + ": not an HTTP response: \"" + status_line->substr(0, 60) + "\"");
  }
  resp.status = std::atoi(status_line->c_str() + 9);
  size_t header_bytes = 0;
  while (true) {
    auto h = in.line(kMaxHeaderBytes);
    if (!h.ok()) return wasCancelled(h.error().wrap(address()));
    if (h->empty()) break;
    header_bytes += h->size();
    if (header_bytes > kMaxHeaderBytes) return Error(address() + ": HTTP headers too large");
    size_t colon = h->find(':');
    if (colon == std::string::npos) continue;
    std::string value = h->substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    resp.headers[lower(h->substr(0, colon))] = value;
  }

  if (on_status) (*on_status)(resp.status);
  bool streaming = on_line && resp.status >= 200 && resp.status < 300;
  BodySink sink(&resp.body, opts_.max_body_bytes, streaming ? on_line : nullptr,
                opts_.max_line_bytes);
  auto te = resp.headers.find("transfer-encoding");
  auto cl = resp.headers.find("content-length");
  Result<bool> done = true;
  if (te != resp.headers.end() && lower(te->second).find("chunked") != std::string::npos) {
    done = readChunked(in, sink);
  } else if (cl != resp.headers.end()) {
    if (cl->second.empty() || cl->second.find_first_not_of("0123456789") != std::string::npos ||
        cl->second.size() > 15) {
      return Error(address() + ": invalid Content-Length \"" + cl->second + "\"");
    }
    size_t left = std::stoull(cl->second);
    if (!streaming && left > opts_.max_body_bytes) {
      return Error(address() + ": response body of " + cl->second + " bytes is larger than " +
                       std::to_string(opts_.max_body_bytes),
                   EFBIG);
    }
    while (left > 0 && done.ok() && *done) {
      auto part = in.some(left);
      if (!part.ok()) {
        done = part.error();
        break;
      }
      if (part->empty()) {
        done = Error("HTTP: connection closed before the end of the body", ECONNRESET);
        break;
      }
      left -= part->size();
      done = sink.put(*part);
    }
  } else {
    while (done.ok() && *done) {  // the body ends when the server closes
      auto part = in.some(1 << 16);
      if (!part.ok()) {
        done = part.error();
        break;
      }
      if (part->empty()) break;
      done = sink.put(*part);
    }
  }
  if (!done.ok()) return wasCancelled(done.error().wrap(address()));
  if (*done) sink.finish();
  c.close();
  return resp;
}

}  // namespace meshlet::tls
