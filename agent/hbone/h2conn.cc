#include "agent/hbone/h2conn.h"

#include <nghttp2/nghttp2.h>

#include <cstring>
#include <string>
#include <string_view>

namespace meshlet::hbone {
namespace {

struct Stream {
  ByteBuf out;                // queued for the peer
  bool fin = false;           // finish() asked for END_STREAM after `out`
  bool open = false;          // client: 200 received; server: 200 sent
  bool pending = false;       // server: the CONNECT waits for respond() (upstream connecting)
  bool deferred = false;      // the data provider is paused waiting for bytes
  bool has_provider = false;  // a body (the tunnel) was submitted for this stream
  std::string method, authority, status;
  Headers headers;
};

nghttp2_nv header(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

struct H2Conn::Impl {
  nghttp2_session* session = nullptr;
  Role role = Role::kClient;
  Events ev;
  std::map<int32_t, Stream> streams;
  bool fatal = false;
  ByteBuf* sink = nullptr;  // where takeOutput() puts the frames

  ~Impl() {
    if (session) nghttp2_session_del(session);
  }

  static Impl* self(void* user_data) { return static_cast<Impl*>(user_data); }

  static ssize_t readBody(nghttp2_session*, int32_t id, uint8_t*, size_t length, uint32_t* flags,
                          nghttp2_data_source*, void* user_data) {
    Impl* me = self(user_data);
    auto it = me->streams.find(id);
    if (it == me->streams.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    Stream& s = it->second;
    // A client sends right behind its CONNECT, without waiting for the 200 (saves a round
    // trip per connection); the server keeps those bytes until it answers, and drops them
    // if it refuses. A server sends only once it answered 200.
    bool can_send = s.open || me->role == Role::kClient;
    if (!can_send || (s.out.empty() && !s.fin)) {
      s.deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    // No copy into nghttp2's buffer: sendData() puts the bytes behind the frame header.
    size_t n = std::min(length, s.out.size());
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == s.out.size() && s.fin) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  static int sendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                      nghttp2_data_source*, void* user_data) {
    Impl* me = self(user_data);
    auto it = me->streams.find(frame->hd.stream_id);
    if (it == me->streams.end() || it->second.out.size() < length || !me->sink) {
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    ByteBuf& out = *me->sink;
    out.append(framehd, 9);
    size_t pad = frame->data.padlen;  // none is ever asked for; written as RFC 9113 §6.1 says
    if (pad > 0) {
      uint8_t pad_length = static_cast<uint8_t>(pad - 1);
      out.append(&pad_length, 1);
    }
    ByteBuf& q = it->second.out;
    out.append(q.data(), length);
    q.consume(length);
    if (pad > 1) {
      std::memset(out.reserve(pad - 1), 0, pad - 1);
      out.commit(pad - 1);
    }
    return 0;
  }

  static ssize_t sendFrame(nghttp2_session*, const uint8_t* data, size_t length, int,
                           void* user_data) {
    Impl* me = self(user_data);
    if (!me->sink) return NGHTTP2_ERR_WOULDBLOCK;
    me->sink->append(data, length);
    return static_cast<ssize_t>(length);
  }

  void resume(int32_t id, Stream& s) {
    if (s.deferred && s.has_provider) {
      s.deferred = false;
      nghttp2_session_resume_data(session, id);
    }
  }

  // Answers a CONNECT (server side): now, or later through respond() when on_request says
  // kPending.
  void answer(int32_t id, Stream& s) {
    int status = 405;  // only CONNECT is served
    if (s.method == "CONNECT") {
      status = s.authority.empty() ? 400
               : ev.on_request     ? ev.on_request(id, ConnectRequest{s.authority, s.headers})
                                   : 503;
    }
    if (status == kPending) {
      s.pending = true;
      return;
    }
    submitAnswer(id, s, status);
  }

  void submitAnswer(int32_t id, Stream& s, int status) {
    s.pending = false;
    std::string code = std::to_string(status);
    std::string name = ":status";
    nghttp2_nv nv[] = {header(name, code)};
    if (status == 200) {
      s.open = true;
      s.has_provider = true;
      nghttp2_data_provider body{};
      body.read_callback = readBody;
      nghttp2_submit_response(session, id, nv, 1, &body);
    } else {
      nghttp2_submit_response(session, id, nv, 1, nullptr);
    }
  }

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Impl* me = self(user_data);
    if (me->role == Role::kServer && frame->hd.type == NGHTTP2_HEADERS &&
        frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      me->streams[frame->hd.stream_id] = Stream{};
    }
    return 0;
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    Impl* me = self(user_data);
    auto it = me->streams.find(frame->hd.stream_id);
    if (it == me->streams.end()) return 0;
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    Stream& s = it->second;
    if (n == ":method") {
      s.method = v;
    } else if (n == ":authority") {
      s.authority = v;
    } else if (n == ":status") {
      s.status = v;
    } else if (!n.empty() && n[0] != ':') {
      s.headers.emplace_back(std::move(n), std::move(v));
    }
    return 0;
  }

  static int onFrame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Impl* me = self(user_data);
    int32_t id = frame->hd.stream_id;
    auto it = me->streams.find(id);
    if (it == me->streams.end()) return 0;
    Stream& s = it->second;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (me->role == Role::kServer && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        me->answer(id, s);
      } else if (me->role == Role::kClient && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        int status = std::atoi(s.status.c_str());
        if (status == 200) {
          s.open = true;
          me->resume(id, s);
        } else {
          // No tunnel: drop what was queued and close our side too.
          s.out.clear();
          nghttp2_submit_rst_stream(me->session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        }
        if (me->ev.on_response) me->ev.on_response(id, status);
      }
    }
    bool end = (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
               (frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
    if (end && me->ev.on_end) {
      auto again = me->streams.find(id);  // a callback above may have reset it
      if (again != me->streams.end() && (again->second.open || again->second.pending)) {
        me->ev.on_end(id);
      }
    }
    return 0;
  }

  static int onData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                    void* user_data) {
    Impl* me = self(user_data);
    auto it = me->streams.find(id);
    // A pending CONNECT's early bytes are kept for the upstream (its relay buffers them).
    if (it == me->streams.end() || !(it->second.open || it->second.pending)) {
      // Not a tunnel (yet): nobody will consume these bytes, so give the window back now.
      nghttp2_session_consume(me->session, id, len);
      return 0;
    }
    if (me->ev.on_data) {
      me->ev.on_data(id, std::string_view(reinterpret_cast<const char*>(data), len));
    } else {
      nghttp2_session_consume(me->session, id, len);
    }
    return 0;
  }

  static int onClose(nghttp2_session*, int32_t id, uint32_t code, void* user_data) {
    Impl* me = self(user_data);
    if (me->streams.erase(id) && me->ev.on_close) me->ev.on_close(id, code);
    return 0;
  }
};

H2Conn::~H2Conn() = default;

Result<std::unique_ptr<H2Conn>> H2Conn::make(Role role, Events events, Limits limits) {
  std::unique_ptr<H2Conn> c(new H2Conn());
  c->impl_ = std::make_unique<Impl>();
  Impl* impl = c->impl_.get();
  impl->role = role;
  impl->ev = std::move(events);

  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return Error("nghttp2: out of memory");
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, Impl::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, Impl::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Impl::onFrame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, Impl::onData);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, Impl::onClose);
  nghttp2_session_callbacks_set_send_callback(cbs, Impl::sendFrame);
  nghttp2_session_callbacks_set_send_data_callback(cbs, Impl::sendData);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_stream_reset_rate_limit(opt, limits.reset_burst, limits.resets_per_second);
  int rv = role == Role::kClient ? nghttp2_session_client_new2(&impl->session, cbs, impl, opt)
                                 : nghttp2_session_server_new2(&impl->session, cbs, impl, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return Error(std::string("nghttp2: ") + nghttp2_strerror(rv));

  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
  };
  rv = nghttp2_submit_settings(impl->session, NGHTTP2_FLAG_NONE, settings,
                               role == Role::kServer ? 2 : 1);
  if (rv == 0) {
    rv = nghttp2_session_set_local_window_size(impl->session, NGHTTP2_FLAG_NONE, 0,
                                               static_cast<int32_t>(limits.connection_window));
  }
  if (rv != 0) return Error(std::string("nghttp2 settings: ") + nghttp2_strerror(rv));
  return c;
}

Result<int32_t> H2Conn::connect(const std::string& authority, const Headers& headers) {
  if (impl_->role != Role::kClient) return Error("only a client opens CONNECT streams");
  std::string method_name = ":method", method = "CONNECT", auth_name = ":authority";
  std::vector<nghttp2_nv> nv = {header(method_name, method), header(auth_name, authority)};
  for (const auto& [n, v] : headers) nv.push_back(header(n, v));
  nghttp2_data_provider body{};
  body.read_callback = Impl::readBody;
  int32_t id =
      nghttp2_submit_request(impl_->session, nullptr, nv.data(), nv.size(), &body, nullptr);
  if (id < 0) return Error(std::string("CONNECT ") + authority + ": " + nghttp2_strerror(id));
  Stream& s = impl_->streams[id];
  s.has_provider = true;
  s.authority = authority;
  return id;
}

Status H2Conn::respond(int32_t stream, int status) {
  auto it = impl_->streams.find(stream);
  if (it == impl_->streams.end()) return Error("stream " + std::to_string(stream) + " is closed");
  if (!it->second.pending) {
    return Error("stream " + std::to_string(stream) + " was already answered");
  }
  impl_->submitAnswer(stream, it->second, status);
  return Status::Ok();
}

Status H2Conn::send(int32_t stream, std::string_view data) {
  auto it = impl_->streams.find(stream);
  if (it == impl_->streams.end()) return Error("stream " + std::to_string(stream) + " is closed");
  if (it->second.fin) return Error("stream " + std::to_string(stream) + " was finished");
  it->second.out.append(data);
  impl_->resume(stream, it->second);
  return Status::Ok();
}

ByteBuf* H2Conn::outbox(int32_t stream) {
  auto it = impl_->streams.find(stream);
  if (it == impl_->streams.end() || it->second.fin) return nullptr;
  impl_->resume(stream, it->second);  // nghttp2 reads the queue only when asked for output
  return &it->second.out;
}

size_t H2Conn::queued(int32_t stream) const {
  auto it = impl_->streams.find(stream);
  return it == impl_->streams.end() ? 0 : it->second.out.size();
}

Status H2Conn::finish(int32_t stream) {
  auto it = impl_->streams.find(stream);
  if (it == impl_->streams.end()) return Error("stream " + std::to_string(stream) + " is closed");
  it->second.fin = true;
  impl_->resume(stream, it->second);
  return Status::Ok();
}

Status H2Conn::reset(int32_t stream, uint32_t code) {
  int rv = nghttp2_submit_rst_stream(impl_->session, NGHTTP2_FLAG_NONE, stream, code);
  if (rv != 0) return Error(std::string("RST_STREAM: ") + nghttp2_strerror(rv));
  return Status::Ok();
}

void H2Conn::consumed(int32_t stream, size_t n) {
  if (nghttp2_session_consume(impl_->session, stream, n) != 0) {
    nghttp2_session_consume_connection(impl_->session, n);
  }
}

Status H2Conn::receive(std::string_view bytes) {
  if (impl_->fatal) return Error("the HTTP/2 connection already failed");
  ssize_t rv = nghttp2_session_mem_recv(
      impl_->session, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (rv < 0) {
    impl_->fatal = true;
    nghttp2_session_terminate_session(impl_->session, NGHTTP2_PROTOCOL_ERROR);
    return Error(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(rv)));
  }
  return Status::Ok();
}

void H2Conn::takeOutput(ByteBuf& out) {
  impl_->sink = &out;
  // Errors are the connection's end, which finished() and the peer's reaction tell.
  nghttp2_session_send(impl_->session);
  impl_->sink = nullptr;
}

std::string H2Conn::takeOutput() {
  ByteBuf out;
  takeOutput(out);
  return out.take();
}

void H2Conn::goAway() {
  nghttp2_submit_goaway(impl_->session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(impl_->session), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

bool H2Conn::finished() const {
  return !nghttp2_session_want_read(impl_->session) && !nghttp2_session_want_write(impl_->session);
}

size_t H2Conn::openStreams() const { return impl_->streams.size(); }

uint32_t H2Conn::peerMaxStreams() const {
  return nghttp2_session_get_remote_settings(impl_->session,
                                             NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

}  // namespace meshlet::hbone
