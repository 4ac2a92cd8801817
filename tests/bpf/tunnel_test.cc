// Kernel tests of the tunnel path: the real programs attached to a scratch cgroup; a TCP
// connect() from an enrolled pod to a mesh pod of another node (or to a service whose chosen
// backend is one) must reach the agent's outbound listener on the pod's own 127.0.0.1:15001
// (::1 for IPv6), with the original destination recorded in meshlet_tunnel_v1.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/datapath/datapath.h"
#include "agent/proxy/netns_socket.h"
#include "agent/translate/translate.h"
#include "tests/lib/sandbox.h"

namespace meshlet {
namespace {

using testing::Sandbox;
using testing::TestPod;

constexpr int kAppPort = 8080;

IpAddr addr(const std::string& text) {
  auto a = IpAddr::parse(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(IpAddr{});
}

uint8_t afOf(const IpAddr& a) { return a.isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6; }

meshlet_ip_key ipKeyOf(const std::string& text) {
  IpAddr a = addr(text);
  meshlet_ip_key k{};
  auto w = a.words();
  std::memcpy(k.addr, w.data(), sizeof(k.addr));
  k.family = afOf(a);
  return k;
}

int portOf(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port)
                                 : ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
}

using Dial = testing::ConnectResult;

// The agent's outbound listener, as the agent opens it: a socket made in the pod's netns from
// this process (listenInNetns), bound to the pod's loopback port 15001. Every connection it
// accepts is recorded (the peer as the accepted socket sees it) and answered with `greeting`.
class OutboundListener {
 public:
  struct Accepted {
    std::string peer_ip;
    int peer_port = 0;
  };

  OutboundListener(const std::string& netns_path, const std::string& ip,
                   const std::string& greeting)
      : greeting_(greeting) {
    auto fd = proxy::listenInNetns(netns_path, addr(ip), MESHLET_OUTBOUND_PORT);
    if (!fd.ok()) {
      error_ = fd.error().message();
      return;
    }
    fd_ = *fd;
    thread_ = std::thread([this] { loop(); });
  }
  ~OutboundListener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  const std::string& error() const { return error_; }

  std::vector<Accepted> accepted() {
    std::lock_guard<std::mutex> lock(mu_);
    return accepted_;
  }
  // The connection from the app socket with local port `port`, if this listener took it.
  std::optional<Accepted> from(int port) {
    for (const Accepted& a : accepted()) {
      if (a.peer_port == port) return a;
    }
    return std::nullopt;
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) != 1) continue;
      sockaddr_storage peer{};
      socklen_t pl = sizeof(peer);
      int c = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &pl, SOCK_CLOEXEC);
      if (c < 0) continue;
      Accepted a;
      char buf[INET6_ADDRSTRLEN] = {};
      if (peer.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, buf, sizeof(buf));
      } else {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&peer)->sin6_addr, buf, sizeof(buf));
      }
      a.peer_ip = buf;
      a.peer_port = portOf(peer);
      {
        std::lock_guard<std::mutex> lock(mu_);
        accepted_.push_back(a);
      }
      (void)!write(c, greeting_.data(), greeting_.size());
      close(c);
    }
  }

  std::string greeting_;
  std::string error_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Accepted> accepted_;
};

class TunnelPathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reason_ = testing::kernelTestsUnavailable();
    if (!reason_.empty()) return;
    sb_ = new Sandbox();
    sb_->addPod("client");    // enrolled
    sb_->addPod("remote");    // stands for a mesh pod of another node: its IPs are remote IPs
    sb_->addPod("outsider");  // not enrolled
    const TestPod& remote = sb_->pod("remote");
    sb_->spawnInPod(remote, [] { return testing::serveTcp(AF_INET6, kAppPort, "remote"); });
    sb_->spawnInPod(remote, [] { return testing::serveUdp(AF_INET6, 5353, "remote:"); });

    DatapathOptions opts;
    opts.bpffs_dir = sb_->bpffs();
    opts.cgroup_path = sb_->cgroup();
    auto dp = Datapath::open(opts);
    if (!dp.ok()) {
      setup_error_ = dp.error().message();
      return;
    }
    dp_ = dp->release();
    auto fd = dp_->tunnelMapFd();
    if (!fd.ok()) {
      setup_error_ = fd.error().message();
      return;
    }
    tunnel_fd_ = *fd;
    for (const char* name : {"client", "outsider"}) {
      auto cookie = netnsCookie(sb_->pod(name).netns_path);
      if (!cookie.ok()) {
        setup_error_ = cookie.error().message();
        return;
      }
      cookies_[name] = *cookie;
    }
    client_v4_ = new OutboundListener(sb_->pod("client").netns_path, "127.0.0.1", "outbound");
    client_v6_ = new OutboundListener(sb_->pod("client").netns_path, "::1", "outbound6");
    outsider_v4_ =
        new OutboundListener(sb_->pod("outsider").netns_path, "127.0.0.1", "outsider-outbound");
    for (auto* l : {client_v4_, client_v6_, outsider_v4_}) {
      if (!l->error().empty()) setup_error_ = l->error();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // servers listening
  }
  static void TearDownTestSuite() {
    delete client_v4_;
    delete client_v6_;
    delete outsider_v4_;
    client_v4_ = client_v6_ = outsider_v4_ = nullptr;
    if (tunnel_fd_ >= 0) close(tunnel_fd_);
    tunnel_fd_ = -1;
    delete dp_;
    dp_ = nullptr;
    delete sb_;
    sb_ = nullptr;
  }
  void SetUp() override {
    if (!reason_.empty()) GTEST_SKIP() << "kernel tests cannot run here: " << reason_;
    ASSERT_TRUE(dp_ && setup_error_.empty()) << setup_error_;
  }

  // The client enrolled, the remote pod's IPs as remote mesh IPs (node 7).
  DesiredDatapath base() {
    DesiredDatapath d;
    const TestPod& client = sb_->pod("client");
    d.pods[cookies_.at("client")] = meshlet_pod_value{1, 0};
    d.local_ips[ipKeyOf(client.ip4)] = meshlet_ip_value{1, 0};
    d.local_ips[ipKeyOf(client.ip6)] = meshlet_ip_value{1, 0};
    const TestPod& remote = sb_->pod("remote");
    for (const std::string& a : {remote.ip4, remote.ip6}) {
      d.remote_ips[ipKeyOf(a)] = meshlet_remote_value{7, 0};
      d.remote_pods[addr(a)] = RemotePodInfo{"shop", "remote", "remote-sa", "node-b"};
    }
    return d;
  }
  // A TCP service vip:port with one ready, non-local backend.
  static void service(DesiredDatapath& d, uint32_t svc_id, const std::string& vip, int port,
                      const std::string& backend, int backend_port, uint32_t backend_id,
                      uint8_t flags) {
    IpAddr v = addr(vip);
    meshlet_svc_key k{};
    auto w = v.words();
    std::memcpy(k.addr, w.data(), sizeof(k.addr));
    k.port = static_cast<uint16_t>(port);
    k.proto = IPPROTO_TCP;
    k.family = afOf(v);
    meshlet_svc_value sv{};
    sv.svc_id = svc_id;
    sv.count = 1;
    sv.lb_algo = MESHLET_LB_RANDOM;
    d.services[k] = sv;
    IpAddr b = addr(backend);
    meshlet_backend_value bv{};
    auto bw = b.words();
    std::memcpy(bv.addr, bw.data(), sizeof(bv.addr));
    bv.port = static_cast<uint16_t>(backend_port);
    bv.family = afOf(b);
    bv.flags = flags;
    bv.backend_id = backend_id;
    BackendEntries backends = d.backends();
    backends[{svc_id, 0}] = bv;
    d.setBackends(backends);
  }
  void apply(const DesiredDatapath& d) {
    auto st = dp_->apply(d);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  Dial dialFrom(const std::string& pod, int family, const std::string& ip, int port, int mark = 0,
                int timeout_ms = 2000) {
    return testing::decode(sb_->runInPod(sb_->pod(pod), [&] {
      return testing::encode(testing::tcpConnect(ip, port, {family, mark, timeout_ms}));
    }));
  }
  static std::optional<meshlet_origin> take(const std::string& pod, int port, uint8_t family) {
    return takeTunnelOrigin(tunnel_fd_, cookies_.at(pod), static_cast<uint16_t>(port), family);
  }
  static void expectAddr(const uint32_t words[4], uint8_t family, const std::string& want,
                         const char* what) {
    EXPECT_EQ(IpAddr::fromWords(words, family).toString(), addr(want).toString()) << what;
  }

  static inline Sandbox* sb_ = nullptr;
  static inline Datapath* dp_ = nullptr;
  static inline int tunnel_fd_ = -1;
  static inline std::map<std::string, uint64_t> cookies_;
  static inline OutboundListener* client_v4_ = nullptr;
  static inline OutboundListener* client_v6_ = nullptr;
  static inline OutboundListener* outsider_v4_ = nullptr;
  static inline std::string reason_;
  static inline std::string setup_error_;
};

