#include "agent/l7/h2_bridge.h"

#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "agent/common/log.h"
#include "agent/l7/http_proxy.h"
#include "agent/l7/socket_io.h"

namespace meshlet::l7 {
namespace {

constexpr size_t kHighWater = 256 * 1024;       // a queue above this: its source is not read
constexpr int32_t kStreamWindow = 256 * 1024;   // SETTINGS_INITIAL_WINDOW_SIZE we announce
constexpr int32_t kConnectionWindow = 1 << 20;  // connection-level receive window

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool isAnyOf(std::string_view name, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (equalsIgnoreCase(name, n)) return true;
  }
  return false;
}

// Fields HTTP/2 forbids (RFC 9113 8.2.2), "host" aside (it becomes :authority).
bool connectionSpecific(std::string_view name) {
  return isAnyOf(name, {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                        "upgrade", "http2-settings"});
}

// Trailer fields that are about framing or routing (RFC 9110 6.5.1): never forwarded.
bool forbiddenTrailer(std::string_view name) {
  return connectionSpecific(name) ||
         isAnyOf(name, {"content-length", "host", "te", "trailer", "content-type"}) ||
         (!name.empty() && name[0] == ':');
}

std::vector<H2Field> trailersToH2(const HeaderList& t) {
  std::vector<H2Field> out;
  for (const auto& f : t.fields) {
    if (!forbiddenTrailer(f.name)) out.push_back({lower(f.name), f.value});
  }
  return out;
}

HeaderList trailersToH1(const std::vector<H2Field>& t) {
  HeaderList out;
  for (const auto& f : t) {
    if (!forbiddenTrailer(f.name)) out.add(f.name, f.value);
  }
  return out;
}

// nghttp2 copies what it is given: the vector only has to outlive the submit call.
std::vector<nghttp2_nv> nvOf(const std::vector<H2Field>& fields) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(fields.size());
  for (const auto& f : fields) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(),
                  f.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

// The body of one direction of a stream, as nghttp2's data provider reads it.
struct BodySource {
  ByteBuf buf;
  bool end = false;       // nothing more comes after buf
  bool deferred = false;  // the provider said NGHTTP2_ERR_DEFERRED: resume when data comes
  std::vector<H2Field> trailers;
};

ssize_t readBody(nghttp2_session* ng, int32_t id, uint8_t* dst, size_t len, uint32_t* flags,
                 nghttp2_data_source* source, void*) {
  auto& b = *static_cast<BodySource*>(source->ptr);
  size_t n = std::min(len, b.buf.size());
  if (n) {
    std::memcpy(dst, b.buf.data(), n);
    b.buf.consume(n);
  }
  if (b.buf.empty() && b.end) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!b.trailers.empty()) {
      auto nv = nvOf(b.trailers);
      if (nghttp2_submit_trailer(ng, id, nv.data(), nv.size()) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    b.deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

void resumeBody(nghttp2_session* ng, int32_t id, BodySource& b) {
  if (!b.deferred) return;
  b.deferred = false;
  nghttp2_session_resume_data(ng, id);
}

// Gives DATA bytes back to the peer's window (WINDOW_UPDATE): stream and connection, or the
// connection alone once the stream is gone.
void consume(nghttp2_session* ng, int32_t id, uint64_t n) {
  if (n == 0) return;
  if (id < 0 || nghttp2_session_consume(ng, id, n) != 0) {
    nghttp2_session_consume_connection(ng, n);
  }
}

// One HTTP/2 connection on the loop: nghttp2 fed with mem_recv and drained with mem_send.
class H2Conn {
 public:
  H2Conn(proxy::EventLoop& loop, int fd) : loop_(loop), fd_(fd) {}
  virtual ~H2Conn() {
    if (ng_) nghttp2_session_del(ng_);
    if (fd_ >= 0) {
      loop_.remove(fd_);
      close(fd_);
    }
  }
  H2Conn(const H2Conn&) = delete;
  H2Conn& operator=(const H2Conn&) = delete;

  Status init(bool server, bool connecting) {
    connecting_ = connecting;
    nghttp2_session_callbacks* cb = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0) return Error("nghttp2: out of memory");
    nghttp2_session_callbacks_set_on_begin_headers_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, void* self) {
          return static_cast<H2Conn*>(self)->onBeginHeaders(f);
        });
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
               const uint8_t* value, size_t valuelen, uint8_t, void* self) {
          return static_cast<H2Conn*>(self)->onHeader(
              f, std::string_view(reinterpret_cast<const char*>(name), namelen),
              std::string_view(reinterpret_cast<const char*>(value), valuelen));
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, void* self) {
          return static_cast<H2Conn*>(self)->onFrameRecv(f);
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* self) {
          return static_cast<H2Conn*>(self)->onData(
              id, std::string_view(reinterpret_cast<const char*>(data), len));
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cb, [](nghttp2_session*, int32_t id, uint32_t code, void* self) {
          return static_cast<H2Conn*>(self)->onStreamClose(id, code);
        });
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    // Window updates follow what was written on (consume()), not what was received.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = server ? nghttp2_session_server_new2(&ng_, cb, this, opt)
                    : nghttp2_session_client_new2(&ng_, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) return Error(std::string("nghttp2: ") + nghttp2_strerror(rv));
    std::vector<nghttp2_settings_entry> settings = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    if (server) {
      settings.push_back(
          {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2ServerBridge::kMaxConcurrentStreams});
    }
    nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
    nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
    interest_ = connecting_ ? static_cast<uint32_t>(EPOLLOUT) : EPOLLIN | EPOLLOUT;
    return loop_.set(fd_, interest_, [this](uint32_t e) { onEvent(e); });
  }

  // Bytes read before the connection was handed over.
  void receive(std::string_view bytes) {
    if (dead_ || bytes.empty()) return;
    ssize_t rv =
        nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (rv < 0) {
      logLine(LogLevel::kDebug, std::string("l7 h2: ") + nghttp2_strerror(static_cast<int>(rv)));
      // A GOAWAY goes out (PROTOCOL_ERROR unless nghttp2 queued its own), then the close.
      nghttp2_session_terminate_session(ng_, NGHTTP2_PROTOCOL_ERROR);
      stop_reading_ = true;
    }
  }

  // Sends what nghttp2 has, then closes when neither side wants more.
  // Not from inside an nghttp2 callback (nghttp2 is not reentrant): the handlers call it last.
  void flush() {
    if (dead_) return;
    // afterFlush() may give nghttp2 more to send (a stream's provider took bytes, which let its
    // session's queue be parsed further): a few rounds, then the next wakeup.
    for (int round = 0; round < 8; ++round) {
      size_t produced = 0;
      while (out_.size() < kHighWater) {
        const uint8_t* data = nullptr;
        ssize_t n = nghttp2_session_mem_send(ng_, &data);
        if (n < 0) {
          die();
          return;
        }
        if (n == 0) break;
        out_.append(data, static_cast<size_t>(n));
        produced += static_cast<size_t>(n);
      }
      if (!connecting_ && sendFrom(fd_, out_) == Io::kError) {
        die();
        return;
      }
      out_.release(kHighWater);
      afterFlush();
      if (dead_) return;
      if ((produced == 0 && round > 0) || out_.size() >= kHighWater ||
          !nghttp2_session_want_write(ng_)) {
        break;
      }
    }
    bool want_read = !stop_reading_ && nghttp2_session_want_read(ng_);
    if (!want_read && !nghttp2_session_want_write(ng_) && out_.empty()) {
      die();
      return;
    }
    uint32_t want = 0;
    if (connecting_) {
      want = EPOLLOUT;
    } else {
      if (want_read && out_.size() < kHighWater) want |= EPOLLIN;
      if (!out_.empty()) want |= EPOLLOUT;
    }
    if (want != interest_) {
      interest_ = want;
      loop_.modify(fd_, want);
    }
  }

  bool dead() const { return dead_; }
  // It ended before its connect completed (refused, unreachable, reset during the handshake).
  bool neverConnected() const { return dead_ && connecting_; }
  nghttp2_session* ng() const { return ng_; }

 protected:
  virtual int onBeginHeaders(const nghttp2_frame*) { return 0; }
  virtual int onHeader(const nghttp2_frame* f, std::string_view name, std::string_view value) = 0;
  virtual int onFrameRecv(const nghttp2_frame* f) = 0;
  virtual int onData(int32_t id, std::string_view data) = 0;
  virtual int onStreamClose(int32_t id, uint32_t code) = 0;
  virtual void afterFlush() {}
  virtual void closed() = 0;  // the connection ended: its streams are gone

  void die() {
    if (dead_) return;
    dead_ = true;
    loop_.remove(fd_);
    close(fd_);
    fd_ = -1;
    closed();
  }

  proxy::EventLoop& loop_;

 private:
  void onEvent(uint32_t events) {
    if (dead_) return;
    if (connecting_) {
      int err = proxy::socketError(fd_);
      if (err == 0 && (events & (EPOLLERR | EPOLLHUP))) err = ECONNRESET;
      if (err != 0) {
        logLine(LogLevel::kDebug, std::string("l7 h2: connect: ") + std::strerror(err));
        die();
        return;
      }
      connecting_ = false;
    }
    if (!stop_reading_ && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
      Io r = receiveInto(fd_, in_, [this] { return in_.size() < kHighWater; });
      receive(in_.view());
      in_.clear();  // nghttp2 takes all it is given
      if (dead_) return;
      if (r != Io::kOk) {
        die();  // the peer closed or failed: nothing more can be exchanged
        return;
      }
    }
    flush();
  }

  int fd_;
  nghttp2_session* ng_ = nullptr;
  ByteBuf in_, out_;
  uint32_t interest_ = 0;
  bool connecting_ = false;
  bool stop_reading_ = false;
  bool dead_ = false;
};

