#include "agent/l7/http_proxy.h"

#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <regex>
#include <utility>

#include "agent/common/log.h"
#include "agent/l7/socket_io.h"
#include "agent/policy/authz.h"

namespace meshlet::l7 {
namespace {

using Clock = std::chrono::steady_clock;

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

// v as 16 lower-case hex digits at out.
void hex16(uint64_t v, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = kDigits[v & 15];
}

// Empties `b`, keeping its storage for the next request unless it grew large.
void emptyKeeping(ByteBuf& b) {
  b.clear();
  b.release(16 * 1024);
}

uint64_t random64(L7Runtime& rt) { return (uint64_t{rt.random()} << 32) | rt.random(); }

bool isHex(std::string_view s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return s.find_first_not_of('0') != std::string_view::npos;
}

// A random UUID (version 4) for x-request-id, into `out` (its capacity is reused).
void uuid(L7Runtime& rt, std::string& out) {
  uint64_t a = random64(rt), b = random64(rt);
  a = (a & ~0xf000ull) | 0x4000ull;
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;
  char h[32];
  hex16(a, h);
  hex16(b, h + 16);
  out.assign(h, 8).append(1, '-').append(h + 8, 4).append(1, '-').append(h + 12, 4);
  out.append(1, '-').append(h + 16, 4).append(1, '-').append(h + 20, 12);
}

// A field that is about this hop alone (RFC 9110 7.6.1); Upgrade too unless it is kept.
bool hopByHop(std::string_view name, bool keep_upgrade) {
  switch (name.size()) {
    case 2:
      return equalsIgnoreCase(name, "te");
    case 7:
      return equalsIgnoreCase(name, "trailer") ||
             (!keep_upgrade && equalsIgnoreCase(name, "upgrade"));
    case 10:
      return equalsIgnoreCase(name, "connection") || equalsIgnoreCase(name, "keep-alive");
    case 16:
      return equalsIgnoreCase(name, "proxy-connection");
    case 17:
      return equalsIgnoreCase(name, "transfer-encoding");
    default:
      return false;
  }
}

// Hop-by-hop fields and those Connection names: not forwarded. `keep_upgrade` keeps
// Connection/Upgrade for a protocol switch.
void stripHopByHop(HeaderList& h, bool keep_upgrade) {
  // The fields Connection names beyond its usual options (rarely any): copied, since the
  // Connection fields go in the same pass.
  std::vector<std::string> named;
  for (const auto& f : h.fields) {
    if (!equalsIgnoreCase(f.name, "connection")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      size_t comma = std::min(v.find(','), v.size());
      std::string_view token = trimOws(v.substr(0, comma));
      v.remove_prefix(std::min(comma + 1, v.size()));
      if (!token.empty() && !equalsIgnoreCase(token, "upgrade") &&
          !equalsIgnoreCase(token, "close") && !equalsIgnoreCase(token, "keep-alive")) {
        named.emplace_back(token);
      }
    }
  }
  std::erase_if(h.fields, [&](const HeaderList::Field& f) {
    if (hopByHop(f.name, keep_upgrade)) return true;
    for (const auto& n : named) {
      if (equalsIgnoreCase(f.name, n)) return true;
    }
    return false;
  });
  if (keep_upgrade) h.add("connection", "upgrade");
}

void applyHeaderOps(const HeaderOperations& ops, HeaderList& h) {
  for (const auto& [name, value] : ops.set) h.set(name, value);
  for (const auto& [name, value] : ops.add) h.add(name, value);
  for (const auto& name : ops.remove) h.remove(name);
}

bool retriableStatus(int status, const std::vector<RetryOn>& on, const std::vector<int>& codes) {
  for (RetryOn r : on) {
    switch (r) {
      case RetryOn::k5xx:
        if (status >= 500) return true;
        break;
      case RetryOn::kGatewayError:
        if (status == 502 || status == 503 || status == 504) return true;
        break;
      case RetryOn::kRetriable4xx:
        if (status == 409) return true;
        break;
      case RetryOn::kRetriableStatusCodes:
        if (std::find(codes.begin(), codes.end(), status) != codes.end()) return true;
        break;
      default:
        break;
    }
  }
  return false;
}

bool hasRetryOn(const std::vector<RetryOn>& on, RetryOn r) {
  return std::find(on.begin(), on.end(), r) != on.end();
}

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// The value of cookie `name` in a Cookie header, "" when absent.
std::string cookieValue(const HeaderList& h, std::string_view name) {
  for (const auto& f : h.fields) {
    if (!equalsIgnoreCase(f.name, "cookie")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      size_t semi = v.find(';');
      std::string_view pair = v.substr(0, semi);
      v = semi == std::string_view::npos ? std::string_view() : v.substr(semi + 1);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
        return std::string(pair.substr(eq + 1));
      }
    }
  }
  return "";
}

std::string queryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    }
  }
  return "";
}

// Trailer fields that are about framing or routing, never forwarded (RFC 9110 6.5.1).
void stripTrailerFields(HeaderList& t) {
  for (const char* n : {"content-length", "transfer-encoding", "host", "connection", "te",
                        "trailer", "keep-alive", "upgrade"}) {
    t.remove(n);
  }
}

// Upgrade: h2c (RFC 7540 3.2, removed in RFC 9113): not taken, like Envoy.
bool upgradesToH2c(const HeaderList& h) {
  const std::string* u = h.get("upgrade");
  return u && equalsIgnoreCase(*u, "h2c");
}