TEST_F(TunnelPathTest, ConnectToRemoteMeshPodIpReachesTheOutboundListener) {
  apply(base());
  const std::string target = sb_->pod("remote").ip4;
  Dial r = dialFrom("client", AF_INET, target, kAppPort);
  ASSERT_EQ(r.err, 0) << strerror(r.err);
  EXPECT_EQ(r.greeting, "outbound") << "the connection did not reach 127.0.0.1:15001 in the pod";
  EXPECT_EQ(r.peer, target + ":8080");  // the app sees where it dialled, not 127.0.0.1:15001
  auto accepted = client_v4_->from(r.local_port);
  ASSERT_TRUE(accepted) << "no connection from port " << r.local_port;
  EXPECT_EQ(accepted->peer_ip, "127.0.0.1");

  auto o = take("client", r.local_port, MESHLET_AF_INET);
  ASSERT_TRUE(o) << "no tunnel origin for port " << r.local_port;
  EXPECT_EQ(o->path, MESHLET_PATH_TUNNEL);
  EXPECT_EQ(o->family, MESHLET_AF_INET);
  EXPECT_EQ(o->proto, IPPROTO_TCP);
  expectAddr(o->orig_addr, o->family, target, "orig_addr");
  EXPECT_EQ(o->orig_port, kAppPort);
  expectAddr(o->backend_addr, o->family, target, "backend_addr");
  EXPECT_EQ(o->backend_port, kAppPort);
  EXPECT_EQ(o->svc_id, MESHLET_NO_ID);
  EXPECT_EQ(o->backend_id, MESHLET_NO_ID);
  // Taking it removes it.
  EXPECT_FALSE(take("client", r.local_port, MESHLET_AF_INET));
}

TEST_F(TunnelPathTest, ServiceWithTunnelBackendReachesTheOutboundListener) {
  DesiredDatapath d = base();
  const std::string backend = sb_->pod("remote").ip4;
  service(d, 21, "198.19.1.10", 80, backend, kAppPort, 501, MESHLET_BACKEND_TUNNEL);
  apply(d);
  const uint64_t connects = dp_->svcCounters(21).connects;
  Dial r = dialFrom("client", AF_INET, "198.19.1.10", 80);
  ASSERT_EQ(r.err, 0) << strerror(r.err);
  EXPECT_EQ(r.greeting, "outbound");
  EXPECT_EQ(r.peer, "198.19.1.10:80");
  EXPECT_TRUE(client_v4_->from(r.local_port));
  EXPECT_EQ(dp_->svcCounters(21).connects, connects + 1);

  auto o = take("client", r.local_port, MESHLET_AF_INET);
  ASSERT_TRUE(o) << "no tunnel origin for port " << r.local_port;
  EXPECT_EQ(o->path, MESHLET_PATH_TUNNEL);
  EXPECT_EQ(o->family, MESHLET_AF_INET);
  EXPECT_EQ(o->proto, IPPROTO_TCP);
  expectAddr(o->orig_addr, o->family, "198.19.1.10", "orig_addr");
  EXPECT_EQ(o->orig_port, 80);
  expectAddr(o->backend_addr, o->family, backend, "backend_addr");
  EXPECT_EQ(o->backend_port, kAppPort);
  EXPECT_EQ(o->svc_id, 21u);
  EXPECT_EQ(o->backend_id, 501u);
  EXPECT_FALSE(take("client", r.local_port, MESHLET_AF_INET));
}

