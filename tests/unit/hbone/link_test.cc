// An HBONE link end to end over a real loopback TCP connection: mTLS between two workload
// identities, HTTP/2 CONNECT streams on top, driven by the proxy's event loop.
#include "agent/hbone/link.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <map>

#include "tests/unit/support/temp_dir.h"

namespace meshlet::hbone {
namespace {

using meshlet::testing::TempDir;

const int64_t kNow = static_cast<int64_t>(time(nullptr));

struct Pki {
  TempDir dir{"meshlet-link"};
  std::unique_ptr<tls::CertificateAuthority> ca;
  Pki() {
    tls::CaInitOptions o;
    o.dir = dir.path();
    EXPECT_TRUE(tls::initCa(o, kNow).ok());
    auto c = tls::CertificateAuthority::load(dir.path(), "cluster.local");
    EXPECT_TRUE(c.ok());
    ca = std::make_unique<tls::CertificateAuthority>(std::move(*c));
  }
  std::shared_ptr<const tls::MtlsContext> ctx(const std::string& sa, tls::MtlsRole role) {
    auto s = ca->issue(tls::spiffeId("cluster.local", "shop", sa), 3600, kNow);
    EXPECT_TRUE(s.ok());
    auto c = tls::MtlsContext::make(*s, ca->trustBundlePem(), "cluster.local", role);
    EXPECT_TRUE(c.ok());
    return *c;
  }
};

// A listening socket on 127.0.0.1 and a client socket connecting to it (non-blocking).
std::pair<int, int> listenAndConnect() {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(listen(lfd, 4), 0);
  socklen_t len = sizeof(a);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int rc = connect(cfd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  EXPECT_TRUE(rc == 0 || errno == EINPROGRESS);
  return {lfd, cfd};
}

// The server side: accepts one connection, answers every CONNECT and echoes each stream.
struct EchoServer {
  std::unique_ptr<Link> link;
  std::map<int32_t, std::string> authority;
  std::string closed_why;
};

struct LoopRunner {
  std::unique_ptr<proxy::EventLoop> loop;
  LoopRunner() {
    auto l = proxy::EventLoop::make();
    EXPECT_TRUE(l.ok());
    loop = std::move(*l);
  }
  bool until(const std::function<bool()>& done, int ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      EXPECT_TRUE(loop->runOnce(20).ok());
    }
    return done();
  }
};

void serveEcho(LoopRunner& run, int lfd, std::shared_ptr<const tls::MtlsContext> ctx, EchoServer& srv) {
  ASSERT_TRUE(
      run.loop
          ->add(lfd, EPOLLIN,
                [&run, lfd, ctx, &srv](uint32_t) {
                  int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                  if (fd < 0) return;
                  Events ev;
                  ev.on_request = [&srv](int32_t id, const ConnectRequest& r) {
                    srv.authority[id] = r.authority;
                    return 200;
                  };
                  ev.on_data = [&srv](int32_t id, std::string_view d) {
                    ASSERT_TRUE(srv.link->h2().send(id, d).ok());
                    srv.link->h2().consumed(id, d.size());
                  };
                  ev.on_end = [&srv](int32_t id) { ASSERT_TRUE(srv.link->h2().finish(id).ok()); };
                  auto link = Link::make(*run.loop, fd, ctx, "", ev);
                  ASSERT_TRUE(link.ok()) << link.error().message();
                  srv.link = std::move(*link);
                  srv.link->on_closed = [&srv](const std::string& why) { srv.closed_why = why; };
                })
          .ok());
}

TEST(HboneLink, TunnelsStreamsOverMutualTlsOnARealSocket) {
  Pki pki;
  LoopRunner run;
  auto [lfd, cfd] = listenAndConnect();
  EchoServer srv;
  serveEcho(run, lfd, pki.ctx("web", tls::MtlsRole::kServer), srv);

  std::map<int32_t, std::string> echoed;
  std::map<int32_t, bool> done;
  std::unique_ptr<Link> client;
  Events ev;
  ev.on_data = [&](int32_t id, std::string_view d) {
    echoed[id].append(d);
    client->h2().consumed(id, d.size());
  };
  ev.on_close = [&](int32_t id, uint32_t) { done[id] = true; };
  auto link = Link::make(*run.loop, cfd, pki.ctx("client", tls::MtlsRole::kClient),
                         tls::spiffeId("cluster.local", "shop", "web"), ev);
  ASSERT_TRUE(link.ok()) << link.error().message();
  client = std::move(*link);

  // Streams opened before the handshake finished wait for it.
  std::map<int32_t, std::string> sent;
  for (int i = 0; i < 3; ++i) {
    auto id = client->h2().connect("198.18.0." + std::to_string(10 + i) + ":8080");
    ASSERT_TRUE(id.ok());
    std::string data(1 << 20, '\0');
    for (size_t j = 0; j < data.size(); ++j) data[j] = static_cast<char>(j * (i + 3));
    sent[*id] = data;
    ASSERT_TRUE(client->h2().send(*id, data).ok());
    ASSERT_TRUE(client->h2().finish(*id).ok());
  }
  client->flush();
  ASSERT_TRUE(run.until([&] { return done.size() == 3; })) << srv.closed_why;
  for (const auto& [id, data] : sent) {
    EXPECT_EQ(echoed[id].size(), data.size()) << id;
    EXPECT_TRUE(echoed[id] == data) << id;
  }
  EXPECT_EQ(client->peerId(), "spiffe://cluster.local/ns/shop/sa/web");
  ASSERT_TRUE(srv.link);
  EXPECT_EQ(srv.link->peerId(), "spiffe://cluster.local/ns/shop/sa/client");
  EXPECT_EQ(srv.authority.size(), 3u);
  EXPECT_EQ(srv.authority.begin()->second, "198.18.0.10:8080");

  // Quiet now: its buffers go back, and the next stream grows them again as it needs.
  EXPECT_GT(client->bufferBytes(), 0u);
  client->releaseBuffers();
  EXPECT_EQ(client->bufferBytes(), 0u);
  auto again = client->h2().connect("198.18.0.20:8080");
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(client->h2().send(*again, "after release").ok());
  ASSERT_TRUE(client->h2().finish(*again).ok());
  client->flush();
  ASSERT_TRUE(run.until([&] { return done.count(*again) == 1; })) << srv.closed_why;
  EXPECT_EQ(echoed[*again], "after release");
  run.loop->remove(lfd);
  close(lfd);
}

TEST(HboneLink, WrongServerIdentityClosesTheLinkWithTheReason) {
  Pki pki;
  LoopRunner run;
  auto [lfd, cfd] = listenAndConnect();
  EchoServer srv;
  serveEcho(run, lfd, pki.ctx("db", tls::MtlsRole::kServer), srv);
  std::string why;
  auto link = Link::make(*run.loop, cfd, pki.ctx("client", tls::MtlsRole::kClient),
                         tls::spiffeId("cluster.local", "shop", "web"), Events{});
  ASSERT_TRUE(link.ok());
  (*link)->on_closed = [&](const std::string& w) { why = w; };
  ASSERT_TRUE(run.until([&] { return !why.empty(); })) << "link never closed";
  EXPECT_NE(why.find("expected spiffe://cluster.local/ns/shop/sa/web"), std::string::npos) << why;
  EXPECT_FALSE((*link)->established() &&
               (*link)->peerId() == "spiffe://cluster.local/ns/shop/sa/db");
  run.loop->remove(lfd);
  close(lfd);
}

TEST(HboneLink, NothingListeningIsReported) {
  Pki pki;
  LoopRunner run;
  auto [lfd, cfd] = listenAndConnect();
  close(lfd);  // refused... or reset: the link must say it is gone either way
  std::string why;
  auto link = Link::make(*run.loop, cfd, pki.ctx("client", tls::MtlsRole::kClient), "", Events{});
  ASSERT_TRUE(link.ok());
  (*link)->on_closed = [&](const std::string& w) { why = w; };
  ASSERT_TRUE(run.until([&] { return !why.empty(); }));
  EXPECT_TRUE((*link)->closed());
}

}  // namespace
}  // namespace meshlet::hbone
