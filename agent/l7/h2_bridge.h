#pragma once
// HTTP/2 cleartext (h2c, prior knowledge) on the L7 path, as a bridge to the HTTP/1.1 proxy so
// that every L7 feature (routing, retries, faults, authorization, rate limits, telemetry)
// applies to HTTP/2 and gRPC unchanged.
//
// Downstream: an app connection that starts with the HTTP/2 preface is handed by its
// HttpSession to an H2ServerBridge (nghttp2 server session on the same event loop). Each
// stream gets a socket pair: the bridge writes the request into its end as HTTP/1.1 (marked
// with HttpSession::kDownstreamH2Header; a body without content-length goes chunked, request
// trailers as chunked trailers) and a normal HttpSession, made by the caller's factory, serves
// the other end. The HTTP/1.1 response coming back (chunked trailers included: grpc-status) is
// sent on the stream as HEADERS/DATA/trailers.
//
// Upstream: a request that came over HTTP/2 goes upstream over HTTP/2 (Envoy's "use downstream
// protocol"). The session's upstream connection is then one end of a socket pair from
// H2ClientPool::open: the pool reads HTTP/1.1 requests from it and sends each as a stream of a
// shared h2c connection per (source pod, endpoint), and writes the responses back as HTTP/1.1.
//
// Memory stays bounded: a stream's queue above kHighWater stops reading its source, and HTTP/2
// DATA is acknowledged (WINDOW_UPDATE) only once it was written on.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agent/common/byte_buf.h"
#include "agent/common/status.h"
#include "agent/l7/http1.h"
#include "agent/l7/routes.h"
#include "agent/proxy/event_loop.h"

namespace meshlet::l7 {

class HttpSession;

// How an HTTP/2 request's fields read as an HTTP/1.1 request head: method, :path as the target,
// :authority as Host (a Host field too is dropped), cookies joined, pseudo-fields and
// connection-specific fields dropped, `mark` added as "1" when not empty. Chunked when the
// request has a body (`has_body`) and no content-length. Exposed for tests.
struct H2Field {
  std::string name, value;
};
RequestHead h1RequestFromH2(const std::vector<H2Field>& fields, bool has_body,
                            const std::string& mark);
// The fields of an HTTP/1.1 response head as HTTP/2 sends them (":status" first, lower-case
// names, no connection-specific fields; content-length only when `keep_length`).
std::vector<H2Field> h2ResponseFromH1(const ResponseHead& head, bool keep_length);
// Likewise for a request (":method", ":scheme", ":authority" from Host, ":path").
std::vector<H2Field> h2RequestFromH1(const RequestHead& head);

class H2ServerBridge {
 public:
  // Makes the session serving one stream on `fd` (already started), nullptr when it cannot.
  using SessionFactory = std::function<std::unique_ptr<HttpSession>(int fd)>;
  // Takes over `fd` (non-blocking).
  H2ServerBridge(proxy::EventLoop& loop, int fd, SessionFactory factory);
  ~H2ServerBridge();
  H2ServerBridge(const H2ServerBridge&) = delete;
  H2ServerBridge& operator=(const H2ServerBridge&) = delete;

  // `read`: what was already read from the connection (the preface at least).
  Status start(ByteBuf&& read);
  // The connection ended (after a GOAWAY, an error or the client's close). Called once;
  // destroy the bridge from a deferred task.
  std::function<void()> on_done;
  size_t activeStreams() const;
  uint64_t streams() const;  // every stream it served

  static constexpr uint32_t kMaxConcurrentStreams = 100;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class H2ClientPool {
 public:
  // A non-blocking connect to ep on behalf of source_pod (HttpSession's dial without h2).
  using Dialer = std::function<Result<int>(const std::string& source_pod, const L7Endpoint& ep)>;
  H2ClientPool(proxy::EventLoop& loop, Dialer dial);
  ~H2ClientPool();
  H2ClientPool(const H2ClientPool&) = delete;
  H2ClientPool& operator=(const H2ClientPool&) = delete;

  // One end of a socket pair carrying HTTP/1.1 to ep over a pooled h2c connection.
  Result<int> open(const std::string& source_pod, const L7Endpoint& ep);
  // Closes connections without streams for longer than idle_ms, and what has ended.
  void sweep(int64_t idle_ms);
  size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshlet::l7
