#include "agent/proxy/netns_socket.h"

#include <fcntl.h>
#include <sched.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "meshlet/maps.h"

namespace meshlet::proxy {
sockaddr_storage sockaddrOf(const IpAddr& ip, int port, socklen_t* len) {
  sockaddr_storage ss{};
  if (ip.isV4()) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&a->sin_addr, ip.bytes.data(), 4);
    *len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&a->sin6_addr, ip.bytes.data(), 16);
    *len = sizeof(sockaddr_in6);
  }
  return ss;
}


Result<int> tcpSocketInNetns(const std::string& netns_path, int family) {
  int ns = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return Error::fromErrno(netns_path, errno);
  int fd = -1, err = 0;
  const char* step = "";
  std::thread t([&] {
    if (setns(ns, CLONE_NEWNET) != 0) {
      err = errno;
      step = "setns";
      return;
    }
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = errno;
      step = "socket";
      return;
    }
    // The datapath leaves marked sockets alone (no service rewrite, no tunnel, no tracking).
    // Needs CAP_NET_ADMIN, which the agent has; without it the socket still works.
    uint32_t mark = MESHLET_AGENT_MARK;
    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
    // The agent writes whole frames and records: Nagle would hold a small one (a CONNECT, a
    // 200) behind an unacknowledged one for a delayed-ACK time (~40 ms). Accepted sockets
    // inherit it from their listener.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  });
  t.join();
  close(ns);
  if (fd < 0) return Error::fromErrno(std::string(step) + " in " + netns_path, err);
  return fd;
}

Result<int> listenInNetns(const std::string& netns_path, const IpAddr& ip, int port) {
  auto fd = tcpSocketInNetns(netns_path, ip.isV4() ? AF_INET : AF_INET6);
  if (!fd.ok()) return fd;
  int one = 1;
  setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = 0;
  sockaddr_storage addr = sockaddrOf(ip, port, &len);
  std::string where = ip.toString() + ":" + std::to_string(port) + " in " + netns_path;
  if (bind(*fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    int err = errno;
    close(*fd);
    return Error::fromErrno("bind " + where, err);
  }
  if (listen(*fd, 1024) != 0) {
    int err = errno;
    close(*fd);
    return Error::fromErrno("listen " + where, err);
  }
  return fd;
}

Result<int> connectInNetns(const std::string& netns_path, const IpAddr& ip, int port) {
  auto fd = tcpSocketInNetns(netns_path, ip.isV4() ? AF_INET : AF_INET6);
  if (!fd.ok()) return fd;
  socklen_t len = 0;
  sockaddr_storage ss = sockaddrOf(ip, port, &len);
  if (connect(*fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    int err = errno;
    close(*fd);
    return Error::fromErrno("connect " + ip.toString() + " port " + std::to_string(port) +
                                " in " + netns_path,
                            err);
  }
  return fd;
}

}  // namespace meshlet::proxy
