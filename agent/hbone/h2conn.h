#pragma once
// HBONE's HTTP/2 layer: one HTTP/2 connection carrying one CONNECT stream per application
// connection (RFC 9113 §8.5; authority = the original destination "ip:port", as Istio ambient
// sends it). Like the mTLS session below it, an H2Conn does no I/O: bytes from the peer go in
// with receive(), bytes for the peer come out of takeOutput(), and events are callbacks.
//
// Flow control is manual, for backpressure end to end: bytes handed to on_data count against
// the stream's and the connection's receive windows until the owner says it passed them on
// (consumed()), so a slow reader stops the far sender instead of making the agent buffer.
// Outbound, send() queues per stream and queued() tells the owner when to stop reading its
// socket.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/common/byte_buf.h"
#include "agent/common/status.h"

namespace meshlet::hbone {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct ConnectRequest {
  std::string authority;  // "198.18.0.5:8080" or "[2001:2::5]:8080"
  Headers headers;        // every regular (non-pseudo) header, lowercase names
};

// on_request's answer when the status is not known yet (the upstream is still connecting):
// the owner calls respond() later.
inline constexpr int kPending = 0;

struct Events {
  // Server: a CONNECT arrived; answer with an HTTP status (200 opens the tunnel; anything else
  // refuses it and ends the stream), or kPending and respond() later.
  std::function<int(int32_t stream, const ConnectRequest&)> on_request;
  // Client: the answer to connect(); 200 means the tunnel is up.
  std::function<void(int32_t stream, int status)> on_response;
  // Tunnel bytes from the peer. Call consumed() once they have been passed on.
  std::function<void(int32_t stream, std::string_view data)> on_data;
  // The peer finished its direction (END_STREAM): like a TCP FIN.
  std::function<void(int32_t stream)> on_end;
  // The stream is gone (both directions done, reset, or refused); error_code 0 is a clean end.
  std::function<void(int32_t stream, uint32_t error_code)> on_close;
};

struct Limits {
  uint32_t stream_window = 2 * 1024 * 1024;  // receive window per stream
  uint32_t connection_window = 16 * 1024 * 1024;
  uint32_t max_concurrent_streams = 1000;  // what a server accepts at once
  // Server: the RST_STREAMs a peer may send before the connection is torn down with GOAWAY, as
  // a token bucket (a burst, refilled per second). nghttp2's own default (1 000, then 33/s)
  // guards against rapid-reset floods, but a pooled link carries every connection between two
  // pods and an app that closes with an RST resets its stream: at that default, ordinary
  // churn took the link down every thousand connections, and every stream in flight with it.
  // The peer is an authenticated agent; this still caps a misbehaving one.
  uint32_t reset_burst = 10000;
  uint32_t resets_per_second = 10000;
};

class H2Conn {
 public:
  enum class Role { kClient, kServer };
  ~H2Conn();
  H2Conn(const H2Conn&) = delete;
  H2Conn& operator=(const H2Conn&) = delete;

  static Result<std::unique_ptr<H2Conn>> make(Role role, Events events, Limits limits = {});

  // Client: opens a CONNECT stream. Data may follow at once (it goes right behind the
  // HEADERS; a server that refuses the stream drops it).
  Result<int32_t> connect(const std::string& authority, const Headers& headers = {});
  // Server: answers a CONNECT that on_request left pending.
  Status respond(int32_t stream, int status);
  // Queues tunnel bytes for the peer.
  Status send(int32_t stream, std::string_view data);
  // The same without a copy: the stream's send queue, to receive into in place (reserve, then
  // commit); nullptr once the stream is closed or finished. Bytes committed there are sent.
  ByteBuf* outbox(int32_t stream);
  // Bytes of `stream` not yet handed to the peer (waiting for window or for the 200).
  size_t queued(int32_t stream) const;
  // Ends this side's direction once the queued bytes are out (a TCP FIN).
  Status finish(int32_t stream);
  // Aborts a stream (RST_STREAM with `code`, e.g. NGHTTP2_CANCEL = 8).
  Status reset(int32_t stream, uint32_t code);
  // `n` bytes of on_data were passed on: reopen that much window.
  void consumed(int32_t stream, size_t n);

  // HTTP/2 bytes from the peer. An error is a protocol error: the connection is finished (what
  // takeOutput() returns then holds the GOAWAY).
  Status receive(std::string_view bytes);
  std::string takeOutput();
  // Appends what there is to send to `out`: tunnel bytes are copied once, from their stream's
  // queue into `out` behind their frame header.
  void takeOutput(ByteBuf& out);
  // Stops new streams (GOAWAY); open ones may finish.
  void goAway();
  // Nothing more will happen: GOAWAY exchanged or a fatal error, and no stream open.
  bool finished() const;
  size_t openStreams() const;
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until its SETTINGS arrive).
  uint32_t peerMaxStreams() const;

 private:
  H2Conn() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshlet::hbone
