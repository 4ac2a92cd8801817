#include "agent/admin/cni_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "agent/common/log.h"

namespace meshlet {

Status readFramed(int sock, std::string& body, int& passed_fd, size_t max_bytes) {
  passed_fd = -1;
  std::string buf;
  size_t want = 4;
  bool have_len = false;
  while (buf.size() < want) {
    char data[16384];
    char control[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{data, std::min(sizeof(data), want - buf.size())};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::fromErrno("reading the CNI request", errno);
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        int fds[4];
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        std::memcpy(fds, CMSG_DATA(c), std::min(count, size_t{4}) * sizeof(int));
        for (size_t i = 0; i < count && i < 4; ++i) {
          if (passed_fd < 0) {
            passed_fd = fds[i];
          } else {
            ::close(fds[i]);  // only one is expected
          }
        }
      }
    }
    if (n == 0) return Error("the CNI plugin closed the connection mid-request");
    buf.append(data, n);
    if (!have_len && buf.size() >= 4) {
      uint32_t len = (uint8_t(buf[0]) << 24) | (uint8_t(buf[1]) << 16) | (uint8_t(buf[2]) << 8) |
                     uint8_t(buf[3]);
      if (len > max_bytes) return Error("CNI request of " + std::to_string(len) + " bytes is too large");
      want = 4 + len;
      have_len = true;
    }
  }
  body = buf.substr(4);
  return Status::Ok();
}

Status writeFramed(int sock, const std::string& body) {
  uint32_t len = body.size();
  std::string out(4, '\0');
  out[0] = char(len >> 24);
  out[1] = char(len >> 16);
  out[2] = char(len >> 8);
  out[3] = char(len);
  out += body;
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = ::send(sock, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::fromErrno("writing the CNI response", errno);
    off += n;
  }
  return Status::Ok();
}

void CniServer::handleClient(int fd) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string body;
  int netns_fd = -1;
  cni::Response resp;
  auto st = readFramed(fd, body, netns_fd);
  cni::Request req;
  if (!st) {
    resp.set_status(cni::Response::FAILED);
    resp.set_message(st.error().message());
  } else if (!req.ParseFromString(body)) {
    resp.set_status(cni::Response::FAILED);
    resp.set_message("malformed CNI request (not a meshlet.cni.Request message)");
  } else {
    resp = handler_(req, netns_fd);
  }
  if (netns_fd >= 0) ::close(netns_fd);
  if (auto w = writeFramed(fd, resp.SerializeAsString()); !w) logWarn(w.error().message());
}

}  // namespace meshlet
