#pragma once
// Sockets inside a pod's network namespace, made from the agent's own: the in-pod listeners of
// HBONE (127.0.0.1:15001 outbound capture, :15008 inbound) and connections to a pod's apps. A
// socket keeps the namespace it was created in, so only its creation happens in the pod's
// namespace, on a short-lived thread that setns()es (the agent's threads never move).
#include <netinet/in.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "agent/common/ip.h"
#include "agent/common/status.h"

namespace meshlet::proxy {

// A non-blocking, close-on-exec TCP socket of `family` in the network namespace at
// `netns_path` (/var/run/netns/NAME or /proc/PID/ns/net).
Result<int> tcpSocketInNetns(const std::string& netns_path, int family);

// Sockets made ahead of time in one pod's netns by a thread that lives there, so taking one
// costs no thread start and no setns (the tunnel's hot path: a dial per pooled link, a
// connection to the app per tunnelled stream). Up to kSpare of each family are kept ready; the
// thread refills a family once it is down to kRefillAt, in one go, so it wakes once per several
// connections rather than taking a CPU from the proxy on every one.
class SpareSockets {
 public:
  explicit SpareSockets(std::string netns_path);
  ~SpareSockets();
  SpareSockets(const SpareSockets&) = delete;
  SpareSockets& operator=(const SpareSockets&) = delete;

  // A fresh socket, as tcpSocketInNetns makes it: a spare, or one made on the spot.
  Result<int> take(int family);
  // take() plus a non-blocking connect to ip:port (done when writable).
  Result<int> connect(const IpAddr& ip, int port);

  static constexpr size_t kSpare = 16;
  static constexpr size_t kRefillAt = 8;

 private:
  void run();
  std::string netns_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> v4_, v6_;
  bool stop_ = false;
  std::thread thread_;
};

// A non-blocking connect of `fd` to ip:port; on failure fd is closed (netns_path names it).
Result<int> startConnect(int fd, const IpAddr& ip, int port, const std::string& netns_path);

// A non-blocking connect to ip:port started inside the namespace (done when writable).
Result<int> connectInNetns(const std::string& netns_path, const IpAddr& ip, int port);
// The socket address of ip:port; *len is its size.
sockaddr_storage sockaddrOf(const IpAddr& ip, int port, socklen_t* len);
// Sockets made here carry SO_MARK MESHLET_AGENT_MARK: the datapath leaves them alone.
// A listening socket on ip:port inside the namespace (SO_REUSEADDR; backlog 1024).
Result<int> listenInNetns(const std::string& netns_path, const IpAddr& ip, int port);

}  // namespace meshlet::proxy
