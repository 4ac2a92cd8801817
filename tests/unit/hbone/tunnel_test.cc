// The whole userspace path of a cross-node connection, on loopback: an app connects to the
// outbound listener, its bytes go over an HBONE link (mTLS + HTTP/2 CONNECT) to the inbound
// side, which connects to the destination named by the CONNECT authority and relays. Real
// sockets, a real echo server, 8 MiB each way, half-close and a slow reader.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <thread>

#include "agent/hbone/link.h"
#include "agent/hbone/relay.h"
#include "tests/unit/support/temp_dir.h"

namespace meshlet::hbone {
namespace {

using meshlet::testing::TempDir;

const int64_t kNow = static_cast<int64_t>(time(nullptr));

int listenOn(int* port, bool nonblock) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 16) != 0) return -1;
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

int connectTo(int port, bool nonblock) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  if (rc != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

// A link plus the relays of its streams.
struct Side {
  std::unique_ptr<Link> link;
  std::map<int32_t, std::unique_ptr<Relay>> relays;
  std::vector<int32_t> full;  // relays waiting for the link's progress
  size_t pauses = 0;
  std::string closed_why;

  std::map<int32_t, int> status;  // CONNECT answers seen (client side)

  Events events() {
    Events ev;
    ev.on_response = [this](int32_t id, int code) { status[id] = code; };
    ev.on_data = [this](int32_t id, std::string_view d) {
      if (auto it = relays.find(id); it != relays.end()) it->second->onData(d);
    };
    ev.on_end = [this](int32_t id) {
      if (auto it = relays.find(id); it != relays.end()) it->second->onEnd();
    };
    ev.on_close = [this](int32_t id, uint32_t code) {
      if (auto it = relays.find(id); it != relays.end()) it->second->onClose(code);
    };
    return ev;
  }
  void attach(proxy::EventLoop& loop, int fd, int32_t id, bool connecting = false) {
    auto r = std::make_unique<Relay>(loop, fd, *link, id);
    ASSERT_TRUE(r->start(connecting).ok());
    r->on_done = [this, &loop, id] { loop.defer([this, id] { relays.erase(id); }); };
    r->on_full = [this, id] {
      full.push_back(id);
      ++pauses;
    };
    relays[id] = std::move(r);
  }
  // As the agent does: only relays that said their queue is full hear of the link's progress.
  void wire() {
    link->on_progress = [this] {
      std::vector<int32_t> waiting;
      waiting.swap(full);
      for (int32_t id : waiting) {
        if (auto it = relays.find(id); it != relays.end()) it->second->onLinkProgress();
      }
    };
    link->on_closed = [this](const std::string& why) { closed_why = why; };
  }
};

struct Fixture {
  TempDir dir{"meshlet-tunnel"};
  std::unique_ptr<tls::CertificateAuthority> ca;
  std::unique_ptr<proxy::EventLoop> loop;
  Side inbound, outbound;
  int hbone_lfd = -1, app_lfd = -1, hbone_port = 0, app_port = 0;
  std::string seen_peer;
  Limits limits;  // both links'

  Fixture() {
    tls::CaInitOptions o;
    o.dir = dir.path();
    EXPECT_TRUE(tls::initCa(o, kNow).ok());
    auto c = tls::CertificateAuthority::load(dir.path(), "cluster.local");
    ca = std::make_unique<tls::CertificateAuthority>(std::move(*c));
    loop = std::move(*proxy::EventLoop::make());
    hbone_lfd = listenOn(&hbone_port, true);
    app_lfd = listenOn(&app_port, true);
  }
  ~Fixture() {
    inbound.relays.clear();
    outbound.relays.clear();
    inbound.link.reset();
    outbound.link.reset();
    close(hbone_lfd);
    close(app_lfd);
  }
  std::shared_ptr<const tls::MtlsContext> ctx(const std::string& sa, tls::MtlsRole role) {
    auto s = ca->issue(tls::spiffeId("cluster.local", "shop", sa), 3600, kNow);
    return *tls::MtlsContext::make(*s, ca->trustBundlePem(), "cluster.local", role);
  }

  // Inbound (the destination node): CONNECT authority 127.0.0.1:PORT → connect and relay.
  void serveInbound() {
    auto sctx = ctx("web", tls::MtlsRole::kServer);
    ASSERT_TRUE(loop->add(hbone_lfd, EPOLLIN,
                          [this, sctx](uint32_t) {
                            int fd =
                                accept4(hbone_lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                            if (fd < 0) return;
                            Events ev = inbound.events();
                            // Answered once the upstream connect finished: 200, or 502 when it
                            // failed (the app then sees its connection reset, not accepted-then-
                            // dropped).
                            ev.on_request = [this](int32_t id, const ConnectRequest& r) {
                              seen_peer = inbound.link->peerId();
                              int port = std::stoi(r.authority.substr(r.authority.rfind(':') + 1));
                              int up = connectTo(port, true);
                              if (up < 0) return 503;
                              inbound.attach(*loop, up, id, /*connecting=*/true);
                              inbound.relays[id]->on_connected = [this, id](int err) {
                                ASSERT_TRUE(inbound.link->h2().respond(id, err ? 502 : 200).ok());
                              };
                              return kPending;
                            };
                            inbound.link = std::move(*Link::make(*loop, fd, sctx, "", ev, limits));
                            inbound.wire();
                          })
                    .ok());
  }

  // Outbound (the source node): each app connection becomes a stream to `target_port`.
  void serveOutbound(int target_port) {
    ASSERT_TRUE(
        loop->add(app_lfd, EPOLLIN,
                  [this, target_port](uint32_t) {
                    int fd = accept4(app_lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                    if (fd < 0) return;
                    if (!outbound.link) {
                      outbound.link = std::move(*Link::make(
                          *loop, connectTo(hbone_port, true), ctx("client", tls::MtlsRole::kClient),
                          tls::spiffeId("cluster.local", "shop", "web"), outbound.events(),
                          limits));
                      outbound.wire();
                    }
                    auto id =
                        outbound.link->h2().connect("127.0.0.1:" + std::to_string(target_port));
                    ASSERT_TRUE(id.ok());
                    outbound.attach(*loop, fd, *id);
                    outbound.link->flush();
                  })
            .ok());
  }

  void runUntil(const std::atomic<bool>& done, int ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done && std::chrono::steady_clock::now() < deadline)
      ASSERT_TRUE(loop->runOnce(20).ok());
  }
};

// An echo server on its own thread, for one connection; `delay_ms` between reads makes it slow.
std::thread echoServer(int lfd, int delay_ms) {
  return std::thread([lfd, delay_ms] {
    int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) return;
    char buf[32768];
    while (true) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      if (delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      for (ssize_t off = 0; off < n;) {
        ssize_t w = send(fd, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) break;
        off += w;
      }
    }
    shutdown(fd, SHUT_WR);
    close(fd);
  });
}

// The app: sends `data`, half-closes, reads until the end; `ok` when the echo matched.
std::thread app(int port, const std::string& data, std::atomic<bool>& finished, bool& ok) {
  return std::thread([port, &data, &finished, &ok] {
    int fd = connectTo(port, false);
    std::thread writer([fd, &data] {
      for (size_t off = 0; off < data.size();) {
        ssize_t w =
            send(fd, data.data() + off, std::min<size_t>(65536, data.size() - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += static_cast<size_t>(w);
      }
      shutdown(fd, SHUT_WR);
    });
    std::string got;
    char buf[65536];
    while (true) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    writer.join();
    close(fd);
    ok = got == data;
    finished = true;
  });
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131) ^ (i >> 9));
  return s;
}

TEST(HboneTunnel, AppBytesCrossTheTunnelIntactBothWays) {
  Fixture f;
  int echo_port = 0;
  int echo_lfd = listenOn(&echo_port, false);
  std::thread echo = echoServer(echo_lfd, 0);
  f.serveInbound();
  f.serveOutbound(echo_port);
  std::string data = pattern(8 << 20);
  std::atomic<bool> finished{false};
  bool ok = false;
  std::thread a = app(f.app_port, data, finished, ok);
  f.runUntil(finished, 20000);
  a.join();
  echo.join();
  close(echo_lfd);
  EXPECT_TRUE(ok) << "inbound: " << f.inbound.closed_why << " outbound: " << f.outbound.closed_why;
  EXPECT_EQ(f.seen_peer, "spiffe://cluster.local/ns/shop/sa/client");
  // Every relay finished and went away; the pooled link stays up for the next connection.
  for (int i = 0; i < 50 && !(f.inbound.relays.empty() && f.outbound.relays.empty()); ++i)
    ASSERT_TRUE(f.loop->runOnce(20).ok());
  EXPECT_TRUE(f.inbound.relays.empty());
  EXPECT_TRUE(f.outbound.relays.empty());
  EXPECT_FALSE(f.outbound.link->closed());
}

// A destination that reads slowly: nothing piles up in the agents — the queues stay within the
// windows and high-water marks, and the bytes still arrive intact.
TEST(HboneTunnel, SlowDestinationBacksUpToTheAppNotIntoTheAgent) {
  Fixture f;
  // Small enough that the slow reader holds the whole path back, whatever the kernel's socket
  // buffers would otherwise absorb: a 64 KiB stream window, a 64 KiB receive buffer at the echo.
  f.limits.stream_window = 64 * 1024;
  int echo_port = 0;
  int echo_lfd = listenOn(&echo_port, false);
  int rcvbuf = 64 * 1024;
  setsockopt(echo_lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  std::thread echo = echoServer(echo_lfd, 2);
  f.serveInbound();
  f.serveOutbound(echo_port);
  std::string data = pattern(4 << 20);
  std::atomic<bool> finished{false};
  bool ok = false;
  std::thread a = app(f.app_port, data, finished, ok);
  size_t max_queued = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!finished && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(f.loop->runOnce(20).ok());
    if (f.outbound.link) {
      for (auto& [id, r] : f.outbound.relays) {
        max_queued = std::max(max_queued, f.outbound.link->h2().queued(id));
      }
    }
  }
  a.join();
  echo.join();
  close(echo_lfd);
  EXPECT_TRUE(ok);
  // One read past the high-water mark at most; the app's relay paused and resumed on progress.
  EXPECT_LE(max_queued, Relay::kHighWater + Relay::kChunk);
  EXPECT_GT(f.outbound.pauses, 0u);
}

// Nothing listens at the destination: the CONNECT is answered 502 and the app's connection is
// reset at once, instead of being accepted and then dropped.
TEST(HboneTunnel, UnreachableDestinationResetsTheAppConnection) {
  Fixture f;
  int closed_port = 0;
  close(listenOn(&closed_port, false));  // a port with nothing behind it
  f.serveInbound();
  f.serveOutbound(closed_port);
  std::atomic<bool> finished{false};
  ssize_t got = -2;
  int err = 0;
  std::thread a([&] {
    int fd = connectTo(f.app_port, false);
    send(fd, "hello", 5, MSG_NOSIGNAL);
    char buf[16];
    got = recv(fd, buf, sizeof(buf), 0);
    err = errno;
    close(fd);
    finished = true;
  });
  f.runUntil(finished, 5000);
  a.join();
  ASSERT_TRUE(finished);
  EXPECT_TRUE(got == 0 || (got < 0 && err == ECONNRESET)) << got << " " << err;
  ASSERT_EQ(f.outbound.status.size(), 1u);
  EXPECT_EQ(f.outbound.status.begin()->second, 502);
}

}  // namespace
}  // namespace meshlet::hbone
