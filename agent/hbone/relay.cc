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
    int err = proxy::socketError(fd_);
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
  while (!socket_eof_ && !failed_ && link_.h2().queued(stream_) < kHighWater) {
    ByteBuf* q = link_.h2().outbox(stream_);  // received in place, where HTTP/2 sends from
    if (!q) {
      failed_ = true;  // the stream is gone; onClose tells the rest
      break;
    }
    ssize_t n = recv(fd_, q->reserve(kChunk), kChunk, 0);
    if (n > 0) {
      q->commit(static_cast<size_t>(n));
      up_ += static_cast<uint64_t>(n);
      // A short read emptied the socket: asking again would only say EAGAIN (the loop is
      // level-triggered, so later bytes or the end still wake it).
      if (static_cast<size_t>(n) < kChunk) break;
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

// Writes as much of `data` as the socket takes now and returns how much that was. A socket that
// fails sets failed_, drops what was queued and resets the stream.
size_t Relay::writeSome(std::string_view data) {
  size_t written = 0;
  bool broken = false;
  while (written < data.size()) {
    ssize_t n =
        send(fd_, data.data() + written, data.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    broken = !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    break;
  }
  if (written > 0) {
    down_ += written;
    link_.h2().consumed(stream_, written);  // only now may the peer send more
  }
  if (broken) {
    failed_ = true;
    dropQueued();
    link_.h2().reset(stream_, NGHTTP2_CONNECT_ERROR);
  }
  return written;
}

void Relay::writeSocket() {
  if (connecting_) return;  // kept until the connection is up
  size_t n = writeSome(to_socket_.view());
  if (failed_) return;
  to_socket_.consume(n);
  to_socket_.release(kHighWater);
  if (to_socket_.empty() && peer_end_ && !shut_wr_) {
    shut_wr_ = true;
    shutdown(fd_, SHUT_WR);
  }
}

void Relay::updateInterest() {
  if (done_) return;
  uint32_t want = 0;
  if (connecting_) want = EPOLLOUT;
  bool reading = !connecting_ && !socket_eof_ && !failed_ && !stream_closed_;
  bool full = reading && link_.h2().queued(stream_) >= kHighWater;
  if (reading && !full) want |= EPOLLIN;
  if (!connecting_ && !to_socket_.empty()) want |= EPOLLOUT;
  if (want != interest_) {
    interest_ = want;
    loop_.modify(fd_, want);
  }
  if (full && !waiting_ && on_full) {
    waiting_ = true;
    on_full();
  }
}

void Relay::onData(std::string_view data) {
  if (failed_) {
    link_.h2().consumed(stream_, data.size());  // nobody will take them: give the window back
    return;
  }
  if (to_socket_.empty() && !connecting_) {
    // Straight from the link's buffer to the socket; only what it does not take is kept.
    size_t n = writeSome(data);
    if (failed_) {
      link_.h2().consumed(stream_, data.size() - n);
      return;
    }
    data.remove_prefix(n);
  }
  to_socket_.append(data);
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
  waiting_ = false;
  if (done_) return;
  if ((interest_ & EPOLLIN) == 0 && !connecting_ && !socket_eof_ && !failed_ && !stream_closed_ &&
      link_.h2().queued(stream_) < kHighWater) {
    readSocket();
    link_.flush();
  }
  maybeDone();
  updateInterest();
}

void Relay::readNow() {
  if (done_ || connecting_) return;
  readSocket();
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