std::string endpointKey(const L7Endpoint& ep) {
  return ep.key.empty() ? endpointString(ep.ip, ep.port) : ep.key;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// L7Runtime

L7Runtime::L7Runtime(proxy::EventLoop& loop) : loop_(loop) {}

L7Runtime::~L7Runtime() {
  dropIdle();
  while (!shadows_.empty()) closeShadow(shadows_.begin()->first);
  if (shadow_timer_ >= 0) {
    loop_.remove(shadow_timer_);
    close(shadow_timer_);
  }
}

bool L7Runtime::shadow(const SessionEnv& env, const std::string& source_pod, const L7Endpoint& ep,
                       bool h2, ByteBuf request) {
  if (shadows_.size() >= kMaxShadows || !env.dial) return false;
  auto dialled = env.dial(source_pod, ep, h2);
  if (!dialled.ok()) {
    logLine(LogLevel::kDebug,
            "l7: mirror dial " + endpointKey(ep) + ": " + dialled.error().message());
    return false;
  }
  int fd = *dialled;
  if (!loop_.set(fd, EPOLLOUT, [this, fd](uint32_t e) { onShadow(fd, e); }).ok()) {
    loop_.remove(fd);
    close(fd);
    return false;
  }
  if (shadow_timer_ < 0) {
    shadow_timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (shadow_timer_ >= 0 &&
        !loop_.add(shadow_timer_, EPOLLIN, [this](uint32_t) { sweepShadows(); }).ok()) {
      close(shadow_timer_);
      shadow_timer_ = -1;
    }
  }
  if (shadows_.empty() && shadow_timer_ >= 0) {
    itimerspec its{};
    its.it_value.tv_sec = its.it_interval.tv_sec = 1;
    timerfd_settime(shadow_timer_, 0, &its, nullptr);
  }
  Shadow& sh = shadows_[fd];
  sh.parser = std::make_unique<Http1Parser>(Http1Parser::Kind::kResponse, sh);
  sh.parser->expectNoBody(request.view().substr(0, 5) == "HEAD ");
  sh.out = std::move(request);
  sh.deadline = nowMs() + kShadowTimeoutMs;
  ++shadows_sent_;
  return true;
}

void L7Runtime::onShadow(int fd, uint32_t events) {
  auto it = shadows_.find(fd);
  if (it == shadows_.end()) return;
  Shadow& sh = it->second;
  if (sh.connecting) {
    if (proxy::socketError(fd) != 0) {
      closeShadow(fd);
      return;
    }
    sh.connecting = false;
  }
  if (!sh.out.empty() && sendFrom(fd, sh.out) == Io::kError) {
    closeShadow(fd);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    // The answer is not wanted: it is parsed only to know when it ends, then dropped.
    char scratch[16384];
    for (;;) {
      ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
      if (n > 0) {
        size_t off = 0;
        while (off < static_cast<size_t>(n) && !sh.answered && !sh.parser->failed()) {
          size_t used = sh.parser->feed(scratch + off, static_cast<size_t>(n) - off);
          if (used == 0) break;
          off += used;
        }
        if (sh.answered || sh.parser->failed()) {
          closeShadow(fd);
          return;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      closeShadow(fd);  // closed or failed
      return;
    }
  }
  loop_.modify(fd, sh.out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

void L7Runtime::closeShadow(int fd) {
  if (shadows_.erase(fd) == 0) return;
  loop_.remove(fd);
  close(fd);
  if (shadows_.empty() && shadow_timer_ >= 0) {
    itimerspec off{};
    timerfd_settime(shadow_timer_, 0, &off, nullptr);
  }
}

void L7Runtime::sweepShadows() {
  uint64_t expirations = 0;
  if (read(shadow_timer_, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) return;
  int64_t now = nowMs();
  std::vector<int> late;
  for (const auto& [fd, sh] : shadows_) {
    if (sh.deadline <= now) late.push_back(fd);
  }
  for (int fd : late) closeShadow(fd);
}

int L7Runtime::takeIdle(const std::string& key, int* uses) {
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) return -1;
  IdleConn c = it->second.back();  // the most recently used: the least likely to have timed out
  it->second.pop_back();
  if (it->second.empty()) idle_.erase(it);
  idle_fds_.erase(c.fd);
  // It stays in the loop (with the drop handler until the caller sets its own: no event can
  // be dispatched in between, the loop is this thread).
  if (uses) *uses = c.uses;
  return c.fd;
}

void L7Runtime::putIdle(const std::string& key, int fd, int uses) {
  auto& list = idle_[key];
  if (list.size() >= kIdlePerKey) drop(list.front().fd);
  // EPOLLIN, as a session's upstream while it waits for a response: handing the connection
  // back and forth costs no epoll_ctl. A close or stray bytes make it readable: dropped.
  if (!loop_.set(fd, EPOLLIN, [this, fd](uint32_t) { drop(fd); }).ok()) {
    loop_.remove(fd);
    close(fd);
    return;
  }
  idle_[key].push_back({fd, uses});
  idle_fds_[fd] = key;
}

void L7Runtime::drop(int fd) {
  auto it = idle_fds_.find(fd);
  if (it == idle_fds_.end()) return;
  auto list = idle_.find(it->second);
  if (list != idle_.end()) {
    list->second.erase(std::remove_if(list->second.begin(), list->second.end(),
                                      [fd](const IdleConn& c) { return c.fd == fd; }),
                       list->second.end());
    if (list->second.empty()) idle_.erase(list);
  }
  idle_fds_.erase(it);
  loop_.remove(fd);
  close(fd);
}

void L7Runtime::dropIdle() {
  while (!idle_fds_.empty()) drop(idle_fds_.begin()->first);
}

void L7Runtime::connectionReleased(const std::string& cluster) {
  auto it = load_.find(cluster);
  if (it == load_.end() || it->second.pending.empty()) return;
  HttpSession* s = it->second.pending.front();
  it->second.pending.erase(it->second.pending.begin());
  s->waiting_in_.clear();
  s->resumePending();
}

void L7Runtime::forgetPending(HttpSession* s, const std::string& cluster) {
  auto it = load_.find(cluster);
  if (it == load_.end()) return;
  auto& pending = it->second.pending;
  pending.erase(std::remove(pending.begin(), pending.end(), s), pending.end());
}

void L7Runtime::recordOutcome(const L7Cluster& c, const std::string& endpoint, bool server_error,
                              bool gateway_error) {
  if (!c.outlier) return;
  const OutlierDetection& od = *c.outlier;
  Health& h = health_[c.name][endpoint];
  int64_t now = nowMs();
  if (!server_error && !gateway_error) {
    h.consecutive_5xx = h.consecutive_gateway = 0;
    if (h.ejected_until <= now) h.ejections = 0;
    return;
  }
  if (server_error) ++h.consecutive_5xx;
  if (gateway_error) ++h.consecutive_gateway;
  // Istio's defaults: 5 consecutive 5xx eject; gateway errors alone do not unless set.
  int limit_5xx = od.consecutive_5xx_errors.value_or(5);
  int limit_gateway = od.consecutive_gateway_errors.value_or(0);
  bool trip = (limit_5xx > 0 && h.consecutive_5xx >= limit_5xx) ||
              (limit_gateway > 0 && h.consecutive_gateway >= limit_gateway);
  if (!trip || h.ejected_until > now || c.endpoints.empty()) return;
  h.consecutive_5xx = h.consecutive_gateway = 0;
  // maxEjectionPercent as Envoy has counted it since 1.24, and as the kernel path's ejection
  // does (agent/outlier): this one included, (ejected + 1) / endpoints <= max.
  size_t out = 0;
  for (const auto& [ep, other] : health_[c.name]) out += other.ejected_until > now;
  if (100.0 * static_cast<double>(out + 1) >
      od.max_ejection_percent.value_or(10) * static_cast<double>(c.endpoints.size())) {
    return;
  }
  ++h.ejections;
  int64_t ms = od.base_ejection_time_ms.value_or(30000) * h.ejections;
  h.ejected_until = now + ms;
  logInfo("l7: outlier detection ejected " + endpoint + " from " + c.name + " for " +
          std::to_string(ms) + " ms");
}

bool L7Runtime::takeToken(const std::string& key, const LocalRateLimit& limit) {
  int64_t now = nowMs();
  Bucket& b = buckets_[key];
  if (b.limit != limit.text) b = Bucket{limit.burst, now, limit.text};  // new, or changed
  b.tokens = std::min(limit.burst,
                      b.tokens + limit.per_second * static_cast<double>(now - b.at_ms) / 1000.0);
  b.at_ms = now;
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

bool L7Runtime::ejected(const std::string& cluster, const std::string& endpoint) {
  auto c = health_.find(cluster);
  if (c == health_.end()) return false;
  auto e = c->second.find(endpoint);
  return e != c->second.end() && e->second.ejected_until > nowMs();
}

size_t L7Runtime::ejectedCount() const {
  int64_t now = nowMs();
  size_t n = 0;
  for (const auto& [cluster, eps] : health_) {
    for (const auto& [ep, h] : eps) n += h.ejected_until > now;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// HttpSession

struct HttpSession::Exchange {
  RequestHead head;
  Clock::time_point start = Clock::now();
  RequestRecord rec;
  const L7Route* route = nullptr;
  const L7WeightedCluster* wc = nullptr;
  const L7Cluster* cluster = nullptr;
  const L7Endpoint* ep = nullptr;
  std::string ep_key;
  bool counted_active = false;
  bool counted_request = false;  // in its cluster's in-flight requests
  bool local = false;         // answered by the proxy
  bool req_done = false;      // the request ended (onMessageEnd)
  bool dispatched = false;    // an endpoint was picked (after any fault delay)
  bool resp_started = false;  // a final response head went downstream
  bool resp_done = false;
  bool chunked_in = false;   // the request body is chunked upstream
  bool chunked_out = false;  // the response body is chunked downstream
  bool close_after = false;  // close the client connection after this response
  bool head_request = false;
  bool upgrade = false;
  bool up_keep_alive = false;  // the upstream connection may carry another request
  bool retry_now = false;      // the response just parsed is to be retried
  HeaderList original_headers;  // as the client sent them, when policies may read them
  ByteBuf replay;              // what went upstream, for retries
  bool replayable = true;
  int attempts = 0;
  int max_attempts = 1;
  std::vector<RetryOn> retry_on;
  std::vector<int> retry_codes;
  int64_t deadline = 0;      // steady ms; 0: none
  int64_t try_deadline = 0;  // steady ms; 0: none
  int64_t per_try_ms = 0;
  int64_t delay_until = 0;  // fault delay
  int response_status = 0;
  struct Shadow {
    const L7Cluster* cluster;
    ByteBuf bytes;  // the request as it goes to the mirror, so far
  };
  std::vector<Shadow> shadows;
  bool h2 = false;          // came over HTTP/2 (H2ServerBridge), goes upstream over HTTP/2
  bool upstream_h2 = false;  // this attempt's upstream is H2ClientPool
  std::string pool_reset;    // kUpstreamResetHeader of the pool's answer, to act on
  HeaderList trailers_in;   // request trailers, sent with the last chunk
  HeaderList trailers_out;  // response trailers, likewise
};

struct HttpSession::DownEvents : Http1Events {
  explicit DownEvents(HttpSession* s) : s(s) {}
  void onRequestHead(RequestHead&& head) override { s->onRequestHead(std::move(head)); }
  void onBody(std::string_view bytes) override { s->onRequestBody(bytes); }
  void onTrailers(HeaderList&& t) override { s->onRequestTrailers(std::move(t)); }
  void onMessageEnd() override { s->onRequestEnd(); }
  HttpSession* s;
};

struct HttpSession::UpEvents : Http1Events {
  explicit UpEvents(HttpSession* s) : s(s) {}
  void onResponseHead(ResponseHead&& head) override { s->onResponseHead(std::move(head)); }
  void onBody(std::string_view bytes) override { s->onResponseBody(bytes); }
  void onTrailers(HeaderList&& t) override { s->onResponseTrailers(std::move(t)); }
  void onMessageEnd() override { s->onResponseEnd(); }
  HttpSession* s;
};

HttpSession::HttpSession(proxy::EventLoop& loop, L7Runtime& rt, const SessionEnv& env, int fd,
                         std::shared_ptr<const L7Config> config, uint32_t svc_id,
                         SessionSource source)
    : loop_(loop),
      rt_(rt),
      env_(env),
      config_(std::move(config)),
      source_(std::move(source)),
      dfd_(fd) {
  if (config_) {
    auto it = config_->services.find(svc_id);
    if (it != config_->services.end()) service_ = &it->second;
  }
  down_events_ = std::make_unique<DownEvents>(this);
  dparser_ = std::make_unique<Http1Parser>(Http1Parser::Kind::kRequest, *down_events_);
  up_events_ = std::make_unique<UpEvents>(this);
}

HttpSession::~HttpSession() {
  if (!done_) {
    done_ = true;
    if (dfd_ >= 0) loop_.remove(dfd_);
    if (ufd_ >= 0) loop_.remove(ufd_);
    if (held_.fd >= 0) loop_.remove(held_.fd);
    if (timer_fd_ >= 0) loop_.remove(timer_fd_);
  }
  if (!waiting_in_.empty()) rt_.forgetPending(this, waiting_in_);
  if (ex_ && ex_->counted_active) --rt_.active()[ex_->ep_key];
  releaseClusterSlot();
  if (u_counted_ && ex_ && ex_->cluster) --rt_.load(ex_->cluster->name).connections;
  if (dfd_ >= 0) close(dfd_);
  if (ufd_ >= 0) close(ufd_);
  if (held_.fd >= 0) close(held_.fd);
  if (timer_fd_ >= 0) close(timer_fd_);
}

Status HttpSession::start() {
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) return Error::fromErrno("timerfd_create", errno);
  if (auto st = loop_.add(timer_fd_, EPOLLIN, [this](uint32_t) { onTimer(); }); !st) return st;
  d_interest_ = EPOLLIN;
  if (auto st = loop_.add(dfd_, d_interest_, [this](uint32_t e) { onDown(e); }); !st) return st;
  // The app usually sent its request already: serve it without waiting for a wakeup.
  readDown();
  return Status::Ok();
}

void HttpSession::releaseHeld() {
  if (held_.fd < 0) return;
  rt_.putIdle(held_.key, std::exchange(held_.fd, -1), held_.uses);
}

void HttpSession::startExchange() {
  if (spare_) {
    ex_ = std::move(spare_);
    ex_->start = Clock::now();
  } else {
    ex_ = std::make_unique<Exchange>();
  }
}

void HttpSession::endExchange() {
  // The next request starts from a fresh Exchange that keeps this one's storage: its strings'
  // capacity (a move from an empty string copies into the buffer there) and the replay buffer.
  ByteBuf replay = std::move(ex_->replay);
  emptyKeeping(replay);
  *ex_ = Exchange();
  ex_->replay = std::move(replay);
  spare_ = std::move(ex_);
}

void HttpSession::clientGone() {
  if (done_) return;
  if (ex_ && !ex_->resp_done) addFlag("DC");
  finish();
}

void HttpSession::addFlag(const std::string& flag) {
  if (!ex_) return;
  std::string& f = ex_->rec.flags;
  if (f == "-") {
    f = flag;
  } else if (("," + f + ",").find("," + flag + ",") == std::string::npos) {
    f += "," + flag;
  }
}

// ---- downstream ----

void HttpSession::onDown(uint32_t events) {
  if (done_) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    readDown();
    if (done_) return;
  }
  if (events & EPOLLOUT) {
    writeDown();
    if (done_) return;
    pump();
  }
}

void HttpSession::readDown() {
  if (!d_eof_) {
    Io r = receiveInto(dfd_, din_, [this] { return din_.size() < kHighWater; });
    if (r == Io::kError) {
      addFlag("DC");
      finish();
      return;
    }
    d_eof_ = r == Io::kEof;
  }
  pump();
}

void HttpSession::pump() {
  // The client is read ahead of the upstream (up to kHighWater in din_): what is parsed waits
  // while uout_ is full, so each time writeUp makes room the parser runs again.
  for (;;) {
    while (!done_) {
      if (tunnel_) {
        if (!din_.empty()) {
          uout_.append(din_.view());
          din_.consume(din_.size());
        }
        break;
      }
      if (ex_ && ex_->resp_done && (ex_->req_done || ex_->local)) {
        finishExchange();
        continue;
      }
      if (d_closing_) break;
      if (on_h2_preface && !din_.empty() && handOffH2()) return;
      bool parse = !din_.empty() && (!ex_ || (!ex_->req_done && uout_.size() < kHighWater));
      if (!parse) break;
      size_t used = dparser_->feed(din_.data(), din_.size());
      din_.consume(used);
      if (dparser_->failed()) {
        parseError();
        break;
      }
      if (used == 0 || dparser_->upgraded()) break;
    }
    if (done_) return;
    // A request body waiting behind a full upstream queue is not a client that went away.
    bool held_back =
        !tunnel_ && ex_ && !ex_->req_done && !din_.empty() && uout_.size() >= kHighWater;
    if (d_eof_ && !tunnel_ && !held_back) {
      if (!ex_) {
        d_closing_ = true;
      } else if (!ex_->req_done) {
        addFlag("DC");  // the client went away in the middle of its request
        finish();
        return;
      }
    }
    writeUp();
    if (done_) return;
    if (!held_back || uout_.size() >= kHighWater) break;  // no room made: wait for EPOLLOUT
  }
  writeDown();
  if (done_) return;
  if (d_closing_ && dout_.empty() && !ex_) {
    finish();
    return;
  }
  updateInterest();
}

bool HttpSession::handOffH2() {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  size_t n = std::min(din_.size(), kPreface.size());
  if (din_.view().substr(0, n) != kPreface.substr(0, n)) {
    on_h2_preface = nullptr;  // HTTP/1: decided for the whole connection
    return false;
  }
  if (n < kPreface.size()) {
    if (d_eof_) {
      on_h2_preface = nullptr;  // the HTTP/1 parser answers it
      return false;
    }
    updateInterest();  // the rest of the preface is still coming
    return true;
  }
  auto hand = std::move(on_h2_preface);
  on_h2_preface = nullptr;
  int fd = dfd_;
  loop_.remove(dfd_);
  dfd_ = -1;
  ByteBuf read = std::move(din_);
  din_ = ByteBuf();
  hand(fd, std::move(read));
  finish();
  return true;
}

void HttpSession::writeDown() {
  if (sendFrom(dfd_, dout_) == Io::kError) {
    addFlag("DC");
    finish();
    return;
  }
  dout_.release(kHighWater);
  if (tunnel_ && dout_.empty() && ufd_ < 0) finish();  // upstream ended its side: done
}

void HttpSession::parseError() {
  if (ex_ && ex_->resp_started) {
    finish();
    return;
  }
  if (!ex_) {
    startExchange();
    ex_->rec.service_host = service_ ? service_->host : "";
  }
  ++requests_;
  closeUpstream(false);
  ex_->rec.status = dparser_->errorStatus() ? dparser_->errorStatus() : 400;
  addFlag("DPE");
  writeSimpleResponse(ex_->rec.status, dparser_->error() + "\n", true, {}, dout_);
  ex_->local = ex_->resp_started = ex_->resp_done = ex_->req_done = true;
  ex_->close_after = true;
  finishExchange();
}

void HttpSession::onRequestHead(RequestHead&& head) {
  ++requests_;
  startExchange();
  Exchange& ex = *ex_;
  ex.head_request = head.method == "HEAD";
  ex.upgrade = head.framing.upgrade;
  ex.close_after = !head.framing.keep_alive;
  // Marked by H2ServerBridge; from anyone else the mark is dropped (and means nothing).
  if (head.headers.has(kDownstreamH2Header)) {
    ex.h2 = bridged;
    head.headers.remove(kDownstreamH2Header);
  }
  if (ex.upgrade && head.method != "CONNECT" && upgradesToH2c(head.headers)) {
    // The request goes on as HTTP/1.1 without the upgrade; the parser stops at its end, so the
    // connection closes after the response.
    ex.upgrade = false;
    ex.close_after = true;
    head.headers.remove("upgrade");
    head.headers.remove("http2-settings");
  }
  RequestRecord& rec = ex.rec;
  if (ex.h2) {
    const std::string* ct = head.headers.get("content-type");
    rec.protocol = ct && ct->rfind("application/grpc", 0) == 0 ? "grpc" : "http";
  }
  rec.source_pod = source_.pod;
  rec.source_principal = source_.principal;
  rec.method = head.method;
  rec.path = std::string(head.path());
  rec.authority = head.authority();
  if (service_) {
    rec.service_host = service_->host;
    rec.service_name = service_->name;
    rec.service_namespace = service_->ns;
  }
  // Trace context and request id, started here when the client sent none.
  const std::string* rid = head.headers.get("x-request-id");
  if (rid) {
    rec.request_id = *rid;
  } else {
    uuid(rt_, rec.request_id);
  }
  // The fields this adds, with room to spare: the list grows once.
  head.headers.fields.reserve(head.headers.size() + 8);
  if (!rid) head.headers.add("x-request-id", rec.request_id);
  char span[16];
  hex16(random64(rt_), span);
  std::string_view flags = "01";
  if (const std::string* tp = head.headers.get("traceparent");
      tp && tp->size() == 55 && isHex(std::string_view(*tp).substr(3, 32), 32)) {
    rec.trace_id.assign(*tp, 3, 32);
    flags = std::string_view(*tp).substr(53, 2);
  } else if (const std::string* b3 = head.headers.get("x-b3-traceid");
             b3 && (isHex(*b3, 32) || isHex(*b3, 16))) {
    rec.trace_id.assign(32 - b3->size(), '0').append(*b3);
  } else {
    char trace[32];
    hex16(random64(rt_), trace);
    hex16(random64(rt_), trace + 16);
    rec.trace_id.assign(trace, 32);
  }
  const std::string& trace = rec.trace_id;
  if (const std::string* parent = head.headers.get("x-b3-spanid")) {
    head.headers.set("x-b3-parentspanid", *parent);
  }
  std::string traceparent;
  traceparent.reserve(55);
  traceparent.append("00-").append(trace).append(1, '-').append(span, 16).append(1, '-');
  traceparent.append(flags);
  // `flags` may point into the old traceparent field: read it before that is replaced.
  bool sampled = flags != "00";
  head.headers.set("traceparent", traceparent);
  if (!head.headers.has("x-b3-traceid")) head.headers.set("x-b3-traceid", trace);
  head.headers.set("x-b3-spanid", std::string_view(span, 16));
  if (!head.headers.has("x-b3-sampled")) head.headers.set("x-b3-sampled", sampled ? "1" : "0");

  if (!service_) {
    respondLocal(404, "no route: the service has no L7 configuration\n", "NR");
    return;
  }
  if (head.method == "CONNECT") {
    respondLocal(405, "CONNECT is not proxied on the L7 path\n", "-");
    return;
  }
  RequestAttrs attrs;
  attrs.method = head.method;
  attrs.path = head.path();
  attrs.query = head.query();
  std::string authority = head.authority();
  attrs.authority = authority;
  attrs.headers = &head.headers;
  attrs.port = service_->port;
  attrs.source_labels = &source_.labels;
  attrs.source_namespace = source_.ns;
  int match_index = -1;
  ex.route = matchRoute(*service_, attrs, &match_index);
  if (!ex.route) {
    respondLocal(404, "", "NR");
    return;
  }
  rec.route = ex.route->name;
  const HttpRoute* spec = ex.route->spec;
  // Local rate limits: the service's bucket, then the route's.
  if ((service_->rate_limit &&
       !rt_.takeToken("service|" + service_->host + ":" + std::to_string(service_->port),
                      *service_->rate_limit)) ||
      (ex.route->rate_limit &&
       !rt_.takeToken("route|" + ex.route->virtual_service + "|" + ex.route->name,
                      *ex.route->rate_limit))) {
    respondLocal(429, "local_rate_limited\n", "RL");
    return;
  }

  if (spec && spec->redirect) {
    const HttpRedirect& r = *spec->redirect;
    std::string host = r.authority.empty() ? authority : r.authority;
    if (r.port) {
      size_t colon = host.rfind(':');
      if (colon != std::string::npos && host.find(']', colon) == std::string::npos) {
        host.resize(colon);
      }
      host += ":" + std::to_string(r.port);
    }
    std::string path = r.uri.empty() ? std::string(head.path()) : r.uri;
    std::string query(head.query());
    if (!query.empty() && path.find('?') == std::string::npos) path += "?" + query;
    HeaderList extra;
    extra.add("location", (r.scheme.empty() ? "http" : r.scheme) + "://" + host + path);
    respondLocal(r.redirect_code, "", "-", extra);
    return;
  }
  if (spec && spec->fault) {
    const HttpFault& f = *spec->fault;
    auto hit = [&](double pct) { return rt_.random() % 1000000 < pct * 10000.0; };
    if (f.delay && f.delay->fixed_delay_ms > 0 && hit(f.delay->percentage)) {
      ex.delay_until = nowMs() + f.delay->fixed_delay_ms;
      addFlag("DI");
    }
    if (f.abort && hit(f.abort->percentage)) {
      respondLocal(f.abort->http_status, "fault filter abort\n", "FI");
      return;
    }
  }
  ex.wc = pickCluster(*ex.route, rt_.random() % 100);
  if (!ex.wc || ex.wc->cluster >= config_->clusters.size()) {
    respondLocal(503, "no healthy upstream\n", "UH");
    return;
  }
  ex.cluster = &config_->clusters[ex.wc->cluster];
  rec.cluster = ex.cluster->name;
  rec.destination_host = ex.cluster->host;

  // AuthorizationPolicy sees the request as the client sent it (Envoy's RBAC filter runs before
  // the router rewrites it).
  if (!config_->snapshot || !config_->snapshot->authorization_policies.empty()) {
    ex.original_headers = head.headers;
  }
  // The head as it goes upstream.
  if (spec && spec->rewrite) {
    const HttpRewrite& rw = *spec->rewrite;
    std::string path(head.path());
    std::string query(head.query());
    if (rw.uri_regex) {
      try {
        path = std::regex_replace(path, std::regex(rw.uri_regex->first), rw.uri_regex->second);
      } catch (const std::regex_error&) {
      }
    } else if (!rw.uri.empty()) {
      const HttpMatch* m =
          match_index >= 0 ? &spec->match[static_cast<size_t>(match_index)] : nullptr;
      if (m && m->uri && m->uri->kind == StringMatch::Kind::kPrefix &&
          path.size() >= m->uri->value.size()) {
        path = rw.uri + path.substr(m->uri->value.size());
      } else {
        path = rw.uri;
      }
    }
    head.target = query.empty() ? path : path + "?" + query;
    if (!rw.authority.empty()) head.headers.set("host", rw.authority);
  }
  stripHopByHop(head.headers, ex.upgrade);
  if (spec) applyHeaderOps(spec->headers.request, head.headers);
  if (ex.wc->headers) applyHeaderOps(ex.wc->headers->request, head.headers);
  if (!head.headers.has("host")) head.headers.set("host", authority);
  head.headers.set("x-forwarded-proto", "http");
  if (head.framing.chunked) {
    head.headers.remove("content-length");
    head.headers.add("transfer-encoding", "chunked");
    ex.chunked_in = true;
  }
  head.version_minor = 1;
  size_t head_at = uout_.size();
  writeRequestHead(head, uout_);
  ex.replay.append(uout_.view().substr(head_at));
  if (spec && !spec->mirrors.empty() && !ex.upgrade) startShadows(head);

  // Retries: the route's policy, or Istio's default (2 retries of connect failures).
  ex.retry_on = {RetryOn::kConnectFailure, RetryOn::kRefusedStream};
  ex.max_attempts = 3;
  if (spec && spec->retries) {
    ex.max_attempts = 1 + spec->retries->attempts;
    if (!spec->retries->retry_on.empty()) ex.retry_on = spec->retries->retry_on;
    ex.retry_codes = spec->retries->retriable_status_codes;
    if (spec->retries->per_try_timeout_ms) ex.per_try_ms = *spec->retries->per_try_timeout_ms;
  }
  if (ex.upgrade) ex.max_attempts = 1;
  if (spec && spec->timeout_ms && *spec->timeout_ms > 0) {
    ex.deadline = nowMs() + *spec->timeout_ms;
  }
  ex.head = std::move(head);
  if (ex.delay_until) {
    armTimer();
    return;
  }
  dispatch();
}

void HttpSession::onRequestBody(std::string_view bytes) {
  if (!ex_) return;
  Exchange& ex = *ex_;
  ex.rec.request_bytes += bytes.size();
  for (auto& sh : ex.shadows) {
    if (!sh.cluster) continue;
    if (ex.chunked_in) {
      writeChunk(bytes, sh.bytes);
    } else {
      sh.bytes.append(bytes);
    }
    if (sh.bytes.size() > kReplayMax) {  // too big to keep: not mirrored
      sh.cluster = nullptr;
      sh.bytes = ByteBuf();
    }
  }
  if (ex.local) return;
  size_t before = uout_.size();
  if (ex.chunked_in) {
    writeChunk(bytes, uout_);
  } else {
    uout_.append(bytes);
  }
  if (ex.replayable) {
    size_t added = uout_.size() - before;
    if (ex.replay.size() + added <= kReplayMax) {
      ex.replay.append(std::string_view(uout_.data() + before, added));
    } else {
      ex.replayable = false;
      ex.replay = ByteBuf();
    }
  }
}

void HttpSession::onRequestEnd() {
  if (!ex_) return;
  Exchange& ex = *ex_;
  ex.req_done = true;
  if (!ex.shadows.empty()) sendShadows();
  if (ex.local || !ex.chunked_in) return;
  size_t before = uout_.size();
  if (ex.trailers_in.fields.empty()) {
    writeLastChunk(uout_);
  } else {
    writeLastChunk(ex.trailers_in, uout_);
  }
  if (ex.replayable)
    ex.replay.append(std::string_view(uout_.data() + before, uout_.size() - before));
}

void HttpSession::onRequestTrailers(HeaderList&& trailers) {
  if (!ex_ || ex_->local) return;
  stripTrailerFields(trailers);
  ex_->trailers_in = std::move(trailers);
}

void HttpSession::respondLocal(int status, std::string_view body, const std::string& flag,
                               const HeaderList& extra) {
  if (!ex_) return;
  Exchange& ex = *ex_;
  if (!waiting_in_.empty()) {  // e.g. its timeout fired while it waited for a connection
    rt_.forgetPending(this, waiting_in_);
    waiting_in_.clear();
  }
  closeUpstream(false);
  emptyKeeping(uout_);
  ex.rec.status = status;
  if (flag != "-") addFlag(flag);
  if (ex.attempts > 1 && flag != "URX") addFlag("URX");
  // The request's body may still be coming: the connection closes after this answer then.
  ex.close_after = ex.close_after || !ex.req_done;
  writeSimpleResponse(status, body, ex.close_after, extra, dout_);
  ex.local = ex.resp_started = ex.resp_done = true;
}

// ---- upstream ----

bool HttpSession::pickEndpoint() {
  Exchange& ex = *ex_;
  const auto& all = ex.cluster->endpoints;
  if (all.empty()) return false;
  // Endpoints outlier detection ejected are skipped, unless that leaves none (Envoy's panic
  // threshold: then every endpoint takes traffic).
  std::vector<L7Endpoint> healthy;
  if (ex.cluster->outlier && rt_.ejectedCount() > 0) {
    for (const auto& ep : all) {
      if (!rt_.ejected(ex.cluster->name, endpointKey(ep))) healthy.push_back(ep);
    }
  }
  const auto& eps = healthy.empty() ? all : healthy;
  const L7Endpoint* previous = ex.ep;
  auto pick = [&]() -> const L7Endpoint* {
    const LoadBalancerSettings& lb = ex.cluster->lb;
    size_t n = eps.size();
    switch (lb.policy) {
      case LbPolicy::kRandom:
        return &eps[rt_.random() % n];
      case LbPolicy::kLeastRequest: {
        const L7Endpoint* a = &eps[rt_.random() % n];
        const L7Endpoint* b = &eps[rt_.random() % n];
        return rt_.active()[endpointKey(*b)] < rt_.active()[endpointKey(*a)] ? b : a;
      }
      case LbPolicy::kConsistentHash:
        if (lb.consistent_hash) {
          const ConsistentHash& ch = *lb.consistent_hash;
          std::string key;
          switch (ch.kind) {
            case ConsistentHash::Kind::kHeader:
              if (const std::string* v = ex.head.headers.get(ch.name)) key = *v;
              break;
            case ConsistentHash::Kind::kCookie:
              key = cookieValue(ex.head.headers, ch.name);
              break;
            case ConsistentHash::Kind::kSourceIp:
              key = source_.ip.toString();
              break;
            case ConsistentHash::Kind::kQueryParameter:
              key = queryValue(ex.head.query(), ch.name);
              break;
          }
          if (!key.empty()) {
            // Rendezvous hashing: an endpoint joining or leaving moves only its own keys.
            const L7Endpoint* best = nullptr;
            uint64_t best_score = 0;
            uint64_t h = fnv1a(key);
            for (const auto& ep : eps) {
              uint64_t score = fnv1a(endpointKey(ep), h);
              if (!best || score > best_score) {
                best = &ep;
                best_score = score;
              }
            }
            return best;
          }
        }
        return &eps[rt_.random() % n];
      default:
        return &eps[rt_.nextRoundRobin(ex.cluster->name) % n];
    }
  };
  const L7Endpoint* ep = pick();
  auto same = [&](const L7Endpoint* e) {
    return previous && e->ip == previous->ip && e->port == previous->port;
  };
  for (int i = 0; i < 3 && same(ep) && eps.size() > 1; ++i) ep = pick();
  // `ep` may point into `healthy`: keep the cluster's own entry.
  for (const auto& e : all) {
    if (e.ip == ep->ip && e.port == ep->port) ep = &e;
  }
  ex.ep = ep;
  ex.ep_key = endpointKey(*ep);
  ex.rec.upstream = ex.ep_key;
  ex.rec.upstream_pod = ep->pod;
  ex.rec.mutual_tls = ep->tunnel;
  return true;
}

void HttpSession::dispatch() {
  Exchange& ex = *ex_;
  ex.dispatched = true;
  ex.delay_until = 0;
  L7Runtime::ClusterLoad& load = rt_.load(ex.cluster->name);
  const ConnectionPoolSettings& pool = ex.cluster->pool;
  if (pool.http2_max_requests > 0 && load.requests >= pool.http2_max_requests) {
    respondLocal(503,
                 "upstream connect error or disconnect/reset before headers. reset reason: "
                 "overflow\n",
                 "UO");
    return;
  }
  ++load.requests;
  ex.counted_request = true;
  if (!pickEndpoint()) {
    respondLocal(503, "no healthy upstream\n", "UH");
    return;
  }
  if (!authorize()) return;
  connectUpstream();
}

void HttpSession::startShadows(const RequestHead& upstream_head) {
  Exchange& ex = *ex_;
  for (const L7Mirror& m : ex.route->mirrors) {
    if (m.cluster >= config_->clusters.size()) continue;
    if (!(rt_.random() % 1000000 < m.percentage * 10000.0)) continue;
    // As Envoy does: the mirror sees the authority with "-shadow" after the host.
    RequestHead copy = upstream_head;
    std::string host = copy.authority();
    size_t colon = host.rfind(':');
    if (colon != std::string::npos && host.find(']', colon) == std::string::npos) {
      host.insert(colon, "-shadow");
    } else {
      host += "-shadow";
    }
    copy.headers.set("host", host);
    copy.headers.set("connection", "close");
    Exchange::Shadow sh{&config_->clusters[m.cluster], ByteBuf()};
    writeRequestHead(copy, sh.bytes);
    ex.shadows.push_back(std::move(sh));
  }
}

void HttpSession::sendShadows() {
  Exchange& ex = *ex_;
  for (auto& sh : ex.shadows) {
    if (!sh.cluster || sh.cluster->endpoints.empty()) continue;
    if (ex.chunked_in) writeLastChunk(sh.bytes);
    // Any endpoint outlier detection has not ejected; all of them when that leaves none.
    std::vector<const L7Endpoint*> eps;
    for (const auto& ep : sh.cluster->endpoints) {
      if (!sh.cluster->outlier || !rt_.ejected(sh.cluster->name, endpointKey(ep))) {
        eps.push_back(&ep);
      }
    }
    if (eps.empty()) {
      for (const auto& ep : sh.cluster->endpoints) eps.push_back(&ep);
    }
    const L7Endpoint& ep = *eps[rt_.random() % eps.size()];
    std::string why;
    if (!allowedTo(ep, &why)) {
      logInfo("l7: not mirrored to " + ep.pod + ": " + why);
      continue;
    }
    rt_.shadow(env_, source_.pod, ep, ex.h2 || sh.cluster->http2, std::move(sh.bytes));
  }
  ex.shadows.clear();
}

bool HttpSession::authorize() {
  Exchange& ex = *ex_;
  if (!ex.ep) return true;
  std::string why;
  if (allowedTo(*ex.ep, &why)) return true;
  logInfo("l7: denied " + ex.rec.method + " " + ex.rec.path + " from " + source_.pod + " to " +
          ex.ep->pod + ": " + why);
  respondLocal(403, "RBAC: access denied", "-");
  return false;
}

bool HttpSession::allowedTo(const L7Endpoint& ep, std::string* why) {
  Exchange& ex = *ex_;
  const Snapshot* snap = config_ ? config_->snapshot.get() : nullptr;
  if (!snap || snap->authorization_policies.empty() || ep.pod.empty()) return true;
  L4Connection c;
  const std::string kScheme = "spiffe://";
  c.source_principal = source_.principal.rfind(kScheme, 0) == 0
                           ? source_.principal.substr(kScheme.size())
                           : source_.principal;
  c.source_ip = source_.ip;
  c.destination_ip = ep.ip;
  c.destination_port = ep.port;
  c.destination_namespace = ep.pod.substr(0, ep.pod.find('/'));
  c.destination_labels = ep.labels;
  HttpRequestAttrs h;
  h.method = ex.rec.method;
  h.path = ex.rec.path;
  std::string host = ex.rec.authority;
  if (size_t colon = host.rfind(':');
      colon != std::string::npos && host.find(']', colon) == std::string::npos) {
    host.resize(colon);
  }
  h.host = host;
  h.header = [&ex](const std::string& name) { return ex.original_headers.joined(name); };
  AuthzDecision d = authorizeL7(*snap, c, h);
  if (!d.allowed && why) *why = describe(d);
  return d.allowed;
}

void HttpSession::resumePending() {
  if (done_ || !ex_ || ex_->resp_started) return;
  connectUpstream();
  pump();
}

void HttpSession::releaseClusterSlot() {
  if (!ex_ || !ex_->counted_request) return;
  ex_->counted_request = false;
  --rt_.load(ex_->cluster->name).requests;
}

void HttpSession::connectUpstream() {
  Exchange& ex = *ex_;
  L7Runtime::ClusterLoad& load = rt_.load(ex.cluster->name);
  const ConnectionPoolSettings& pool = ex.cluster->pool;
  // HTTP/2 upstream when the request came over HTTP/2 (Envoy's "use downstream protocol") or
  // the service port declares it (appProtocol/name http2, grpc, h2c: Istio's choice).
  bool h2 = ex.h2 || ex.cluster->http2;
  ex.upstream_h2 = h2;
  u_key_.assign(source_.pod).append(1, '|').append(ex.ep_key).append(h2 ? "|h2" : "");
  int uses = 0;
  int fd = -1;
  if (pool.max_connections > 0 && load.connections >= pool.max_connections) {
    // Every connection the cluster may have is busy: wait for one (up to
    // http1MaxPendingRequests waiting), or overflow.
    if (pool.http1_max_pending_requests > 0 &&
        static_cast<int>(load.pending.size()) >= pool.http1_max_pending_requests) {
      respondLocal(503,
                   "upstream connect error or disconnect/reset before headers. reset "
                   "reason: overflow\n",
                   "UO");
      return;
    }
    load.pending.push_back(this);
    waiting_in_ = ex.cluster->name;
    return;
  }
  ++ex.attempts;
  ex.rec.attempts = ex.attempts;
  ++rt_.active()[ex.ep_key];
  ex.counted_active = true;
  bool held = false;
  if (held_.fd >= 0) {
    if (held_.key == u_key_ && !ex.upgrade) {
      // The connection the last request of this client used goes to the same endpoint: it is
      // still registered for this session, with EPOLLIN, and its parser is between messages.
      held = true;
      fd = std::exchange(held_.fd, -1);
      uses = held_.uses;
    } else {
      releaseHeld();
    }
  }
  if (!held && !ex.upgrade) fd = rt_.takeIdle(u_key_, &uses);
  u_uses_ = uses + 1;
  ++load.connections;
  u_counted_ = true;
  u_connecting_ = false;
  if (held) {
    ufd_ = fd;
    u_interest_ = EPOLLIN;
    uparser_->expectNoBody(ex.head_request);
    ex.try_deadline = ex.per_try_ms ? nowMs() + ex.per_try_ms : 0;
    armTimer();
    return;
  }
  if (fd < 0) {
    auto dialled = env_.dial ? env_.dial(source_.pod, *ex.ep, h2) : Result<int>(Error("no dialer"));
    if (!dialled.ok()) {
      logLine(LogLevel::kDebug, "l7: dial " + ex.ep_key + ": " + dialled.error().message());
      upstreamFailed("UF", true);
      return;
    }
    fd = *dialled;
    u_connecting_ = true;
  }
  ufd_ = fd;
  emptyKeeping(uin_);
  if (uparser_) {
    uparser_->reset();  // a new connection: the parser keeps its memory
  } else {
    uparser_ = std::make_unique<Http1Parser>(Http1Parser::Kind::kResponse, *up_events_);
  }
  uparser_->expectNoBody(ex.head_request);
  // A pooled connection is written to at once (pump): it starts with EPOLLIN alone.
  u_interest_ = u_connecting_ ? static_cast<uint32_t>(EPOLLOUT) : EPOLLIN;
  if (!loop_.set(ufd_, u_interest_, [this](uint32_t e) { onUp(e); }).ok()) {
    loop_.remove(ufd_);
    close(ufd_);
    ufd_ = -1;
    upstreamFailed("UF", true);
    return;
  }
  int64_t now = nowMs();
  ex.try_deadline = ex.per_try_ms ? now + ex.per_try_ms : 0;
  if (u_connecting_) {
    int64_t connect_deadline = now + kConnectTimeoutMs;
    if (!ex.try_deadline || connect_deadline < ex.try_deadline) ex.try_deadline = connect_deadline;
  }
  armTimer();
}

void HttpSession::onUp(uint32_t events) {
  if (done_) return;
  if (ufd_ < 0) {
    // The held idle connection (nothing else of this session's is registered with onUp then):
    // readable means the server closed it or sent bytes nobody asked for. Not reused.
    if (held_.fd >= 0) {
      loop_.remove(held_.fd);
      close(std::exchange(held_.fd, -1));
    }
    return;
  }
  if (u_connecting_) {
    int err = proxy::socketError(ufd_);
    if (err == 0 && (events & (EPOLLERR | EPOLLHUP))) err = ECONNRESET;
    if (err != 0) {
      logLine(LogLevel::kDebug,
              "l7: connect " + (ex_ ? ex_->ep_key : std::string("?")) + ": " + std::strerror(err));
      upstreamFailed("UF", true);
      pump();
      return;
    }
    u_connecting_ = false;
    if (ex_ && ex_->per_try_ms == 0) {
      ex_->try_deadline = 0;
      armTimer();
    } else if (ex_) {
      ex_->try_deadline = nowMs() + ex_->per_try_ms;
      armTimer();
    }
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    readUp();
    if (done_) return;
  }
  pump();
}

void HttpSession::readUp() {
  Io r = ufd_ < 0 ? Io::kOk : receiveInto(ufd_, uin_, [this] { return dout_.size() < kHighWater; });
  bool eof = r == Io::kEof, error = r == Io::kError;
  if (tunnel_) {
    if (!uin_.empty()) {
      dout_.append(uin_.view());
      uin_.consume(uin_.size());
    }
    if (eof || error) {
      if (error) {
        finish();
        return;
      }
      loop_.remove(ufd_);
      shutdown(dfd_, SHUT_WR);
      close(ufd_);
      ufd_ = -1;
      if (dout_.empty()) finish();
    }
    return;
  }
  while (ex_ && uparser_ && !uin_.empty() && !ex_->resp_done && !ex_->retry_now) {
    size_t used = uparser_->feed(uin_.data(), uin_.size());
    uin_.consume(used);
    if (uparser_->failed()) {
      logLine(LogLevel::kDebug, "l7: bad response from " + ex_->ep_key + ": " + uparser_->error());
      if (!ex_->resp_started) {
        closeUpstream(false);
        respondLocal(502, "upstream sent an invalid response\n", "UPE");
      } else {
        addFlag("UPE");
        finish();
      }
      return;
    }
    if (uparser_->upgraded()) {
      // 101: from here on both sides speak the new protocol through us.
      tunnel_ = true;
      dout_.append(uin_.view());
      uin_.consume(uin_.size());
      if (ex_ && ex_->counted_active) --rt_.active()[ex_->ep_key];
      if (env_.on_request && ex_) {
        ex_->rec.duration_ms =
            std::chrono::duration<double, std::milli>(Clock::now() - ex_->start).count();
        env_.on_request(ex_->rec);
      }
      endExchange();
      armTimer();
      pump();
      return;
    }
    if (used == 0) break;
  }
  if (ex_ && ex_->retry_now) {
    ex_->retry_now = false;
    if (!ex_->pool_reset.empty()) {
      poolReset(std::exchange(ex_->pool_reset, std::string()));
      return;
    }
    if (!retry("-")) respondLocal(ex_->response_status, "", "URX");
    return;
  }
  if (ex_ && ex_->resp_done) {
    // Bytes after the response, or a close: the connection cannot be reused.
    if (!uin_.empty() || eof || error) ex_->up_keep_alive = false;
    return;
  }
  if (eof || error) {
    if (eof && ex_ && uparser_) {
      uparser_->finish();  // a body that runs to the close ends here
      if (ex_->resp_done) {
        ex_->up_keep_alive = false;
        return;
      }
    }
    if (ex_ && !ex_->resp_started) {
      upstreamFailed("UC", false);
    } else {
      addFlag("UC");
      finish();
    }
  }
}

void HttpSession::writeUp() {
  if (ufd_ < 0 || u_connecting_) return;
  if (sendFrom(ufd_, uout_) == Io::kError) {
    if (tunnel_) {
      finish();
    } else {
      upstreamFailed("UC", false);
    }
    return;
  }
  uout_.release(kHighWater);
  if (tunnel_ && d_eof_ && uout_.empty() && ufd_ >= 0) shutdown(ufd_, SHUT_WR);
}

void HttpSession::onResponseHead(ResponseHead&& head) {
  if (!ex_) return;
  Exchange& ex = *ex_;
  if (head.status < 200 && head.status != 101) {
    if (head.status == 100 && ex.head.expect_continue) {
      dout_.append(std::string_view("HTTP/1.1 100 Continue\r\n\r\n"));
    }
    return;
  }
  if (ex.upstream_h2) {
    if (const std::string* why = head.headers.get(kUpstreamResetHeader)) {
      ex.pool_reset = *why;  // readUp acts on it once the parser is done with this response
      ex.retry_now = true;
      return;
    }
  }
  if (ex.cluster) {
    rt_.recordOutcome(*ex.cluster, ex.ep_key, head.status >= 500,
                      head.status == 502 || head.status == 503 || head.status == 504);
  }
  if (ex.attempts < ex.max_attempts && ex.replayable &&
      retriableStatus(head.status, ex.retry_on, ex.retry_codes)) {
    ex.retry_now = true;
    ex.response_status = head.status;
    return;
  }
  if (ex.attempts > 1 && retriableStatus(head.status, ex.retry_on, ex.retry_codes)) {
    addFlag("URX");
  }
  ex.resp_started = true;
  ex.rec.status = head.status;
  if (const std::string* gs = head.headers.get("grpc-status")) ex.rec.grpc_status = *gs;
  ex.up_keep_alive = head.framing.keep_alive;
  bool no_body = ex.head_request || head.status == 204 || head.status == 304;
  stripHopByHop(head.headers, head.status == 101);
  const HttpRoute* spec = ex.route ? ex.route->spec : nullptr;
  if (spec) applyHeaderOps(spec->headers.response, head.headers);
  if (ex.wc && ex.wc->headers) applyHeaderOps(ex.wc->headers->response, head.headers);
  if (head.status != 101 && !no_body && !head.framing.content_length) {
    if (ex.head.version_minor >= 1) {
      head.headers.set("transfer-encoding", "chunked");
      ex.chunked_out = true;
    } else {
      ex.close_after = true;
    }
  }
  if (ex.upgrade && head.status != 101) ex.close_after = true;
  if (ex.close_after) head.headers.set("connection", "close");
  head.version_minor = 1;
  writeResponseHead(head, dout_);
}

void HttpSession::onResponseBody(std::string_view bytes) {
  if (!ex_ || ex_->retry_now || !ex_->resp_started) return;
  ex_->rec.response_bytes += bytes.size();
  if (ex_->chunked_out) {
    writeChunk(bytes, dout_);
  } else {
    dout_.append(bytes);
  }
}

void HttpSession::onResponseEnd() {
  if (!ex_ || ex_->retry_now || !ex_->resp_started) return;  // a 1xx ended
  if (ex_->chunked_out && ex_->trailers_out.fields.empty()) {
    writeLastChunk(dout_);
  } else if (ex_->chunked_out) {
    writeLastChunk(ex_->trailers_out, dout_);
  }
  ex_->resp_done = true;
}

void HttpSession::onResponseTrailers(HeaderList&& trailers) {
  if (!ex_ || ex_->retry_now || !ex_->resp_started) return;
  if (const std::string* gs = trailers.get("grpc-status")) ex_->rec.grpc_status = *gs;
  stripTrailerFields(trailers);
  ex_->trailers_out = std::move(trailers);  // an HTTP/1.0 client (not chunked) goes without
}

void HttpSession::upstreamFailed(const std::string& flag, bool connect_failure) {
  if (!ex_) return;
  if (ex_->cluster && ex_->ep) rt_.recordOutcome(*ex_->cluster, ex_->ep_key, true, true);
  closeUpstream(false);
  if (ex_->resp_started) {
    addFlag(flag);
    finish();
    return;
  }
  bool can = connect_failure ? hasRetryOn(ex_->retry_on, RetryOn::kConnectFailure) ||
                                   hasRetryOn(ex_->retry_on, RetryOn::kGatewayError) ||
                                   hasRetryOn(ex_->retry_on, RetryOn::k5xx)
                             : hasRetryOn(ex_->retry_on, RetryOn::kReset) ||
                                   hasRetryOn(ex_->retry_on, RetryOn::k5xx) ||
                                   hasRetryOn(ex_->retry_on, RetryOn::kGatewayError);
  if (can && retry(flag)) return;
  respondLocal(503,
               connect_failure ? "upstream connect error or disconnect/reset before headers. "
                                 "reset reason: connection failure\n"
                               : "upstream connect error or disconnect/reset before headers. "
                                 "reset reason: connection termination\n",
               flag);
}

void HttpSession::poolReset(const std::string& why) {
  if (why == "connect-failure") {
    upstreamFailed("UF", true);
    return;
  }
  // refused-stream: the server took nothing of it (RFC 9113 8.7), it can go again anywhere.
  closeUpstream(false);
  if (hasRetryOn(ex_->retry_on, RetryOn::kRefusedStream) && retry("UR")) return;
  respondLocal(503,
               "upstream connect error or disconnect/reset before headers. reset reason: "
               "remote refused stream reset\n",
               "UR");
}

bool HttpSession::retry(const std::string&) {
  Exchange& ex = *ex_;
  if (ex.attempts >= ex.max_attempts || !ex.replayable || ex.resp_started) return false;
  closeUpstream(false);
  emptyKeeping(uout_);
  uout_.append(ex.replay.view());
  if (!pickEndpoint()) return false;
  if (authorize()) connectUpstream();
  return true;
}

void HttpSession::closeUpstream(bool reusable) {
  if (ex_ && ex_->counted_active) {
    --rt_.active()[ex_->ep_key];
    ex_->counted_active = false;
  }
  std::string released;
  if (u_counted_ && ex_ && ex_->cluster) {
    u_counted_ = false;
    --rt_.load(ex_->cluster->name).connections;
    released = ex_->cluster->name;
  }
  if (ufd_ >= 0) {
    if (reusable) {
      rt_.putIdle(u_key_, ufd_, u_uses_);  // stays in the loop, with the pool's handler
    } else {
      loop_.remove(ufd_);
      close(ufd_);
    }
  }
  ufd_ = -1;
  u_interest_ = 0;
  u_connecting_ = false;
  emptyKeeping(uin_);
  if (ex_) ex_->try_deadline = 0;
  if (!released.empty()) rt_.connectionReleased(released);
}

// ---- both ----

void HttpSession::finishExchange() {
  Exchange& ex = *ex_;
  int max_uses = ex.cluster ? ex.cluster->pool.max_requests_per_connection : 0;
  bool reusable = ex.req_done && ex.resp_done && ex.up_keep_alive && !ex.upgrade && uin_.empty() &&
                  uout_.empty() && !u_connecting_ && (max_uses <= 0 || u_uses_ < max_uses);
  // Without a connection limit the session keeps its connection for the client's next request
  // (most go to the same endpoint): no trip through the pool. With one, it goes back to the
  // pool, where sessions waiting for a connection of the cluster get it.
  if (reusable && ufd_ >= 0 && ex.cluster && ex.cluster->pool.max_connections <= 0) {
    int fd = std::exchange(ufd_, -1);
    if (u_interest_ != EPOLLIN) loop_.modify(fd, EPOLLIN);
    closeUpstream(false);  // the accounting; ufd_ is -1 now
    held_.fd = fd;
    held_.key = u_key_;
    held_.uses = u_uses_;
  } else {
    closeUpstream(reusable);
  }
  releaseClusterSlot();
  emptyKeeping(uout_);
  ex.rec.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - ex.start).count();
  if (env_.on_request) env_.on_request(ex.rec);
  if (ex.close_after || !ex.req_done) d_closing_ = true;
  endExchange();
  armTimer();
}

void HttpSession::armTimer() {
  int64_t at = 0;
  if (ex_) {
    for (int64_t t : {ex_->delay_until, ex_->deadline, ex_->try_deadline}) {
      if (t && (!at || t < at)) at = t;
    }
  }
  if (at == timer_at_) return;  // most requests have no deadline: no syscall
  timer_at_ = at;
  itimerspec its{};
  if (at) {
    int64_t in = std::max<int64_t>(at - nowMs(), 1);
    its.it_value.tv_sec = in / 1000;
    its.it_value.tv_nsec = (in % 1000) * 1000000;
  }
  timerfd_settime(timer_fd_, 0, &its, nullptr);
}

void HttpSession::onTimer() {
  uint64_t expirations = 0;
  if (read(timer_fd_, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) return;
  timer_at_ = 0;  // one-shot: it fired
  if (done_ || !ex_) return;
  int64_t now = nowMs();
  Exchange& ex = *ex_;
  if (ex.deadline && now >= ex.deadline) {
    if (!ex.resp_started) {
      closeUpstream(false);
      respondLocal(504, "upstream request timeout\n", "UT");
    } else {
      addFlag("UT");
      finish();
      return;
    }
  } else if (ex.delay_until && now >= ex.delay_until) {
    dispatch();
  } else if (ex.try_deadline && now >= ex.try_deadline && !ex.resp_started) {
    bool connecting = u_connecting_;
    closeUpstream(false);
    if (!retry("UT")) {
      respondLocal(connecting ? 503 : 504,
                   connecting ? "upstream connect timeout\n" : "upstream request timeout\n",
                   connecting ? "UF" : "UT");
    }
  }
  armTimer();
  pump();
}

void HttpSession::updateInterest() {
  if (done_) return;
  uint32_t d = 0;
  // The client is read while a request is in flight too (a pipelined request waits in din_,
  // which kHighWater bounds): keeping EPOLLIN saves two epoll_ctl per keep-alive request, and a
  // client that goes away is noticed at once.
  bool read_more = !d_eof_ && din_.size() < kHighWater;
  if (tunnel_) read_more = read_more && uout_.size() < kHighWater;
  if (read_more) d |= EPOLLIN;
  if (!dout_.empty()) d |= EPOLLOUT;
  if (d != d_interest_) {
    d_interest_ = d;
    loop_.modify(dfd_, d);
  }
  if (ufd_ >= 0) {
    uint32_t u = 0;
    if (u_connecting_) {
      u = EPOLLOUT;
    } else {
      if (dout_.size() < kHighWater) u |= EPOLLIN;
      if (!uout_.empty()) u |= EPOLLOUT;
    }
    if (u != u_interest_) {
      u_interest_ = u;
      loop_.modify(ufd_, u);
    }
  }
}

void HttpSession::finish() {
  if (done_) return;
  done_ = true;
  if (!waiting_in_.empty()) rt_.forgetPending(this, waiting_in_);
  waiting_in_.clear();
  if (ex_) {
    if (ex_->counted_active) {
      --rt_.active()[ex_->ep_key];
      ex_->counted_active = false;
    }
    releaseClusterSlot();
    if (u_counted_ && ex_->cluster) {
      u_counted_ = false;
      --rt_.load(ex_->cluster->name).connections;
    }
    if (!ex_->resp_done && ex_->rec.flags == "-") addFlag("DC");
    ex_->rec.duration_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - ex_->start).count();
    if (env_.on_request) env_.on_request(ex_->rec);
    bool clean = ex_->resp_done;
    ex_.reset();
    if (!clean) {
      loop_.remove(dfd_);
      proxy::closeWithReset(dfd_);
      dfd_ = -1;
    }
  }
  if (dfd_ >= 0) {
    loop_.remove(dfd_);
    close(dfd_);
    dfd_ = -1;
  }
  if (ufd_ >= 0) {
    loop_.remove(ufd_);
    proxy::closeWithReset(ufd_);
    ufd_ = -1;
  }
  releaseHeld();  // a clean idle connection: another client's session may use it
  if (timer_fd_ >= 0) {
    loop_.remove(timer_fd_);
    close(timer_fd_);
    timer_fd_ = -1;
  }
  if (on_done) on_done();
}

}  // namespace meshlet::l7