// A socket pair end speaking HTTP/1.1 with an HttpSession.
struct Leg {
  int fd = -1;
  ByteBuf in, out;
  uint32_t interest = 0;

  void close(proxy::EventLoop& loop) {
    if (fd < 0) return;
    loop.remove(fd);
    ::close(fd);
    fd = -1;
  }
  void want(proxy::EventLoop& loop, uint32_t events) {
    if (fd < 0 || events == interest) return;
    interest = events;
    loop.modify(fd, events);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Field conversions

RequestHead h1RequestFromH2(const std::vector<H2Field>& fields, bool has_body,
                            const std::string& mark) {
  RequestHead h;
  std::string authority, host, cookie;
  bool has_length = false;
  HeaderList rest;
  for (const auto& f : fields) {
    if (f.name == ":method") {
      h.method = f.value;
    } else if (f.name == ":path") {
      h.target = f.value;
    } else if (f.name == ":authority") {
      authority = f.value;
    } else if (!f.name.empty() && f.name[0] == ':') {
      continue;  // :scheme (the mesh speaks plain HTTP to the endpoint), :protocol
    } else if (equalsIgnoreCase(f.name, "host")) {
      host = f.value;
    } else if (equalsIgnoreCase(f.name, "cookie")) {
      cookie += (cookie.empty() ? "" : "; ") + f.value;  // RFC 9113 8.2.3
    } else if (connectionSpecific(f.name) || (!mark.empty() && equalsIgnoreCase(f.name, mark))) {
      continue;
    } else {
      has_length |= equalsIgnoreCase(f.name, "content-length");
      rest.add(f.name, f.value);
    }
  }
  if (authority.empty()) authority = host;
  if (h.method == "CONNECT") h.target = authority;
  if (h.target.empty()) h.target = "/";
  h.headers.add("host", authority);
  h.headers.fields.insert(h.headers.fields.end(), rest.fields.begin(), rest.fields.end());
  if (!cookie.empty()) h.headers.add("cookie", cookie);
  if (has_body && !has_length) {
    h.headers.add("transfer-encoding", "chunked");
    h.framing.chunked = true;
  }
  if (!mark.empty()) h.headers.add(mark, "1");
  return h;
}

std::vector<H2Field> h2ResponseFromH1(const ResponseHead& head, bool keep_length) {
  std::vector<H2Field> out;
  out.push_back({":status", std::to_string(head.status)});
  for (const auto& f : head.headers.fields) {
    if (connectionSpecific(f.name) || isAnyOf(f.name, {"te", "trailer"})) continue;
    if (!keep_length && equalsIgnoreCase(f.name, "content-length")) continue;
    out.push_back({lower(f.name), f.value});
  }
  return out;
}

std::vector<H2Field> h2RequestFromH1(const RequestHead& head) {
  std::vector<H2Field> out;
  out.push_back({":method", head.method});
  out.push_back({":scheme", "http"});
  out.push_back({":authority", head.authority()});
  if (head.method != "CONNECT") out.push_back({":path", head.target});
  bool grpc = false;
  for (const auto& f : head.headers.fields) {
    if (connectionSpecific(f.name) || isAnyOf(f.name, {"host", "te", "trailer"}) ||
        equalsIgnoreCase(f.name, HttpSession::kDownstreamH2Header)) {
      continue;
    }
    if (equalsIgnoreCase(f.name, "content-type") && f.value.rfind("application/grpc", 0) == 0) {
      grpc = true;
    }
    out.push_back({lower(f.name), f.value});
  }
  // gRPC servers require it (the session removed the client's as hop-by-hop).
  if (grpc) out.push_back({"te", "trailers"});
  return out;
}

// ---------------------------------------------------------------------------------------------
// H2ServerBridge

struct H2ServerBridge::Impl : H2Conn {
  struct Stream : Http1Events {
    Impl* b = nullptr;
    int32_t id = 0;
    std::vector<H2Field> fields, trailer_fields;  // the request's, as received
    bool started = false;                         // its head went to the session
    bool chunked = false;                         // the request body goes chunked
    bool req_ended = false;
    uint64_t unconsumed = 0;  // DATA bytes written on but not yet given back to the window
    Leg leg;
    std::unique_ptr<HttpSession> session;
    std::unique_ptr<Http1Parser> parser;  // the session's response
    std::optional<ResponseHead> resp;     // head not sent yet
    bool submitted = false, resp_done = false;
    BodySource body;

    ~Stream() override { leg.close(b->loop_); }  // when the bridge goes with streams open
    void onResponseHead(ResponseHead&& head) override { b->responseHead(*this, std::move(head)); }
    void onBody(std::string_view bytes) override {
      if (!submitted) b->submit(*this, true);
      body.buf.append(bytes);
      resumeBody(b->ng(), id, body);
    }
    void onTrailers(HeaderList&& t) override { body.trailers = trailersToH2(t); }
    void onMessageEnd() override {
      if (!resp) return;  // a 1xx
      resp_done = true;
      body.end = true;
      if (!submitted) b->submit(*this, !body.trailers.empty());
      resumeBody(b->ng(), id, body);
    }
  };

  Impl(proxy::EventLoop& loop, int fd, SessionFactory f)
      : H2Conn(loop, fd), factory(std::move(f)) {}
  ~Impl() override { streams.clear(); }

  SessionFactory factory;
  std::map<int32_t, std::unique_ptr<Stream>> streams;
  std::vector<std::unique_ptr<Stream>> graveyard;  // closed, destroyed after this wakeup
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::function<void()>* on_done = nullptr;
  uint64_t total = 0;

  Stream* find(int32_t id) {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second.get();
  }

  int onBeginHeaders(const nghttp2_frame* f) override {
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto s = std::make_unique<Stream>();
    s->b = this;
    s->id = f->hd.stream_id;
    streams[s->id] = std::move(s);
    ++total;
    return 0;
  }

  int onHeader(const nghttp2_frame* f, std::string_view name, std::string_view value) override {
    Stream* s = find(f->hd.stream_id);
    if (!s || f->hd.type != NGHTTP2_HEADERS) return 0;
    auto& list = f->headers.cat == NGHTTP2_HCAT_REQUEST ? s->fields : s->trailer_fields;
    list.push_back({std::string(name), std::string(value)});
    return 0;
  }

  int onFrameRecv(const nghttp2_frame* f) override {
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    Stream* s = find(f->hd.stream_id);
    if (!s) return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      startStream(*s, !end);
      if (s->leg.fd < 0) return 0;
    }
    if (end && s->leg.fd >= 0 && !s->req_ended) {
      s->req_ended = true;
      if (s->chunked) {
        HeaderList t = trailersToH1(s->trailer_fields);
        if (t.fields.empty()) {
          writeLastChunk(s->leg.out);
        } else {
          writeLastChunk(t, s->leg.out);
        }
      }
      writeLeg(*s);
    }
    return 0;
  }

  void startStream(Stream& s, bool has_body) {
    RequestHead head = h1RequestFromH2(s.fields, has_body, HttpSession::kDownstreamH2Header);
    s.fields.clear();
    s.chunked = head.framing.chunked;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
      nghttp2_submit_rst_stream(ng(), NGHTTP2_FLAG_NONE, s.id, NGHTTP2_REFUSED_STREAM);
      return;
    }
    s.session = factory ? factory(sv[1]) : nullptr;  // it owns sv[1] either way
    if (!s.session) {
      if (!factory) close(sv[1]);
      close(sv[0]);
      nghttp2_submit_rst_stream(ng(), NGHTTP2_FLAG_NONE, s.id, NGHTTP2_REFUSED_STREAM);
      return;
    }
    s.leg.fd = sv[0];
    s.parser = std::make_unique<Http1Parser>(Http1Parser::Kind::kResponse, s);
    s.parser->expectNoBody(head.method == "HEAD");
    writeRequestHead(head, s.leg.out);
    s.started = true;
    s.leg.interest = EPOLLIN | EPOLLOUT;
    Stream* p = &s;
    if (!loop_.add(s.leg.fd, s.leg.interest, [this, p](uint32_t e) { onLeg(*p, e); }).ok()) {
      close(s.leg.fd);
      s.leg.fd = -1;
      nghttp2_submit_rst_stream(ng(), NGHTTP2_FLAG_NONE, s.id, NGHTTP2_INTERNAL_ERROR);
    }
  }

