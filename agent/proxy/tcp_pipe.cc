#include "agent/proxy/tcp_pipe.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace meshlet::proxy {

TcpPipe::TcpPipe(EventLoop& loop, int a, int b) : loop_(loop) {
  a_.fd = a;
  b_.fd = b;
  a_.counter = &a_to_b_;
  b_.counter = &b_to_a_;
}

TcpPipe::~TcpPipe() {
  for (Side* s : {&a_, &b_}) {
    loop_.remove(s->fd);
    close(s->fd);
  }
}

Status TcpPipe::start(bool b_connecting) {
  connecting_ = b_connecting;
  a_.interest = connecting_ ? 0 : static_cast<uint32_t>(EPOLLIN);
  b_.interest = connecting_ ? static_cast<uint32_t>(EPOLLOUT) : static_cast<uint32_t>(EPOLLIN);
  if (auto st = loop_.add(a_.fd, a_.interest, [this](uint32_t ev) { onEvents(a_, b_, ev); }); !st)
    return st;
  return loop_.add(b_.fd, b_.interest, [this](uint32_t ev) { onEvents(b_, a_, ev); });
}

void TcpPipe::onEvents(Side& s, Side& other, uint32_t events) {
  if (done_) return;
  if (connecting_ && &s == &b_) {
    int err = socketError(b_.fd);
    connecting_ = false;
    if (on_connected) on_connected(err);
    if (err != 0) {
      fail();
      return;
    }
    events |= EPOLLIN;
  }
  if (events & EPOLLOUT) writeTo(s, other);
  if (!done_ && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) readFrom(s, other);
  if (done_) return;
  update(a_, b_);
  update(b_, a_);
  maybeDone();
}

void TcpPipe::readFrom(Side& s, Side& other) {
  while (!s.eof && other.out.size() < kBuffer) {
    ssize_t n = recv(s.fd, other.out.reserve(kChunk), kChunk, 0);
    if (n > 0) {
      *s.counter += static_cast<uint64_t>(n);
      other.out.commit(static_cast<size_t>(n));
      if (static_cast<size_t>(n) < kChunk) break;  // emptied (level-triggered loop)
      continue;
    }
    if (n == 0) {
      s.eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail();
    break;
  }
  if (!done_) writeTo(other, s);
}

void TcpPipe::writeTo(Side& s, Side& other) {
  if (connecting_) return;
  size_t written = 0;
  while (written < s.out.size()) {
    ssize_t n =
        send(s.fd, s.out.data() + written, s.out.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    fail();
    return;
  }
  s.out.consume(written);
  s.out.release(kBuffer);
  if (s.out.empty() && other.eof && !s.shut) {
    s.shut = true;
    shutdown(s.fd, SHUT_WR);
  }
}

void TcpPipe::update(Side& s, Side& other) {
  uint32_t want = 0;
  if (connecting_) {
    want = &s == &b_ ? static_cast<uint32_t>(EPOLLOUT) : 0u;
  } else {
    if (!s.eof && other.out.size() < kBuffer) want |= EPOLLIN;
    if (!s.out.empty()) want |= EPOLLOUT;
  }
  if (want != s.interest) {
    s.interest = want;
    loop_.modify(s.fd, want);
  }
}

void TcpPipe::fail() {
  if (done_) return;
  setResetOnClose(a_.fd);
  setResetOnClose(b_.fd);
  done_ = true;
  loop_.remove(a_.fd);
  loop_.remove(b_.fd);
  if (on_done) on_done();
}

void TcpPipe::maybeDone() {
  if (done_ || !a_.eof || !b_.eof || !a_.shut || !b_.shut) return;
  done_ = true;
  loop_.remove(a_.fd);
  loop_.remove(b_.fd);
  if (on_done) on_done();
}

}  // namespace meshlet::proxy
