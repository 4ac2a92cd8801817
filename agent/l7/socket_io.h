#pragma once
// Non-blocking socket reads and writes into ByteBufs, shared by the L7 proxy's sessions and
// its HTTP/2 bridge (level-triggered epoll: read until the socket is empty, write until full).
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>

#include "agent/common/byte_buf.h"

namespace meshlet::l7 {

enum class Io { kOk, kEof, kError };

// Receives into `buf` in 64 KiB steps while `room()` holds, until the socket is empty (a short
// read), the peer closed (kEof) or an error (kError).
template <typename Room>
Io receiveInto(int fd, ByteBuf& buf, Room room) {
  constexpr size_t kStep = 64 * 1024;
  while (room()) {
    ssize_t n = recv(fd, buf.reserve(kStep), kStep, MSG_DONTWAIT);
    if (n > 0) {
      buf.commit(static_cast<size_t>(n));
      if (static_cast<size_t>(n) < kStep) break;
      continue;
    }
    if (n == 0) return Io::kEof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return Io::kError;
  }
  return Io::kOk;
}

// Sends from the front of `buf` until it is empty or the socket is full.
inline Io sendFrom(int fd, ByteBuf& buf) {
  while (!buf.empty()) {
    ssize_t n = send(fd, buf.data(), buf.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      buf.consume(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return Io::kError;
  }
  return Io::kOk;
}

}  // namespace meshlet::l7
