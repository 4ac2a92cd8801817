#pragma once
// One HBONE connection on a socket: TCP, then mTLS (TLS 1.3, ALPN h2, SVIDs on both sides),
// then HTTP/2 with one CONNECT stream per tunnelled connection. Driven by the proxy's event
// loop; the streams are used through h2(), followed by flush().
#include <functional>
#include <memory>
#include <string>

#include "agent/common/status.h"
#include "agent/hbone/h2conn.h"
#include "agent/proxy/event_loop.h"
#include "agent/tls/mtls.h"

namespace meshlet::hbone {

class Link {
 public:
  ~Link();  // leaves the loop and closes the socket
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Takes over `fd`: a connected (or connecting) non-blocking TCP socket. The TLS role follows
  // the context's. `expected_peer`: the SPIFFE id the server must present ("" = any).
  static Result<std::unique_ptr<Link>> make(proxy::EventLoop& loop, int fd,
                                            std::shared_ptr<const tls::MtlsContext> tls,
                                            std::string expected_peer, Events events,
                                            Limits limits = {});

  H2Conn& h2() { return *h2_; }
  // Sends what HTTP/2 has to say (through TLS) to the socket. Call after using h2().
  void flush();
  bool established() const { return tls_->established(); }
  const std::string& peerId() const { return tls_->peerId(); }
  bool closed() const { return closed_; }
  // Ciphertext waiting for the socket to take it.
  size_t pendingBytes() const { return tls_->output().size(); }
  // The storage its queues hold (a busy link keeps up to kKeep per queue, so the next burst
  // needs no new memory), and giving back what empty queues hold: the owner does that once the
  // link has been quiet for a while. activity() changes with every event and flush.
  size_t bufferBytes() const;
  void releaseBuffers();
  uint64_t activity() const { return activity_; }

  // The mTLS handshake completed and the peer is who it must be.
  std::function<void()> on_established;
  // The link is dead (handshake refused, protocol error, the peer went away). Called once; the
  // owner destroys the link afterwards (not from inside this callback: use loop.defer).
  std::function<void(const std::string& why)> on_closed;
  // Bytes arrived and were processed (window updates among them): relays paused on a full
  // send queue may read again.
  std::function<void()> on_progress;

 private:
  Link(proxy::EventLoop& loop, int fd) : loop_(loop), fd_(fd) {}
  void onEvents(uint32_t events);
  void process();
  void fail(const std::string& why);

  proxy::EventLoop& loop_;
  int fd_;
  std::unique_ptr<tls::MtlsSession> tls_;
  std::unique_ptr<H2Conn> h2_;
  // What a receive asks for; a queue holding more than kKeep gives it back whenever it empties
  // (a burst's peak is not kept), the rest when the owner calls releaseBuffers().
  static constexpr size_t kChunk = 256 * 1024;
  static constexpr size_t kKeep = 2 * 1024 * 1024;
  ByteBuf plain_out_;  // HTTP/2 bytes (waiting for the handshake to finish)
  bool was_established_ = false;
  bool want_write_ = false;
  bool started_ = false;  // the loop delivered the first event (the TLS handshake began)
  bool closed_ = false;
  uint64_t activity_ = 0;
};

}  // namespace meshlet::hbone