// The control for the test above: the same service and backend without the flag is plain
// load balancing straight to the backend, and records nothing for the listener.
TEST_F(TunnelPathTest, ServiceBackendWithoutTunnelFlagIsBalancedDirectly) {
  DesiredDatapath d = base();
  const std::string backend = sb_->pod("remote").ip4;
  service(d, 22, "198.19.1.11", 80, backend, kAppPort, 502, 0);
  apply(d);
  Dial r = dialFrom("client", AF_INET, "198.19.1.11", 80);
  ASSERT_EQ(r.err, 0) << strerror(r.err);
  EXPECT_EQ(r.greeting, "remote");
  EXPECT_EQ(r.peer, "198.19.1.11:80");
  EXPECT_FALSE(client_v4_->from(r.local_port));
  EXPECT_FALSE(take("client", r.local_port, MESHLET_AF_INET));
}

TEST_F(TunnelPathTest, Ipv6RemotePodAndServiceReachTheIpv6Listener) {
  DesiredDatapath d = base();
  const std::string target = sb_->pod("remote").ip6;
  service(d, 23, "2001:2:ffff::21", 80, target, kAppPort, 503, MESHLET_BACKEND_TUNNEL);
  apply(d);

  Dial r = dialFrom("client", AF_INET6, target, kAppPort);
  ASSERT_EQ(r.err, 0) << strerror(r.err);
  EXPECT_EQ(r.greeting, "outbound6") << "the connection did not reach [::1]:15001 in the pod";
  EXPECT_EQ(r.peer, "[" + target + "]:8080");
  auto accepted = client_v6_->from(r.local_port);
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->peer_ip, "::1");
  // Keyed by the loopback connection's family: not found as IPv4.
  EXPECT_FALSE(take("client", r.local_port, MESHLET_AF_INET));
  auto o = take("client", r.local_port, MESHLET_AF_INET6);
  ASSERT_TRUE(o) << "no tunnel origin for port " << r.local_port;
  EXPECT_EQ(o->path, MESHLET_PATH_TUNNEL);
  EXPECT_EQ(o->family, MESHLET_AF_INET6);
  expectAddr(o->orig_addr, o->family, target, "orig_addr");
  expectAddr(o->backend_addr, o->family, target, "backend_addr");
  EXPECT_EQ(o->orig_port, kAppPort);
  EXPECT_EQ(o->backend_port, kAppPort);
  EXPECT_EQ(o->svc_id, MESHLET_NO_ID);
  EXPECT_FALSE(take("client", r.local_port, MESHLET_AF_INET6));

  Dial s = dialFrom("client", AF_INET6, "2001:2:ffff::21", 80);
  ASSERT_EQ(s.err, 0) << strerror(s.err);
  EXPECT_EQ(s.greeting, "outbound6");
  EXPECT_EQ(s.peer, "[2001:2:ffff::21]:80");
  auto so = take("client", s.local_port, MESHLET_AF_INET6);
  ASSERT_TRUE(so);
  expectAddr(so->orig_addr, so->family, "2001:2:ffff::21", "orig_addr");
  EXPECT_EQ(so->orig_port, 80);
  expectAddr(so->backend_addr, so->family, target, "backend_addr");
  EXPECT_EQ(so->backend_port, kAppPort);
  EXPECT_EQ(so->svc_id, 23u);
  EXPECT_EQ(so->backend_id, 503u);
}

// A dual-stack socket dialling ::ffff:a.b.c.d talks IPv4: it goes to ::ffff:127.0.0.1, which
// the IPv4 listener takes, and its origin is keyed and recorded as IPv4.
TEST_F(TunnelPathTest, V4MappedConnectReachesTheIpv4Listener) {
  apply(base());
  const std::string target = sb_->pod("remote").ip4;
  Dial r = dialFrom("client", AF_INET6, target, kAppPort);
  ASSERT_EQ(r.err, 0) << strerror(r.err);
  EXPECT_EQ(r.greeting, "outbound");
  EXPECT_EQ(r.peer, "[::ffff:" + target + "]:8080");
  auto accepted = client_v4_->from(r.local_port);
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->peer_ip, "127.0.0.1");
  auto o = take("client", r.local_port, MESHLET_AF_INET);
  ASSERT_TRUE(o) << "no IPv4 tunnel origin for port " << r.local_port;
  EXPECT_EQ(o->path, MESHLET_PATH_TUNNEL);
  EXPECT_EQ(o->family, MESHLET_AF_INET);
  expectAddr(o->orig_addr, o->family, target, "orig_addr");
  expectAddr(o->backend_addr, o->family, target, "backend_addr");
  EXPECT_EQ(o->orig_port, kAppPort);
  EXPECT_FALSE(take("client", r.local_port, MESHLET_AF_INET6));
}