  int onData(int32_t id, std::string_view data) override {
    Stream* s = find(id);
    if (!s || s->leg.fd < 0) {
      consume(ng(), id, data.size());
      return 0;
    }
    if (s->chunked) {
      writeChunk(data, s->leg.out);
    } else {
      s->leg.out.append(data);
    }
    s->unconsumed += data.size();
    writeLeg(*s);
    return 0;
  }

  int onStreamClose(int32_t id, uint32_t code) override {
    auto it = streams.find(id);
    if (it == streams.end()) return 0;
    Stream& s = *it->second;
    consume(ng(), -1, s.unconsumed);
    s.unconsumed = 0;
    if (code != NGHTTP2_NO_ERROR || !s.resp_done) {
      logLine(LogLevel::kDebug, "l7 h2: stream " + std::to_string(id) + " closed before its end (" +
                                    nghttp2_http2_strerror(code) + ")");
    }
    if (s.session) s.session->clientGone();  // before it goes with the stream: its record
    s.leg.close(loop_);
    bury(std::move(it->second));
    streams.erase(it);
    return 0;
  }

  void bury(std::unique_ptr<Stream> s) {
    graveyard.push_back(std::move(s));
    if (graveyard.size() == 1) {
      std::weak_ptr<bool> w = alive;
      loop_.defer([this, w] {
        if (!w.expired()) graveyard.clear();
      });
    }
  }

