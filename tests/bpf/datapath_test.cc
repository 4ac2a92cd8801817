// Kernel tests: the real programs attached to a scratch cgroup, real sockets in real network
// namespaces. Each test writes the maps it needs through Datapath::apply.
#include "agent/datapath/datapath.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/proxy/netns_socket.h"
#include "agent/translate/translate.h"
#include "tests/lib/sandbox.h"

namespace meshlet {
namespace {

using testing::ConnectResult;
using testing::Sandbox;
using testing::TestPod;

meshlet_ip_key ipKey(const std::string& ip) {
  auto a = IpAddr::parse(ip);
  meshlet_ip_key k{};
  auto w = a->words();
  std::memcpy(k.addr, w.data(), 16);
  k.family = a->isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6;
  return k;
}

struct BackendSpec {
  std::string ip;
  int port;
  bool local = true;
};

// Builds desired map contents by hand: these tests pin down the kernel's half of the contract.
struct Desired {
  DesiredDatapath d;
  uint32_t next_backend = 100;

  void enroll(const TestPod& p, uint32_t pod_id) {
    auto cookie = netnsCookie(p.netns_path);
    ASSERT_TRUE(cookie.ok()) << cookie.error().message();
    d.pods[*cookie] = {pod_id, affinityHashForTest(p.ip4)};
    d.local_ips[ipKey(p.ip4)] = {pod_id, 0};
    d.local_ips[ipKey(p.ip6)] = {pod_id, 0};
  }
  static uint32_t affinityHashForTest(const std::string& ip) {
    uint32_t h = 2166136261u;
    for (char c : ip) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    return h;
  }
  void service(uint32_t svc_id, const std::string& vip, int port, uint8_t proto, uint8_t algo,
               uint8_t flags, const std::vector<BackendSpec>& backends) {
    auto a = IpAddr::parse(vip);
    meshlet_svc_key k{};
    auto w = a->words();
    std::memcpy(k.addr, w.data(), 16);
    k.port = port;
    k.proto = proto;
    k.family = a->isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6;
    meshlet_svc_value v{};
    v.svc_id = svc_id;
    v.lb_algo = algo;
    v.flags = flags;
    std::vector<BackendSpec> ordered;
    for (const auto& b : backends) if (b.local) ordered.push_back(b);
    v.local_count = ordered.size();
    for (const auto& b : backends) if (!b.local) ordered.push_back(b);
    v.count = ordered.size();
    d.services[k] = v;
    BackendEntries entries = d.backends();
    for (uint32_t slot = 0; slot < ordered.size(); ++slot) {
      auto ba = IpAddr::parse(ordered[slot].ip);
      meshlet_backend_value bv{};
      auto bw = ba->words();
      std::memcpy(bv.addr, bw.data(), 16);
      bv.port = ordered[slot].port;
      bv.family = ba->isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6;
      bv.flags = ordered[slot].local ? MESHLET_BACKEND_LOCAL : 0;
      bv.backend_id = next_backend++;
      entries[{svc_id, slot}] = bv;
    }
    d.setBackends(entries);
    if (algo == MESHLET_LB_MAGLEV) {
      for (uint32_t bucket = 0; bucket < MESHLET_MAGLEV_SIZE; ++bucket) {
        d.maglev[{svc_id, bucket}] = ordered.empty() ? 0 : bucket % ordered.size();
      }
    }
  }
};

class DatapathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reason_ = testing::kernelTestsUnavailable();
    if (!reason_.empty()) return;
    sb_ = new Sandbox();
    sb_->addPod("client");
    sb_->addPod("b1");
    sb_->addPod("b2");
    sb_->addPod("outsider");  // not enrolled
    sb_->addPod("b3");
    for (const char* name : {"b1", "b2", "b3"}) {
      std::string n = name;
      sb_->spawnInPod(sb_->pod(n), [n]() { return testing::serveTcp(AF_INET6, 8080, n); });
      sb_->spawnInPod(sb_->pod(n), [n]() { return testing::serveUdp(AF_INET6, 5353, n + ":"); });
    }
    DatapathOptions opts;
    opts.bpffs_dir = sb_->bpffs();
    opts.cgroup_path = sb_->cgroup();
    auto dp = Datapath::open(opts);
    if (!dp.ok()) {
      open_error_ = dp.error().message();
      return;
    }
    dp_ = dp->release();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // servers listening
  }
  static void TearDownTestSuite() {
    delete dp_;
    dp_ = nullptr;
    delete sb_;
    sb_ = nullptr;
  }
  void SetUp() override {
    if (!reason_.empty()) GTEST_SKIP() << "kernel tests cannot run here: " << reason_;
    ASSERT_TRUE(dp_) << open_error_;
  }
  void apply(Desired& d) {
    auto st = dp_->apply(d.d);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  Desired base() {
    Desired d;
    d.enroll(sb_->pod("client"), 1);
    d.enroll(sb_->pod("b1"), 2);
    d.enroll(sb_->pod("b2"), 3);
    d.enroll(sb_->pod("b3"), 4);
    return d;
  }
  ConnectResult connectFrom(const std::string& pod, const std::string& ip, int port,
                            int timeout_ms = 2000) {
    return testing::decode(sb_->runInPod(sb_->pod(pod), [&]() {
      return testing::encode(testing::tcpConnect(ip, port, timeout_ms));
    }));
  }

  static inline Sandbox* sb_ = nullptr;
  static inline Datapath* dp_ = nullptr;
  static inline std::string reason_;
  static inline std::string open_error_;
};

TEST_F(DatapathTest, ConnectRewritesServiceAddressAndGetpeernameShowsIt) {
  Desired d = base();
  d.service(1, "198.19.0.10", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b1").ip4, 8080}});
  apply(d);
  auto r = connectFrom("client", "198.19.0.10", 80);
  ASSERT_EQ(r.err, 0) << strerror(r.err);
  EXPECT_EQ(r.greeting, "b1");
  EXPECT_EQ(r.peer, "198.19.0.10:80");  // not the backend 198.18.0.3:8080
  EXPECT_GE(dp_->svcCounters(1).connects, 1u);
}

TEST_F(DatapathTest, RandomBalancingUsesEveryReadyBackend) {
  Desired d = base();
  d.service(2, "198.19.0.11", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b1").ip4, 8080}, {sb_->pod("b2").ip4, 8080}});
  apply(d);
  std::map<std::string, int> hits;
  std::string out = sb_->runInPod(sb_->pod("client"), []() {
    std::string s;
    for (int i = 0; i < 100; ++i) s += testing::tcpConnect("198.19.0.11", 80).greeting + ",";
    return s;
  });
  for (size_t pos = 0; pos < out.size();) {
    size_t c = out.find(',', pos);
    hits[out.substr(pos, c - pos)]++;
    pos = c + 1;
  }
  EXPECT_EQ(hits["b1"] + hits["b2"], 100) << out;
  EXPECT_GE(hits["b1"], 25);
  EXPECT_GE(hits["b2"], 25);
}

TEST_F(DatapathTest, RoundRobinCyclesThroughBackends) {
  Desired d = base();
  d.service(3, "198.19.0.12", 80, IPPROTO_TCP, MESHLET_LB_ROUND_ROBIN, 0,
            {{sb_->pod("b1").ip4, 8080}, {sb_->pod("b2").ip4, 8080}, {sb_->pod("b3").ip4, 8080}});
  apply(d);
  std::string out = sb_->runInPod(sb_->pod("client"), []() {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);  // the position is per CPU: stay on one
    sched_setaffinity(0, sizeof(set), &set);
    std::string s;
    for (int i = 0; i < 6; ++i) s += testing::tcpConnect("198.19.0.12", 80).greeting;
    return s;
  });
  ASSERT_EQ(out.size(), 12u) << out;
  // Whatever the start, six picks cycle b1 b2 b3 twice in slot order.
  EXPECT_EQ(out.substr(0, 6), out.substr(6, 6)) << out;
  EXPECT_NE(out.substr(0, 2), out.substr(2, 2)) << out;
  EXPECT_NE(out.substr(2, 2), out.substr(4, 2)) << out;
  EXPECT_NE(out.substr(0, 2), out.substr(4, 2)) << out;
}

TEST_F(DatapathTest, ClientIpAffinityAlwaysPicksTheSameBackend) {
  Desired d = base();
  d.service(4, "198.19.0.13", 80, IPPROTO_TCP, MESHLET_LB_MAGLEV, 0,
            {{sb_->pod("b1").ip4, 8080}, {sb_->pod("b2").ip4, 8080}, {sb_->pod("b3").ip4, 8080}});
  apply(d);
  std::string out = sb_->runInPod(sb_->pod("client"), []() {
    std::string s;
    for (int i = 0; i < 20; ++i) s += testing::tcpConnect("198.19.0.13", 80).greeting;
    return s;
  });
  ASSERT_EQ(out.size(), 40u) << out;
  for (int i = 1; i < 20; ++i) EXPECT_EQ(out.substr(i * 2, 2), out.substr(0, 2)) << out;
  // The bucket is the client's affinity hash modulo the table size; our table maps bucket
  // to slot bucket % 3, so the expected backend is known.
  uint32_t bucket = Desired::affinityHashForTest(sb_->pod("client").ip4) % MESHLET_MAGLEV_SIZE;
  const char* by_slot[] = {"b1", "b2", "b3"};
  EXPECT_EQ(out.substr(0, 2), by_slot[bucket % 3]);
}

TEST_F(DatapathTest, PreferCloseUsesLocalBackendsAndFallsBack) {
  Desired d = base();
  d.service(5, "198.19.0.14", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, MESHLET_SVC_PREFER_CLOSE,
            {{sb_->pod("b1").ip4, 8080, false}, {sb_->pod("b2").ip4, 8080, true}});
  apply(d);
  std::string out = sb_->runInPod(sb_->pod("client"), []() {
    std::string s;
    for (int i = 0; i < 30; ++i) s += testing::tcpConnect("198.19.0.14", 80).greeting;
    return s;
  });
  std::string expected;
  for (int i = 0; i < 30; ++i) expected += "b2";
  EXPECT_EQ(out, expected);
  // No local backend ready: the remote ones take the traffic.
  Desired d2 = base();
  d2.service(5, "198.19.0.14", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, MESHLET_SVC_PREFER_CLOSE,
             {{sb_->pod("b1").ip4, 8080, false}});
  apply(d2);
  EXPECT_EQ(connectFrom("client", "198.19.0.14", 80).greeting, "b1");
}

TEST_F(DatapathTest, ServiceWithoutReadyBackendRefusesAtOnce) {
  Desired d = base();
  d.service(6, "198.19.0.15", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, 0, {});
  apply(d);
  auto r = connectFrom("client", "198.19.0.15", 80);
  EXPECT_EQ(r.err, ECONNREFUSED) << strerror(r.err);
  EXPECT_LT(r.connect_ms, 100.0);
  EXPECT_GE(dp_->svcCounters(6).no_backend, 1u);
}

TEST_F(DatapathTest, FailedConnectToBackendIsCounted) {
  Desired d = base();
  d.service(7, "198.19.0.16", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b1").ip4, 9999}});  // nothing listens on 9999
  apply(d);
  auto before = dp_->svcCounters(7).failed_connects;
  auto r = connectFrom("client", "198.19.0.16", 80);
  EXPECT_EQ(r.err, ECONNREFUSED);
  EXPECT_EQ(dp_->svcCounters(7).failed_connects, before + 1);
  auto conns = dp_->readConns();
  ASSERT_TRUE(conns.ok());
  bool seen = false;
  for (const auto& c : *conns) {
    if (c.value.svc_id == 7 && (c.value.flags & MESHLET_CONN_FAILED)) seen = true;
  }
  EXPECT_TRUE(seen);
}

// More records than one batch of readConns: every one read once, and eraseConns removes them.
TEST_F(DatapathTest, ConnectionRecordsAreReadAndErasedInBatches) {
  Desired d = base();
  d.service(9, "198.19.0.17", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b1").ip4, 9999}});  // refused at once: a closed record each
  apply(d);
  constexpr int kConnects = 1500;
  std::string refused = sb_->runInPod(sb_->pod("client"), [] {
    int n = 0;
    for (int i = 0; i < kConnects; ++i) {
      if (testing::tcpConnect("198.19.0.17", 80, 2000).err == ECONNREFUSED) ++n;
    }
    return std::to_string(n);
  });
  ASSERT_EQ(refused, std::to_string(kConnects));
  auto conns = dp_->readConns();
  ASSERT_TRUE(conns.ok()) << conns.error().message();
  std::set<std::string> keys;
  std::vector<meshlet_sock_key> mine;
  for (const auto& c : *conns) {
    std::string k(reinterpret_cast<const char*>(&c.key), sizeof(c.key));
    EXPECT_TRUE(keys.insert(k).second) << "a record read twice";
    if (c.value.svc_id == 9) mine.push_back(c.key);
  }
  // Source ports are picked at random, so a few connects may share a 4-tuple (one record).
  EXPECT_GT(mine.size(), 1300u);
  dp_->eraseConns(mine);
  auto after = dp_->readConns();
  ASSERT_TRUE(after.ok());
  for (const auto& c : *after) EXPECT_NE(c.value.svc_id, 9u);
}

TEST_F(DatapathTest, Ipv6ServiceIsRewritten) {
  Desired d = base();
  d.service(8, "2001:2:ffff::10", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b2").ip6, 8080}});
  apply(d);
  auto r = connectFrom("client", "2001:2:ffff::10", 80);
  ASSERT_EQ(r.err, 0) << strerror(r.err);
  EXPECT_EQ(r.greeting, "b2");
  EXPECT_EQ(r.peer, "[2001:2:ffff::10]:80");
}

std::string udpExchange(const std::string& ip, int port, bool connected) {
  sockaddr_storage ss{};
  socklen_t len;
  if (ip.find(':') == std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    len = sizeof(*a);
  }
  int s = socket(ss.ss_family, SOCK_DGRAM, 0);
  timeval tv{2, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connected) {
    if (connect(s, reinterpret_cast<sockaddr*>(&ss), len) != 0) return "connect failed";
    if (send(s, "ping", 4, 0) != 4) return "send failed";
  } else if (sendto(s, "ping", 4, 0, reinterpret_cast<sockaddr*>(&ss), len) != 4) {
    return "sendto failed";
  }
  char buf[256];
  sockaddr_storage from{};
  socklen_t fl = sizeof(from);
  ssize_t n = recvfrom(s, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fl);
  close(s);
  if (n < 0) return "no reply";
  char a[INET6_ADDRSTRLEN] = {};
  int p = 0;
  if (from.ss_family == AF_INET) {
    auto* f = reinterpret_cast<sockaddr_in*>(&from);
    inet_ntop(AF_INET, &f->sin_addr, a, sizeof(a));
    p = ntohs(f->sin_port);
  } else {
    auto* f = reinterpret_cast<sockaddr_in6*>(&from);
    inet_ntop(AF_INET6, &f->sin6_addr, a, sizeof(a));
    p = ntohs(f->sin6_port);
  }
  return std::string(buf, n) + " from " + a + ":" + std::to_string(p);
}

TEST_F(DatapathTest, UdpServiceRewritesAndRepliesComeFromTheServiceAddress) {
  Desired d = base();
  d.service(9, "198.19.0.53", 53, IPPROTO_UDP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b3").ip4, 5353}});
  d.service(10, "2001:2:ffff::53", 53, IPPROTO_UDP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b3").ip6, 5353}});
  apply(d);
  auto client = sb_->pod("client");
  EXPECT_EQ(sb_->runInPod(client, [] { return udpExchange("198.19.0.53", 53, false); }),
            "b3:ping from 198.19.0.53:53");
  EXPECT_EQ(sb_->runInPod(client, [] { return udpExchange("198.19.0.53", 53, true); }),
            "b3:ping from 198.19.0.53:53");
  EXPECT_EQ(sb_->runInPod(client, [] { return udpExchange("2001:2:ffff::53", 53, false); }),
            "b3:ping from 2001:2:ffff::53:53");
  EXPECT_GE(dp_->svcCounters(9).udp_msgs, 1u);
}

TEST_F(DatapathTest, NonEnrolledPodIsUntouched) {
  Desired d = base();
  d.service(11, "198.19.0.17", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b1").ip4, 8080}});
  apply(d);
  auto before = dp_->svcCounters(11).connects;
  // The outsider's connect to the service address is not rewritten: nothing answers there.
  auto r = connectFrom("outsider", "198.19.0.17", 80, 300);
  EXPECT_NE(r.err, 0);
  EXPECT_EQ(dp_->svcCounters(11).connects, before);
  // Its direct connection to a pod works and is not spliced (one side is outside the mesh).
  auto direct = connectFrom("outsider", sb_->pod("b1").ip4, 8080);
  ASSERT_EQ(direct.err, 0);
  EXPECT_EQ(direct.peer, sb_->pod("b1").ip4 + ":8080");
  auto conns = dp_->readConns();
  ASSERT_TRUE(conns.ok());
  for (const auto& c : *conns) {
    auto remote = IpAddr::fromWords(c.key.remote, c.key.family);
    if (remote.toString() == sb_->pod("outsider").ip4) {
      EXPECT_EQ(c.value.path, MESHLET_PATH_PASSTHROUGH);
      EXPECT_FALSE(c.value.flags & MESHLET_CONN_SPLICED);
    }
  }
}

// A long echo through a service between two enrolled pods: the bytes go through sk_msg.
TEST_F(DatapathTest, SameNodeEnrolledPairIsSplicedAndStreamIsIntact) {
  Desired d = base();
  d.service(12, "198.19.0.18", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b2").ip4, 8080}});
  apply(d);
  auto spliced_before = dp_->globalCounters()[MESHLET_G_SPLICED];
  std::string out = sb_->runInPod(sb_->pod("client"), []() -> std::string {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    inet_pton(AF_INET, "198.19.0.18", &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return "connect failed";
    char greet[2];
    if (read(s, greet, 2) != 2) return "no greeting";
    const size_t total = 4 << 20;
    std::string sent(total, 0), got;
    for (size_t i = 0; i < total; ++i) sent[i] = static_cast<char>((i * 131) ^ (i >> 9));
    std::thread writer([&] {
      size_t off = 0;
      while (off < total) {
        ssize_t n = write(s, sent.data() + off, std::min<size_t>(65536, total - off));
        if (n <= 0) break;
        off += n;
      }
    });
    char buf[65536];
    while (got.size() < total) {
      ssize_t n = read(s, buf, sizeof(buf));
      if (n <= 0) break;
      got.append(buf, n);
    }
    writer.join();
    sockaddr_in local{};
    socklen_t ll = sizeof(local);
    getsockname(s, reinterpret_cast<sockaddr*>(&local), &ll);
    std::string verdict = got == sent ? "intact" : "corrupt " + std::to_string(got.size());
    // Report the local port so the test can find the connection while it is still open.
    std::string res = verdict + " " + std::to_string(ntohs(local.sin_port));
    close(s);
    return res;
  });
  ASSERT_EQ(out.substr(0, 6), "intact") << out;
  int lport = std::atoi(out.substr(7).c_str());
  EXPECT_EQ(dp_->globalCounters()[MESHLET_G_SPLICED], spliced_before + 1);
  auto conns = dp_->readConns();
  ASSERT_TRUE(conns.ok());
  bool client_side = false;
  for (const auto& c : *conns) {
    if (c.key.lport != lport) continue;
    client_side = true;
    EXPECT_EQ(c.value.path, MESHLET_PATH_SPLICED);
    EXPECT_EQ(c.value.svc_id, 12u);
    EXPECT_GE(c.value.spliced_bytes, (4u << 20) - 65536) << "bytes did not go through sk_msg";
    EXPECT_GE(c.value.bytes_received, 4u << 20);
  }
  EXPECT_TRUE(client_side) << "no connection entry for local port " << lport;
}

// The agent dials from a pod's netns (the L7 path's upstream connections): the accepting pod is
// enrolled and so is the source address, but the connecting socket never joined the splice, so
// the accepting one must not either: in the sockhash it would run sk_msg on every send with no
// peer to redirect to (and be listed as spliced with no bytes counted).
TEST_F(DatapathTest, AcceptedSocketStaysOnTcpWhenTheConnectingSideIsNotSpliced) {
  Desired d = base();
  apply(d);
  auto fd = proxy::connectInNetns(sb_->pod("client").netns_path, *IpAddr::parse(sb_->pod("b2").ip4),
                                  8080);
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  pollfd p{*fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 3000), 1);
  char greet[8];
  ASSERT_EQ(read(*fd, greet, sizeof greet), 2) << "no greeting from b2";
  ASSERT_EQ(write(*fd, "ping", 4), 4);
  ASSERT_EQ(poll(&p, 1, 3000), 1);
  ASSERT_EQ(read(*fd, greet, sizeof greet), 4) << "no echo from b2";
  sockaddr_in local{};
  socklen_t ll = sizeof(local);
  getsockname(*fd, reinterpret_cast<sockaddr*>(&local), &ll);
  auto conns = dp_->readConns();
  close(*fd);
  ASSERT_TRUE(conns.ok());
  bool server_side = false;
  for (const auto& c : *conns) {
    if (c.key.lport != 8080 || c.key.rport != ntohs(local.sin_port)) continue;
    server_side = true;
    EXPECT_EQ(c.value.path, MESHLET_PATH_PASSTHROUGH);
    EXPECT_FALSE(c.value.flags & MESHLET_CONN_SPLICED);
    EXPECT_EQ(c.value.peer_pod_id, 1u) << "the source address is the client pod's";
  }
  EXPECT_TRUE(server_side) << "b2's side of the connection is not tracked";
}

}  // namespace
}  // namespace meshlet

namespace meshlet {
namespace {

TEST_F(DatapathTest, ConfigurationLargerThanAMapIsRefusedWholeAndNothingChanges) {
  Desired d = base();
  d.service(13, "198.19.0.19", 80, IPPROTO_TCP, MESHLET_LB_RANDOM, 0,
            {{sb_->pod("b1").ip4, 8080}});
  apply(d);
  Desired big = base();
  for (uint32_t i = 0; i < MESHLET_MAX_SERVICES + 1; ++i) {
    meshlet_svc_key k{};
    k.addr[0] = htonl(0xc6130000u + i);  // 198.19.x.y
    k.port = 8000;
    k.proto = IPPROTO_TCP;
    k.family = MESHLET_AF_INET;
    big.d.services[k] = meshlet_svc_value{i, 0, 0, 0, 0, 0};
  }
  auto st = dp_->apply(big.d);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("meshlet_svc_v1 is full"), std::string::npos)
      << st.error().message();
  EXPECT_NE(st.error().message().find("nothing was applied"), std::string::npos);
  EXPECT_EQ(connectFrom("client", "198.19.0.19", 80).greeting, "b1");
}

}  // namespace
}  // namespace meshlet