TEST_F(TunnelPathTest, AgentMarkedSocketInEnrolledPodIsNotRewritten) {
  DesiredDatapath d = base();
  const std::string target = sb_->pod("remote").ip4;
  service(d, 24, "198.19.1.12", 80, target, kAppPort, 504, MESHLET_BACKEND_TUNNEL);
  apply(d);
  const size_t accepted_before = client_v4_->accepted().size();

  // Straight to the remote pod: the real address answers.
  Dial r = dialFrom("client", AF_INET, target, kAppPort, MESHLET_AGENT_MARK);
  ASSERT_EQ(r.err, 0) << strerror(r.err);
  EXPECT_EQ(r.greeting, "remote");
  EXPECT_EQ(r.peer, target + ":8080");
  EXPECT_FALSE(take("client", r.local_port, MESHLET_AF_INET));

  // To the service address: not balanced, not tunnelled (nothing answers there).
  const uint64_t connects = dp_->svcCounters(24).connects;
  Dial s = dialFrom("client", AF_INET, "198.19.1.12", 80, MESHLET_AGENT_MARK, 300);
  EXPECT_NE(s.err, 0);
  EXPECT_NE(s.greeting, "outbound");
  EXPECT_EQ(dp_->svcCounters(24).connects, connects);
  EXPECT_FALSE(take("client", s.local_port, MESHLET_AF_INET));
  EXPECT_EQ(client_v4_->accepted().size(), accepted_before);

  // The same socket without the mark is tunnelled: the mark is what made the difference.
  Dial u = dialFrom("client", AF_INET, target, kAppPort);
  ASSERT_EQ(u.err, 0) << strerror(u.err);
  EXPECT_EQ(u.greeting, "outbound");
  EXPECT_TRUE(take("client", u.local_port, MESHLET_AF_INET));
}

TEST_F(TunnelPathTest, NonEnrolledPodIsNotRewritten) {
  DesiredDatapath d = base();
  const std::string target = sb_->pod("remote").ip4;
  service(d, 25, "198.19.1.13", 80, target, kAppPort, 505, MESHLET_BACKEND_TUNNEL);
  apply(d);

  Dial r = dialFrom("outsider", AF_INET, target, kAppPort);
  ASSERT_EQ(r.err, 0) << strerror(r.err);
  EXPECT_EQ(r.greeting, "remote");
  EXPECT_EQ(r.peer, target + ":8080");
  EXPECT_FALSE(take("outsider", r.local_port, MESHLET_AF_INET));

  const uint64_t connects = dp_->svcCounters(25).connects;
  Dial s = dialFrom("outsider", AF_INET, "198.19.1.13", 80, 0, 300);
  EXPECT_NE(s.err, 0);
  EXPECT_EQ(dp_->svcCounters(25).connects, connects);
  EXPECT_FALSE(take("outsider", s.local_port, MESHLET_AF_INET));
  EXPECT_TRUE(outsider_v4_->accepted().empty()) << "the outsider's loopback listener was dialled";
}

// Only TCP connects take the tunnel: UDP to a remote mesh pod goes straight to it.
TEST_F(TunnelPathTest, UdpToRemoteMeshPodIsNotTunnelled) {
  apply(base());
  const std::string target = sb_->pod("remote").ip4;
  std::string got = sb_->runInPod(sb_->pod("client"), [target] {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{2, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(5353);
    inet_pton(AF_INET, target.c_str(), &a.sin_addr);
    if (sendto(s, "ping", 4, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 4) {
      close(s);
      return std::string("sendto failed");
    }
    char buf[256];
    ssize_t n = recv(s, buf, sizeof(buf), 0);
    close(s);
    return n > 0 ? std::string(buf, n) : std::string("no reply");
  });
  EXPECT_EQ(got, "remote:ping");
}

}  // namespace
}  // namespace meshlet