  void responseHead(Stream& s, ResponseHead&& head) {
    if (head.status < 200) return;  // 100 Continue: HTTP/2 clients do without
    if (head.status == 101) {
      resetStream(s, NGHTTP2_INTERNAL_ERROR);
      return;
    }
    s.resp = std::move(head);
    // Sent at once unless the response may be trailers-only (gRPC status in the head) or has no
    // body: then it goes with the end, as one HEADERS frame with END_STREAM.
    if (!s.resp->headers.has("grpc-status") && s.resp->framing.content_length != 0u) {
      submit(s, true);
    }
  }

  void submit(Stream& s, bool with_body) {
    if (s.submitted || !s.resp) return;
    s.submitted = true;
    auto fields = h2ResponseFromH1(*s.resp, s.resp->framing.content_length.has_value());
    auto nv = nvOf(fields);
    nghttp2_data_provider prd;
    prd.source.ptr = &s.body;
    prd.read_callback = readBody;
    int rv = nghttp2_submit_response(ng(), s.id, nv.data(), nv.size(), with_body ? &prd : nullptr);
    if (rv != 0) resetStream(s, NGHTTP2_INTERNAL_ERROR);
  }

  void resetStream(Stream& s, uint32_t code) {
    if (s.leg.fd < 0 && s.resp_done) return;
    nghttp2_submit_rst_stream(ng(), NGHTTP2_FLAG_NONE, s.id, code);
    s.leg.close(loop_);
  }

