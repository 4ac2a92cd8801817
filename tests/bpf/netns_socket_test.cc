// Sockets made in a pod's network namespace from the agent's own (the in-pod listeners of
// HBONE): a listener on the pod's loopback takes the pod's connections and nobody else's.
#include "agent/proxy/netns_socket.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "meshlet/maps.h"
#include "tests/lib/sandbox.h"

namespace meshlet {
namespace {

using testing::Sandbox;

// Accepts one connection on a non-blocking listener (waiting up to 3 s), sends `greeting`.
std::thread acceptOnce(int lfd, const std::string& greeting) {
  return std::thread([lfd, greeting] {
    pollfd p{lfd, POLLIN, 0};
    if (poll(&p, 1, 3000) != 1) return;
    int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    (void)!write(c, greeting.data(), greeting.size());
    close(c);
  });
}

TEST(NetnsSocket, ListenerOnThePodsLoopbackServesThePodOnly) {
  std::string reason = testing::kernelTestsUnavailable();
  if (!reason.empty()) GTEST_SKIP() << "kernel tests cannot run here: " << reason;
  Sandbox sb;
  const auto& pod = sb.addPod("p");
  auto lfd = proxy::listenInNetns(pod.netns_path, *IpAddr::parse("127.0.0.1"), 15001);
  ASSERT_TRUE(lfd.ok()) << lfd.error().message();
  auto v6 = proxy::listenInNetns(pod.netns_path, *IpAddr::parse("::1"), 15001);
  ASSERT_TRUE(v6.ok()) << v6.error().message();

  // From inside the pod: answered by our listener.
  std::thread t = acceptOnce(*lfd, "agent-in-pod");
  auto r = testing::decode(
      sb.runInPod(pod, [] { return testing::encode(testing::tcpConnect("127.0.0.1", 15001)); }));
  t.join();
  EXPECT_EQ(r.err, 0);
  EXPECT_EQ(r.greeting, "agent-in-pod");
  std::thread t6 = acceptOnce(*v6, "agent-in-pod-v6");
  auto r6 = testing::decode(
      sb.runInPod(pod, [] { return testing::encode(testing::tcpConnect("::1", 15001)); }));
  t6.join();
  EXPECT_EQ(r6.greeting, "agent-in-pod-v6");

  // From the test's own namespace: 127.0.0.1:15001 is somebody else's loopback (nothing there,
  // unless this machine happens to run something on that port).
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(15001);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  pollfd p{*lfd, POLLIN, 0};
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    EXPECT_EQ(poll(&p, 1, 200), 0) << "a host-side connection reached the pod's listener";
  }
  close(s);
  close(*lfd);
  close(*v6);
}

// The agent's in-pod sockets carry the mark the datapath leaves alone, and TCP_NODELAY (else a
// small HBONE frame waits ~40 ms behind an unacknowledged one); accepted sockets inherit it.
TEST(NetnsSocket, SocketsCarryTheAgentMarkAndNoDelay) {
  std::string reason = testing::kernelTestsUnavailable();
  if (!reason.empty()) GTEST_SKIP() << "kernel tests cannot run here: " << reason;
  Sandbox sb;
  const auto& pod = sb.addPod("p");
  auto fd = proxy::tcpSocketInNetns(pod.netns_path, AF_INET);
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  auto opt = [](int s, int level, int name) {
    int v = -1;
    socklen_t len = sizeof(v);
    getsockopt(s, level, name, &v, &len);
    return v;
  };
  EXPECT_EQ(opt(*fd, SOL_SOCKET, SO_MARK), MESHLET_AGENT_MARK);
  EXPECT_EQ(opt(*fd, IPPROTO_TCP, TCP_NODELAY), 1);
  close(*fd);

  auto lfd = proxy::listenInNetns(pod.netns_path, *IpAddr::parse("127.0.0.1"), 15001);
  ASSERT_TRUE(lfd.ok()) << lfd.error().message();
  auto c = proxy::connectInNetns(pod.netns_path, *IpAddr::parse("127.0.0.1"), 15001);
  ASSERT_TRUE(c.ok()) << c.error().message();
  pollfd p{*lfd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 3000), 1);
  int accepted = accept4(*lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0);
  EXPECT_EQ(opt(accepted, IPPROTO_TCP, TCP_NODELAY), 1);
  close(accepted);
  close(*c);
  close(*lfd);
}

TEST(NetnsSocket, MissingNamespaceIsAClearError) {
  auto fd = proxy::tcpSocketInNetns("/var/run/netns/meshlet-test-no-such-netns", AF_INET);
  ASSERT_FALSE(fd.ok());
  EXPECT_NE(fd.error().message().find("/var/run/netns/meshlet-test-no-such-netns"),
            std::string::npos);
}

}  // namespace
}  // namespace meshlet
