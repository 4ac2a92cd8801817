#pragma once
// Joins two TCP sockets on the proxy's event loop: bytes both ways through bounded buffers (a
// side is not read while the other's queue is full), half-closes both ways, and a reset or
// error on either side resets the other. Used where the agent passes a checked plaintext
// connection on to the app in the same pod.
#include <cstdint>
#include <functional>
#include <string>

#include "agent/common/byte_buf.h"
#include "agent/common/status.h"
#include "agent/proxy/event_loop.h"

namespace meshlet::proxy {

class TcpPipe {
 public:
  // Takes over both fds: non-blocking sockets (the caller made them so). `b` may still be
  // connecting (see start()).
  TcpPipe(EventLoop& loop, int a, int b);
  ~TcpPipe();
  TcpPipe(const TcpPipe&) = delete;
  TcpPipe& operator=(const TcpPipe&) = delete;

  // `b_connecting`: b is a non-blocking connect in progress; nothing moves until it is up, and
  // on_connected tells how it ended (0 or an errno; on an error a is reset and the pipe is done).
  Status start(bool b_connecting);
  uint64_t bytesAtoB() const { return a_to_b_; }
  uint64_t bytesBtoA() const { return b_to_a_; }
  bool done() const { return done_; }

  std::function<void(int error)> on_connected;
  // Both directions finished, or one side failed; both sockets are out of the loop. The owner
  // may destroy the pipe (from a deferred task, not inside this callback).
  std::function<void()> on_done;

  static constexpr size_t kBuffer = 256 * 1024;
  static constexpr size_t kChunk = 64 * 1024;  // what one receive asks for

 private:
  struct Side {
    int fd = -1;
    ByteBuf out;        // bytes waiting to be written to this side
    bool eof = false;   // this side finished sending
    bool shut = false;  // we finished sending to this side
    uint32_t interest = 0;
    uint64_t* counter = nullptr;  // bytes read from this side
  };
  void onEvents(Side& s, Side& other, uint32_t events);
  void readFrom(Side& s, Side& other);
  void writeTo(Side& s, Side& other);
  void update(Side& s, Side& other);
  void fail();
  void maybeDone();

  EventLoop& loop_;
  Side a_, b_;
  bool connecting_ = false;
  bool done_ = false;
  uint64_t a_to_b_ = 0, b_to_a_ = 0;
};

}  // namespace meshlet::proxy