  void writeLeg(Stream& s) {
    if (s.leg.fd < 0) return;
    if (sendFrom(s.leg.fd, s.leg.out) == Io::kError) {
      resetStream(s, NGHTTP2_INTERNAL_ERROR);
      return;
    }
    s.leg.out.release(kHighWater);
    if (s.leg.out.size() < kHighWater && s.unconsumed) {
      consume(ng(), s.id, s.unconsumed);
      s.unconsumed = 0;
    }
  }

  void readLeg(Stream& s) {
    Io r = receiveInto(s.leg.fd, s.leg.in, [&s] { return s.leg.in.size() < kHighWater; });
    while (!s.leg.in.empty() && !s.resp_done && s.body.buf.size() < kHighWater) {
      size_t used = s.parser->feed(s.leg.in.data(), s.leg.in.size());
      s.leg.in.consume(used);
      if (s.parser->failed()) {
        logLine(LogLevel::kDebug, "l7 h2: bad response from the session: " + s.parser->error());
        resetStream(s, NGHTTP2_INTERNAL_ERROR);
        return;
      }
      if (used == 0) break;
    }
    if (r == Io::kOk || !s.leg.in.empty()) return;
    if (r == Io::kEof && !s.resp_done) s.parser->finish();  // a body that runs to the close
    if (!s.resp_done) {
      resetStream(s, NGHTTP2_INTERNAL_ERROR);
    } else {
      s.leg.close(loop_);
    }
  }

  void onLeg(Stream& s, uint32_t events) {
    if (s.leg.fd < 0 || dead()) return;
    if (events & EPOLLOUT) writeLeg(s);
    if (s.leg.fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readLeg(s);
    flush();
  }

  void afterFlush() override {
    for (auto& [id, sp] : streams) {
      Stream& s = *sp;
      if (s.leg.fd < 0) continue;
      if (!s.leg.in.empty() && s.body.buf.size() < kHighWater && !s.resp_done) {
        // The provider took bytes: parse what waited (it may queue more DATA).
        size_t used = s.parser->feed(s.leg.in.data(), s.leg.in.size());
        s.leg.in.consume(used);
        if (s.parser->failed()) {
          resetStream(s, NGHTTP2_INTERNAL_ERROR);
          continue;
        }
      }
      uint32_t want = 0;
      if (s.body.buf.size() < kHighWater && s.leg.in.size() < kHighWater) want |= EPOLLIN;
      if (!s.leg.out.empty()) want |= EPOLLOUT;
      s.leg.want(loop_, want);
    }
  }

  void closed() override {
    for (auto& [id, s] : streams) {
      s->leg.close(loop_);
      bury(std::move(s));
    }
    streams.clear();
    if (on_done && *on_done) (*on_done)();
  }
};

H2ServerBridge::H2ServerBridge(proxy::EventLoop& loop, int fd, SessionFactory factory)
    : impl_(std::make_unique<Impl>(loop, fd, std::move(factory))) {
  impl_->on_done = &on_done;
}

H2ServerBridge::~H2ServerBridge() = default;

Status H2ServerBridge::start(ByteBuf&& read) {
  if (auto st = impl_->init(true, false); !st) return st;
  impl_->receive(read.view());
  impl_->flush();
  return Status::Ok();
}

size_t H2ServerBridge::activeStreams() const { return impl_->streams.size(); }
uint64_t H2ServerBridge::streams() const { return impl_->total; }

// ---------------------------------------------------------------------------------------------
// H2ClientPool

namespace {

struct ClientConn;

// One socket pair from a session: its HTTP/1.1 requests, one at a time, become streams.
struct Frontend : Http1Events {
  H2ClientPool* owner = nullptr;
  std::function<ClientConn*(Frontend&)> connect;  // a connection to send the next request on
  std::function<void(Frontend*)> bury;
  proxy::EventLoop* loop = nullptr;
  Leg leg;
  std::unique_ptr<Http1Parser> parser;
  ClientConn* conn = nullptr;
  int32_t id = -1;
  std::shared_ptr<BodySource> body;  // the request's (shared with the connection's stream)
  bool busy = false;                 // a request is in flight
  bool req_done = false;
  bool head_request = false;
  bool closing = false;  // close once leg.out is written
  bool dead = false;
  // The response.
  std::vector<H2Field> resp_fields, trailer_fields;
  bool resp_started = false, resp_chunked = false, resp_done = false;
  uint64_t unconsumed = 0;

