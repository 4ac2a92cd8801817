#include "agent/hbone/relay.h"

#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace meshlet::hbone {

Relay::Relay(proxy::EventLoop& loop, int fd, Link& link, int32_t stream)
    : loop_(loop), fd_(fd), link_(link), stream_(stream) {}

Relay::~Relay() {
  loop_.remove(fd_);
  close(fd_);
}

Status Relay::start(bool connecting) {
  connecting_ = connecting;
  interest_ = connecting ? static_cast<uint32_t>(EPOLLOUT) : static_cast<uint32_t>(EPOLLIN);
  return loop_.add(fd_, interest_, [this](uint32_t ev) { onEvents(ev); });
}

void Relay::onEvents(uint32_t events) {
  if (done_) return;
  if (connecting_) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    connecting_ = false;
    if (err != 0) {
      failed_ = true;
      dropQueued();
    }
    if (on_connected) on_connected(err);
    if (done_ || err != 0) {
      updateInterest();
      return;
    }
  }
  if (events & EPOLLOUT) writeSocket();
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readSocket();
  link_.flush();
  maybeDone();
  updateInterest();
}

void Relay::readSocket() {
  char buf[65536];
  while (!socket_eof_ && !failed_ && link_.h2().queued(stream_) < kHighWater) {
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      up_ += static_cast<uint64_t>(n);
      if (!link_.h2().send(stream_, std::string_view(buf, static_cast<size_t>(n))).ok()) {
        failed_ = true;  // the stream is gone; onClose tells the rest
      }
      // A short read emptied the socket: asking again would only say EAGAIN (the loop is
      // level-triggered, so later bytes or the end still wake it).
      if (static_cast<size_t>(n) < sizeof(buf)) break;
      continue;
    }
    if (n == 0) {
      socket_eof_ = true;
      link_.h2().finish(stream_);
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      // The app reset its connection: reset the stream so the far side learns it.
      failed_ = true;
      link_.h2().reset(stream_, NGHTTP2_CONNECT_ERROR);
    }
    break;
  }
}

void Relay::writeSocket() {
  if (connecting_) return;  // kept until the connection is up
  size_t written = 0;
  while (written < to_socket_.size()) {
    ssize_t n = send(fd_, to_socket_.data() + written, to_socket_.size() - written,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    failed_ = true;
    dropQueued();
    link_.h2().reset(stream_, NGHTTP2_CONNECT_ERROR);
    return;
  }
  if (written > 0) {
    to_socket_.erase(0, written);
    down_ += written;
    link_.h2().consumed(stream_, written);  // only now may the peer send more
  }
  if (to_socket_.empty() && peer_end_ && !shut_wr_) {
    shut_wr_ = true;
    shutdown(fd_, SHUT_WR);
  }
}

void Relay::updateInterest() {
  if (done_) return;
  uint32_t want = 0;
  if (connecting_) want = EPOLLOUT;
  if (!connecting_ && !socket_eof_ && !failed_ && !stream_closed_ &&
      link_.h2().queued(stream_) < kHighWater)
    want |= EPOLLIN;
  if (!connecting_ && !to_socket_.empty()) want |= EPOLLOUT;
  if (want != interest_) {
    interest_ = want;
    loop_.modify(fd_, want);
  }
}

void Relay::onData(std::string_view data) {
  to_socket_.append(data);
  writeSocket();
  updateInterest();
}

void Relay::onEnd() {
  peer_end_ = true;
  writeSocket();
  updateInterest();
}

void Relay::onClose(uint32_t error_code) {
  stream_closed_ = true;
  if (error_code != 0) {
    // Reset: the app gets a reset too, not a clean end.
    dropQueued();
    linger lg{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    failed_ = true;
  }
  maybeDone();
  updateInterest();
}

void Relay::onLinkProgress() {
  if (done_) return;
  if ((interest_ & EPOLLIN) == 0 && !connecting_ && !socket_eof_ && !failed_ && !stream_closed_ &&
      link_.h2().queued(stream_) < kHighWater) {
    readSocket();
    link_.flush();
  }
  maybeDone();
  updateInterest();
}

void Relay::dropQueued() {
  // Bytes that will never reach the socket still count against the link's window: give it back.
  if (!to_socket_.empty()) link_.h2().consumed(stream_, to_socket_.size());
  to_socket_.clear();
}

void Relay::maybeDone() {
  if (done_ || !stream_closed_ || !to_socket_.empty()) return;
  done_ = true;
  loop_.remove(fd_);
  if (on_done) on_done();
}

}  // namespace meshlet::hbone
