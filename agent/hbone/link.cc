#include "agent/hbone/link.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace meshlet::hbone {

Link::~Link() {
  loop_.remove(fd_);
  close(fd_);
}

Result<std::unique_ptr<Link>> Link::make(proxy::EventLoop& loop, int fd,
                                         std::shared_ptr<const tls::MtlsContext> tls,
                                         std::string expected_peer, Events events, Limits limits) {
  std::unique_ptr<Link> link(new Link(loop, fd));
  H2Conn::Role role =
      tls->role() == tls::MtlsRole::kClient ? H2Conn::Role::kClient : H2Conn::Role::kServer;
  auto session = tls::MtlsSession::make(std::move(tls), std::move(expected_peer));
  if (!session.ok()) return session.error();
  link->tls_ = std::move(*session);
  auto h2 = H2Conn::make(role, std::move(events), limits);
  if (!h2.ok()) return h2.error();
  link->h2_ = std::move(*h2);
  if (auto st = proxy::setNonBlocking(fd); !st) return st.error();
  Link* raw = link.get();
  if (auto st = loop.add(fd, EPOLLIN | EPOLLOUT, [raw](uint32_t ev) { raw->onEvents(ev); }); !st)
    return st.error();
  // Nothing happens before the loop runs (the first EPOLLOUT: connected), so the owner can set
  // the callbacks first; then a client sends its ClientHello.
  link->want_write_ = true;
  return link;
}

size_t Link::bufferBytes() const {
  return plain_out_.capacity() + tls_->input().capacity() + tls_->plain().capacity() +
         tls_->output().capacity();
}

void Link::releaseBuffers() {
  for (ByteBuf* b : {&plain_out_, &tls_->input(), &tls_->plain(), &tls_->output()}) b->release(0);
}

void Link::fail(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  loop_.remove(fd_);
  if (on_closed) on_closed(why);
}

void Link::onEvents(uint32_t events) {
  if (closed_) return;
  ++activity_;
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    ByteBuf& in = tls_->input();  // received in place, where TLS reads it
    while (true) {
      ssize_t n = recv(fd_, in.reserve(kChunk), kChunk, 0);
      if (n > 0) {
        in.commit(static_cast<size_t>(n));
        if (static_cast<size_t>(n) < kChunk) break;  // emptied (level-triggered loop)
        // More may wait: pass this chunk on first, so the buffers stay the size of one.
        process();
        if (closed_) return;
        continue;
      }
      if (n == 0) {
        process();  // whatever arrived before the end
        fail(was_established_ ? "the peer closed the connection"
                              : "the peer closed the connection during the TLS handshake");
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      fail(std::string("receive: ") + std::strerror(errno));
      return;
    }
  }
  process();
}

void Link::process() {
  if (closed_) return;
  started_ = true;
  if (Status st = tls_->pump(); !st) {
    ByteBuf& out = tls_->output();  // an alert, if the handshake was refused
    if (!out.empty()) send(fd_, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    fail(st.error().message());
    return;
  }
  if (tls_->established() && !was_established_) {
    was_established_ = true;
    if (on_established) on_established();
    if (closed_) return;
  }
  ByteBuf& plain = tls_->plain();
  if (!plain.empty()) {
    Status st = h2_->receive(plain.view());
    plain.clear();
    if (!st) {
      flush();  // the GOAWAY
      fail(st.error().message());
      return;
    }
  }
  tls_->input().release(kKeep);
  plain.release(kKeep);
  if (tls_->peerClosed()) {
    fail("the peer ended the TLS session");
    return;
  }
  flush();
  if (on_progress && !closed_) on_progress();
}

void Link::flush() {
  if (closed_) return;
  ++activity_;
  h2_->takeOutput(plain_out_);
  if (tls_->established() && !plain_out_.empty()) {
    if (Status st = tls_->write(plain_out_.view()); !st) {
      fail(st.error().message());
      return;
    }
    plain_out_.clear();
    plain_out_.release(kKeep);
  }
  ByteBuf& out = tls_->output();
  while (!out.empty()) {
    ssize_t n = send(fd_, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out.consume(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) break;
    fail(std::string("send: ") + std::strerror(errno));
    return;
  }
  out.release(kKeep);
  // Until the first event the socket may still be connecting: wait for it to be writable.
  bool want = !out.empty() || !started_;
  if (want != want_write_) {
    want_write_ = want;
    loop_.modify(fd_, want ? EPOLLIN | EPOLLOUT : static_cast<uint32_t>(EPOLLIN));
  }
}

}  // namespace meshlet::hbone
