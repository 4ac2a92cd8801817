#pragma once
// Joins a plain TCP socket (the app's connection, or the connection to the destination app) and
// one HBONE stream: bytes both ways, half-closes both ways, and backpressure both ways — the
// socket is not read while the stream's send queue is full, and received bytes are only
// acknowledged to the peer (HTTP/2 window) once the socket took them.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "agent/common/byte_buf.h"
#include "agent/hbone/link.h"
#include "agent/proxy/event_loop.h"

namespace meshlet::hbone {

class Relay {
 public:
  // Takes over `fd`: a non-blocking socket (the caller made it so), connected or connecting.
  Relay(proxy::EventLoop& loop, int fd, Link& link, int32_t stream);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // `connecting`: fd is a non-blocking connect in progress; on_connected tells how it ended
  // (0 or an errno), and nothing is written to or read from the socket before that.
  Status start(bool connecting = false);
  // The link's events for this stream.
  void onData(std::string_view data);
  void onEnd();
  void onClose(uint32_t error_code);
  // The link made progress (window updates arrived): read the socket again if it was paused.
  void onLinkProgress();
  // Reads what the socket already holds, without waiting for the loop to say so: an app's
  // first bytes are often there by the time its connection is accepted, and then go out with
  // the CONNECT instead of in a record of their own. Call flush() on the link after.
  void readNow();

  int32_t stream() const { return stream_; }
  uint64_t bytesUp() const { return up_; }      // socket → stream
  uint64_t bytesDown() const { return down_; }  // stream → socket
  // Both directions are finished and the socket was closed; the owner may destroy it.
  std::function<void()> on_done;
  std::function<void(int error)> on_connected;
  // The socket is no longer read because the stream's send queue is full: call
  // onLinkProgress() once the link made progress. Said once per pause, so a link need not ask
  // every relay after every event.
  std::function<void()> on_full;

  static constexpr size_t kHighWater = 1024 * 1024;
  static constexpr size_t kChunk = 64 * 1024;  // what one receive asks for

 private:
  void onEvents(uint32_t events);
  void readSocket();
  void writeSocket();
  size_t writeSome(std::string_view data);
  void updateInterest();
  void maybeDone();
  void dropQueued();

  proxy::EventLoop& loop_;
  int fd_;
  Link& link_;
  int32_t stream_;
  ByteBuf to_socket_;
  bool connecting_ = false;
  bool socket_eof_ = false;  // the app finished its direction
  bool peer_end_ = false;    // the stream's far side finished
  bool stream_closed_ = false;
  bool shut_wr_ = false;
  bool failed_ = false;
  bool done_ = false;
  bool waiting_ = false;  // on_full was called and onLinkProgress not yet
  uint32_t interest_ = 0;
  uint64_t up_ = 0, down_ = 0;
};

}  // namespace meshlet::hbone