  ~Frontend() override {
    if (loop) leg.close(*loop);  // when the pool goes with sessions still holding the other end
  }
  void onRequestHead(RequestHead&& head) override;
  void onBody(std::string_view bytes) override;
  void onTrailers(HeaderList&& t) override {
    if (body) body->trailers = trailersToH2(t);
  }
  void onMessageEnd() override;

  void onLeg(uint32_t events);
  void readLeg();
  void parse();
  void writeLeg();
  void updateInterest();
  void die(bool reset);
  // The request failed before any response: the session is told why in a response of its own
  // (HttpSession::kUpstreamResetHeader), so it can retry as for an HTTP/1.1 upstream.
  void fail(const char* reason);
  void responseHead();
  void responseEnd();
};

struct ClientConn : H2Conn {
  struct Entry {
    Frontend* f;
    std::shared_ptr<BodySource> body;
  };
  ClientConn(proxy::EventLoop& loop, int fd, std::string k) : H2Conn(loop, fd), key(std::move(k)) {}
  std::string key;
  std::map<int32_t, Entry> streams;
  bool goaway = false;
  int64_t idle_since = nowMs();

  Frontend* front(int32_t id) {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second.f;
  }

  bool takesStreams() const {
    if (dead() || goaway) return false;
    uint32_t max = std::min<uint32_t>(
        nghttp2_session_get_remote_settings(ng(), NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
        H2ServerBridge::kMaxConcurrentStreams);
    return streams.size() < max;
  }

  int onHeader(const nghttp2_frame* f, std::string_view name, std::string_view value) override {
    Frontend* fr = front(f->hd.stream_id);
    if (!fr || f->hd.type != NGHTTP2_HEADERS) return 0;
    (fr->resp_started ? fr->trailer_fields : fr->resp_fields)
        .push_back({std::string(name), std::string(value)});
    return 0;
  }

  int onFrameRecv(const nghttp2_frame* f) override {
    if (f->hd.type == NGHTTP2_GOAWAY) {
      goaway = true;
      return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    Frontend* fr = front(f->hd.stream_id);
    if (!fr) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && !fr->resp_started) fr->responseHead();
    if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && fr->resp_started) fr->responseEnd();
    return 0;
  }

  int onData(int32_t id, std::string_view data) override {
    Frontend* fr = front(id);
    if (!fr || !fr->resp_started || fr->dead) {
      consume(ng(), id, data.size());
      return 0;
    }
    if (fr->resp_chunked) {
      writeChunk(data, fr->leg.out);
    } else if (!fr->head_request) {
      fr->leg.out.append(data);
    }
    fr->unconsumed += data.size();
    fr->writeLeg();
    return 0;
  }

  int onStreamClose(int32_t id, uint32_t code) override {
    auto it = streams.find(id);
    if (it == streams.end()) return 0;
    Frontend* fr = it->second.f;
    streams.erase(it);
    if (streams.empty()) idle_since = nowMs();
    if (!fr) return 0;
    consume(ng(), -1, fr->unconsumed);
    fr->unconsumed = 0;
    fr->conn = nullptr;
    fr->id = -1;
    if (code != NGHTTP2_NO_ERROR || !fr->resp_done) {
      logLine(LogLevel::kDebug, "l7 h2: upstream stream closed before its end (" +
                                    std::string(nghttp2_http2_strerror(code)) + ")");
      if (code == NGHTTP2_REFUSED_STREAM) {
        fr->fail("refused-stream");  // the server did not process it: safe to retry
      } else {
        fr->die(true);
      }
      return 0;
    }
    fr->busy = false;
    if (!fr->req_done) fr->closing = true;  // answered before the request ended
    fr->writeLeg();
    if (!fr->dead && !fr->closing) fr->parse();  // the next request, if it is there
    return 0;
  }

