#include "agent/proxy/netns_socket.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

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

namespace {

// A socket of the calling thread's netns, as the agent wants its in-pod sockets.
int agentSocket(int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  // The datapath leaves marked sockets alone (no service rewrite, no tunnel, no tracking).
  // Needs CAP_NET_ADMIN, which the agent has; without it the socket still works.
  uint32_t mark = MESHLET_AGENT_MARK;
  setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
  // The agent writes whole frames and records: Nagle would hold a small one (a CONNECT, a
  // 200) behind an unacknowledged one for a delayed-ACK time (~40 ms). Accepted sockets
  // inherit it from their listener.
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

}  // namespace

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
    fd = agentSocket(family);
    if (fd < 0) {
      err = errno;
      step = "socket";
    }
  });
  t.join();
  close(ns);
  if (fd < 0) return Error::fromErrno(std::string(step) + " in " + netns_path, err);
  return fd;
}

SpareSockets::SpareSockets(std::string netns_path) : netns_(std::move(netns_path)) {
  thread_ = std::thread([this] { run(); });
}

SpareSockets::~SpareSockets() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto* q : {&v4_, &v6_}) {
    for (int fd : *q) close(fd);
  }
}

void SpareSockets::run() {
  int ns = open(netns_.c_str(), O_RDONLY | O_CLOEXEC);
  bool in_netns = ns >= 0 && setns(ns, CLONE_NEWNET) == 0;
  if (ns >= 0) close(ns);
  std::unique_lock<std::mutex> l(mu_);
  if (!in_netns) return;  // take() makes each socket itself (and reports why it cannot)
  bool v6_works = true;
  while (!stop_) {
    bool made = false;
    if (v4_.size() < kSpare) {
      l.unlock();
      int fd = agentSocket(AF_INET);
      l.lock();
      if (fd >= 0) v4_.push_back(fd);
      made = fd >= 0;
    }
    if (v6_works && v6_.size() < kSpare) {
      l.unlock();
      int fd = agentSocket(AF_INET6);
      l.lock();
      if (fd >= 0) v6_.push_back(fd);
      v6_works = fd >= 0;  // a netns without IPv6: stop trying
      made |= fd >= 0;
    }
    if (!made || (v4_.size() >= kSpare && (!v6_works || v6_.size() >= kSpare))) {
      cv_.wait(l, [&] {
        return stop_ || v4_.size() <= kRefillAt || (v6_works && v6_.size() <= kRefillAt);
      });
    }
  }
}

Result<int> SpareSockets::take(int family) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto& q = family == AF_INET ? v4_ : v6_;
    if (!q.empty()) {
      int fd = q.front();
      q.pop_front();
      if (q.size() == kRefillAt) cv_.notify_one();
      return fd;
    }
  }
  return tcpSocketInNetns(netns_, family);
}

Result<int> SpareSockets::connect(const IpAddr& ip, int port) {
  auto fd = take(ip.isV4() ? AF_INET : AF_INET6);
  if (!fd.ok()) return fd;
  return startConnect(*fd, ip, port, netns_);
}

Result<int> startConnect(int fd, const IpAddr& ip, int port, const std::string& netns_path) {
  socklen_t len = 0;
  sockaddr_storage ss = sockaddrOf(ip, port, &len);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    return Error::fromErrno(
        "connect " + ip.toString() + " port " + std::to_string(port) + " in " + netns_path, err);
  }
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
  return startConnect(*fd, ip, port, netns_path);
}

}  // namespace meshlet::proxy
