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

void Link::fail(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  loop_.remove(fd_);
  if (on_closed) on_closed(why);
}

void Link::onEvents(uint32_t events) {
  if (closed_) return;
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    char buf[65536];
    while (true) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        tls_->feed(std::string_view(buf, static_cast<size_t>(n)));
        if (static_cast<size_t>(n) < sizeof(buf)) break;  // emptied (level-triggered loop)
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
    out_ += tls_->takeOutput();  // an alert, if the handshake was refused
    if (!out_.empty()) send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    fail(st.error().message());
    return;
  }
  if (tls_->established() && !was_established_) {
    was_established_ = true;
    if (on_established) on_established();
    if (closed_) return;
  }
  std::string plain = tls_->takePlain();
  if (!plain.empty()) {
    if (Status st = h2_->receive(plain); !st) {
      flush();  // the GOAWAY
      fail(st.error().message());
      return;
    }
  }
  if (tls_->peerClosed()) {
    fail("the peer ended the TLS session");
    return;
  }
  flush();
  if (on_progress && !closed_) on_progress();
}

void Link::flush() {
  if (closed_) return;
  if (plain_out_.empty()) {
    plain_out_ = h2_->takeOutput();
  } else {
    plain_out_ += h2_->takeOutput();
  }
  if (tls_->established() && !plain_out_.empty()) {
    if (Status st = tls_->write(plain_out_); !st) {
      fail(st.error().message());
      return;
    }
    plain_out_.clear();
  }
  if (out_.empty()) {
    out_ = tls_->takeOutput();
  } else {
    out_ += tls_->takeOutput();
  }
  while (!out_.empty()) {
    ssize_t n = send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) break;
    fail(std::string("send: ") + std::strerror(errno));
    return;
  }
  // Until the first event the socket may still be connecting: wait for it to be writable.
  bool want = !out_.empty() || !started_;
  if (want != want_write_) {
    want_write_ = want;
    loop_.modify(fd_, want ? EPOLLIN | EPOLLOUT : static_cast<uint32_t>(EPOLLIN));
  }
}

}  // namespace meshlet::hbone