  void afterFlush() override {
    for (auto& [id, e] : streams) {
      if (e.f) e.f->updateInterest();
    }
  }

  void closed() override {
    auto all = std::move(streams);
    streams.clear();
    for (auto& [id, e] : all) {
      if (!e.f) continue;
      e.f->conn = nullptr;
      e.f->id = -1;
      if (neverConnected()) {
        e.f->fail("connect-failure");
      } else {
        e.f->die(true);
      }
    }
  }
};

void Frontend::onRequestHead(RequestHead&& head) {
  busy = true;
  req_done = false;
  head_request = head.method == "HEAD";
  resp_fields.clear();
  trailer_fields.clear();
  resp_started = resp_chunked = resp_done = false;
  body = std::make_shared<BodySource>();
  conn = connect(*this);
  if (!conn) {
    fail("connect-failure");
    return;
  }
  auto fields = h2RequestFromH1(head);
  auto nv = nvOf(fields);
  bool has_body = head.framing.chunked || head.framing.content_length.value_or(0) > 0;
  nghttp2_data_provider prd;
  prd.source.ptr = body.get();
  prd.read_callback = readBody;
  id = nghttp2_submit_request(conn->ng(), nullptr, nv.data(), nv.size(), has_body ? &prd : nullptr,
                              nullptr);
  if (id < 0) {
    conn = nullptr;
    die(true);
    return;
  }
  conn->streams[id] = {this, body};
}

void Frontend::onBody(std::string_view bytes) {
  if (!body || !conn) return;
  body->buf.append(bytes);
  resumeBody(conn->ng(), id, *body);
}

void Frontend::onMessageEnd() {
  req_done = true;
  if (!body) return;
  body->end = true;
  if (conn) resumeBody(conn->ng(), id, *body);
}

void Frontend::responseHead() {
  int status = 0;
  for (const auto& f : resp_fields) {
    if (f.name == ":status") status = std::atoi(f.value.c_str());
  }
  if (status < 200) {  // 1xx: the final response follows
    resp_fields.clear();
    return;
  }
  resp_started = true;
  ResponseHead h;
  h.status = status;
  bool has_length = false;
  for (const auto& f : resp_fields) {
    if (f.name.empty() || f.name[0] == ':' || connectionSpecific(f.name)) continue;
    has_length |= equalsIgnoreCase(f.name, "content-length");
    h.headers.add(f.name, f.value);
  }
  resp_fields.clear();
  bool no_body = head_request || status == 204 || status == 304;
  if (!no_body && !has_length) {
    h.headers.add("transfer-encoding", "chunked");
    resp_chunked = true;
  }
  writeResponseHead(h, leg.out);
  writeLeg();
}

void Frontend::responseEnd() {
  if (resp_done) return;
  resp_done = true;
  if (resp_chunked) {
    HeaderList t = trailersToH1(trailer_fields);
    if (t.fields.empty()) {
      writeLastChunk(leg.out);
    } else {
      writeLastChunk(t, leg.out);
    }
  }
  trailer_fields.clear();
  writeLeg();
}

void Frontend::onLeg(uint32_t events) {
  if (dead) return;
  ClientConn* c = conn;
  if (events & EPOLLOUT) writeLeg();
  if (!dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readLeg();
  if (c) c->flush();  // request bytes, window updates, a reset
  if (conn && conn != c) conn->flush();
  if (!dead) updateInterest();
}

void Frontend::readLeg() {
  Io r = receiveInto(leg.fd, leg.in, [this] { return leg.in.size() < kHighWater; });
  parse();
  if (dead || r == Io::kOk) return;
  // The session closed its upstream: a request in flight is cancelled.
  die(busy && !resp_done);
}

void Frontend::parse() {
  while (!dead && !leg.in.empty() && !(busy && req_done) &&
         (!body || body->buf.size() < kHighWater)) {
    size_t used = parser->feed(leg.in.data(), leg.in.size());
    leg.in.consume(used);
    if (parser->failed()) {
      logLine(LogLevel::kDebug, "l7 h2: bad request from the session: " + parser->error());
      die(true);
      return;
    }
    if (used == 0) break;
  }
}

void Frontend::writeLeg() {
  if (dead || leg.fd < 0) return;
  if (sendFrom(leg.fd, leg.out) == Io::kError) {
    die(true);
    return;
  }
  leg.out.release(kHighWater);
  if (leg.out.size() < kHighWater && unconsumed && conn && id >= 0) {
    consume(conn->ng(), id, unconsumed);
    unconsumed = 0;
  }
  if (closing && leg.out.empty()) {
    die(false);
    return;
  }
  updateInterest();
}

void Frontend::updateInterest() {
  if (dead) return;
  uint32_t want = 0;
  if (leg.in.size() < kHighWater && (!body || body->buf.size() < kHighWater)) want |= EPOLLIN;
  if (!leg.out.empty()) want |= EPOLLOUT;
  leg.want(*loop, want);
}

void Frontend::fail(const char* reason) {
  if (dead) return;
  if (resp_started || !leg.out.empty()) {
    die(true);
    return;
  }
  if (conn && id >= 0) {
    if (auto it = conn->streams.find(id); it != conn->streams.end()) it->second.f = nullptr;
    conn = nullptr;
    id = -1;
  }
  HeaderList extra;
  extra.add(HttpSession::kUpstreamResetHeader, reason);
  writeSimpleResponse(503, "", true, extra, leg.out);
  resp_started = resp_done = true;
  closing = true;  // the leg closes once the session has the answer
  writeLeg();
}

void Frontend::die(bool reset) {
  if (dead) return;
  dead = true;
  if (conn && id >= 0) {
    if (auto it = conn->streams.find(id); it != conn->streams.end()) it->second.f = nullptr;
    if (!resp_done || !req_done) {
      nghttp2_submit_rst_stream(conn->ng(), NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    }
    consume(conn->ng(), -1, unconsumed);
    unconsumed = 0;
    conn = nullptr;  // the connection's handler, or onLeg, flushes the reset
    id = -1;
  }
  (void)reset;  // a socket pair has no reset: the session sees the close either way
  leg.close(*loop);
  bury(this);
}

}  // namespace

struct H2ClientPool::Impl {
  Impl(proxy::EventLoop& l, Dialer d) : loop(l), dial(std::move(d)) {}
  ~Impl() {
    fronts.clear();
    conns.clear();
  }
  proxy::EventLoop& loop;
  Dialer dial;
  std::map<std::string, std::vector<std::unique_ptr<ClientConn>>> conns;
  std::map<Frontend*, std::unique_ptr<Frontend>> fronts;
  std::vector<std::unique_ptr<Frontend>> graveyard;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  ClientConn* connFor(const std::string& source_pod, const L7Endpoint& ep) {
    std::string ip = ep.ip.toString();
    std::string key = source_pod + "|" + (ep.ip.family == IpFamily::kV6 ? "[" + ip + "]" : ip) +
                      ":" + std::to_string(ep.port);
    auto& list = conns[key];
    for (auto& c : list) {
      if (c->takesStreams()) return c.get();
    }
    auto fd = dial(source_pod, ep);
    if (!fd.ok()) {
      logLine(LogLevel::kDebug, "l7 h2: dial " + key + ": " + fd.error().message());
      return nullptr;
    }
    auto c = std::make_unique<ClientConn>(loop, *fd, key);
    if (!c->init(false, true).ok()) return nullptr;
    list.push_back(std::move(c));
    return list.back().get();
  }

  void bury(Frontend* f) {
    auto it = fronts.find(f);
    if (it == fronts.end()) return;
    graveyard.push_back(std::move(it->second));
    fronts.erase(it);
    if (graveyard.size() == 1) {
      std::weak_ptr<bool> w = alive;
      loop.defer([this, w] {
        if (!w.expired()) graveyard.clear();
      });
    }
  }
};

H2ClientPool::H2ClientPool(proxy::EventLoop& loop, Dialer dial)
    : impl_(std::make_unique<Impl>(loop, std::move(dial))) {}

H2ClientPool::~H2ClientPool() = default;

Result<int> H2ClientPool::open(const std::string& source_pod, const L7Endpoint& ep) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    return Error::fromErrno("socketpair", errno);
  }
  auto f = std::make_unique<Frontend>();
  Frontend* p = f.get();
  p->owner = this;
  p->loop = &impl_->loop;
  p->leg.fd = sv[0];
  p->parser = std::make_unique<Http1Parser>(Http1Parser::Kind::kRequest, *p);
  Impl* impl = impl_.get();
  p->connect = [impl, source_pod, ep](Frontend&) { return impl->connFor(source_pod, ep); };
  p->bury = [impl](Frontend* fr) { impl->bury(fr); };
  p->leg.interest = EPOLLIN;
  if (auto st = impl_->loop.add(sv[0], EPOLLIN, [p](uint32_t e) { p->onLeg(e); }); !st) {
    close(sv[0]);
    close(sv[1]);
    return st.error();
  }
  impl_->fronts[p] = std::move(f);
  return sv[1];
}

void H2ClientPool::sweep(int64_t idle_ms) {
  int64_t now = nowMs();
  for (auto it = impl_->conns.begin(); it != impl_->conns.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](const std::unique_ptr<ClientConn>& c) {
      return c->streams.empty() && (c->dead() || now - c->idle_since > idle_ms);
    });
    it = list.empty() ? impl_->conns.erase(it) : std::next(it);
  }
}

size_t H2ClientPool::connections() const {
  size_t n = 0;
  for (const auto& [key, list] : impl_->conns) n += list.size();
  return n;
}

}  // namespace meshlet::l7
