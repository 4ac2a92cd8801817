#include "cni/agent_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace meshlet::cni {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Waits until fd is ready for events or the deadline passes; returns an error text or "".
std::string WaitFor(int fd, short events, Clock::time_point deadline, const char* what) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::string("timed out ") + what;
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("poll");
    if (n > 0) return "";
  }
}

std::string Connect(int fd, const std::string& path, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return "socket path too long";
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return "";
  if (errno != EAGAIN && errno != EINPROGRESS && errno != EINTR) return Errno("connect");
  if (std::string err = WaitFor(fd, POLLOUT, deadline, "connecting"); !err.empty()) return err;
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) return std::string("connect: ") + std::strerror(so_error);
  return "";
}

std::string SendAll(int fd, const std::string& bytes, int netns_fd, Clock::time_point deadline) {
  size_t sent = 0;
  bool fd_sent = netns_fd < 0;
  while (sent < bytes.size()) {
    iovec iov{const_cast<char*>(bytes.data()) + sent, bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (!fd_sent) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cmsg), &netns_fd, sizeof(int));
    }
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (std::string err = WaitFor(fd, POLLOUT, deadline, "sending"); !err.empty()) return err;
      continue;
    }
    if (n < 0) return Errno("send");
    fd_sent = true;
    sent += static_cast<size_t>(n);
  }
  return "";
}

std::string ReadExactly(int fd, char* out, size_t size, Clock::time_point deadline) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, out + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (std::string err = WaitFor(fd, POLLIN, deadline, "waiting for the answer"); !err.empty()) {
        return err;
      }
      continue;
    }
    if (n < 0) return Errno("read");
    if (n == 0) return "the agent closed the connection without a complete answer";
    got += static_cast<size_t>(n);
  }
  return "";
}

}  // namespace

std::string Frame(std::string_view payload) {
  uint32_t n = static_cast<uint32_t>(payload.size());
  std::string out = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
  out.append(payload);
  return out;
}

uint32_t FrameLength(const unsigned char header[4]) {
  return (uint32_t{header[0]} << 24) | (uint32_t{header[1]} << 16) | (uint32_t{header[2]} << 8) |
         uint32_t{header[3]};
}

ExchangeResult Exchange(const std::string& socket_path, const Request& request, int netns_fd,
                        std::chrono::milliseconds timeout) {
  ExchangeResult result;
  Clock::time_point deadline = Clock::now() + timeout;
  Fd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (sock.get() < 0) {
    result.error = Errno("socket");
    return result;
  }
  std::string payload;
  if (!request.SerializeToString(&payload)) {
    result.error = "cannot serialize the request";
    return result;
  }
  result.error = Connect(sock.get(), socket_path, deadline);
  if (result.error.empty()) result.error = SendAll(sock.get(), Frame(payload), netns_fd, deadline);
  unsigned char header[4];
  if (result.error.empty()) {
    result.error = ReadExactly(sock.get(), reinterpret_cast<char*>(header), 4, deadline);
  }
  if (!result.error.empty()) return result;
  uint32_t length = FrameLength(header);
  if (length > kMaxFrameBytes) {
    result.error = "the agent's answer is too large (" + std::to_string(length) + " bytes)";
    return result;
  }
  std::string body(length, '\0');
  result.error = ReadExactly(sock.get(), body.data(), length, deadline);
  if (!result.error.empty()) return result;
  if (!result.response.ParseFromString(body)) {
    result.error = "the agent's answer is not a valid Response message";
    return result;
  }
  result.ok = true;
  return result;
}

}  // namespace meshlet::cni
