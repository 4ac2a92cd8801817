// HBONE's HTTP/2 layer: a client and a server H2Conn joined in memory. CONNECT semantics,
// multiplexing, flow control as backpressure, refusals, resets and malformed input.
#include "agent/hbone/h2conn.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <map>
#include <string>

namespace meshlet::hbone {
namespace {

// Both ends plus what each saw.
struct Pair {
  std::map<int32_t, std::string> client_got, server_got;
  std::map<int32_t, int> status;
  std::map<int32_t, std::string> authority;
  std::map<int32_t, Headers> request_headers;
  std::map<int32_t, bool> client_end, server_end;
  std::map<int32_t, uint32_t> client_closed, server_closed;
  int answer = 200;
  bool server_consumes = true;
  std::unique_ptr<H2Conn> client, server;

  explicit Pair(Limits limits = {}) {
    Events ce;
    ce.on_response = [this](int32_t id, int s) { status[id] = s; };
    ce.on_data = [this](int32_t id, std::string_view d) {
      client_got[id].append(d);
      client->consumed(id, d.size());
    };
    ce.on_end = [this](int32_t id) { client_end[id] = true; };
    ce.on_close = [this](int32_t id, uint32_t code) { client_closed[id] = code; };
    Events se;
    se.on_request = [this](int32_t id, const ConnectRequest& r) {
      authority[id] = r.authority;
      request_headers[id] = r.headers;
      return answer;
    };
    se.on_data = [this](int32_t id, std::string_view d) {
      server_got[id].append(d);
      if (server_consumes) server->consumed(id, d.size());
    };
    se.on_end = [this](int32_t id) { server_end[id] = true; };
    se.on_close = [this](int32_t id, uint32_t code) { server_closed[id] = code; };
    auto c = H2Conn::make(H2Conn::Role::kClient, ce, limits);
    auto s = H2Conn::make(H2Conn::Role::kServer, se, limits);
    EXPECT_TRUE(c.ok() && s.ok());
    client = std::move(*c);
    server = std::move(*s);
  }
  // Exchanges bytes until both sides are quiet.
  void flush() {
    for (int i = 0; i < 1000; ++i) {
      std::string a = client->takeOutput();
      std::string b = server->takeOutput();
      if (a.empty() && b.empty()) return;
      ASSERT_TRUE(server->receive(a).ok());
      ASSERT_TRUE(client->receive(b).ok());
    }
    FAIL() << "no quiet after 1000 rounds";
  }
};

TEST(H2Conn, ConnectTunnelCarriesBytesBothWaysAndHalfCloses) {
  Pair p;
  auto id = p.client->connect("198.18.0.5:8080", {{"forwarded", "for=198.18.0.2"}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(p.client->send(*id, "hello").ok());  // before the 200: sent behind the CONNECT
  p.flush();
  EXPECT_EQ(p.authority[*id], "198.18.0.5:8080");
  ASSERT_EQ(p.request_headers[*id].size(), 1u);
  EXPECT_EQ(p.request_headers[*id][0].first, "forwarded");
  EXPECT_EQ(p.status[*id], 200);
  EXPECT_EQ(p.server_got[*id], "hello");
  ASSERT_TRUE(p.server->send(*id, "world").ok());
  p.flush();
  EXPECT_EQ(p.client_got[*id], "world");

  // Client FIN: the server sees the end and can still answer (a half-closed TCP connection).
  ASSERT_TRUE(p.client->finish(*id).ok());
  p.flush();
  EXPECT_TRUE(p.server_end[*id]);
  EXPECT_FALSE(p.client_end[*id]);
  ASSERT_TRUE(p.server->send(*id, "late answer").ok());
  ASSERT_TRUE(p.server->finish(*id).ok());
  p.flush();
  EXPECT_EQ(p.client_got[*id], "worldlate answer");
  EXPECT_TRUE(p.client_end[*id]);
  EXPECT_EQ(p.client_closed[*id], 0u);
  EXPECT_EQ(p.server_closed[*id], 0u);
  EXPECT_EQ(p.client->openStreams(), 0u);
  EXPECT_EQ(p.server->openStreams(), 0u);
}

TEST(H2Conn, ManyStreamsAreMultiplexedOnOneConnection) {
  Pair p;
  std::map<int32_t, std::string> sent;
  for (int i = 0; i < 200; ++i) {
    auto id = p.client->connect("198.18.0." + std::to_string(i % 250 + 1) + ":80");
    ASSERT_TRUE(id.ok());
    sent[*id] = std::string(1000 + i * 37, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(p.client->send(*id, sent[*id]).ok());
    ASSERT_TRUE(p.client->finish(*id).ok());
  }
  p.flush();
  for (const auto& [id, data] : sent) {
    EXPECT_EQ(p.server_got[id], data) << id;
    EXPECT_TRUE(p.server_end[id]);
    EXPECT_EQ(p.status[id], 200);
  }
}

// A reader that does not pass bytes on stops the sender after one stream window; nothing piles
// up in the receiving agent.
TEST(H2Conn, SlowReaderStopsTheSenderAtTheWindow) {
  Limits limits;
  limits.stream_window = 64 * 1024;
  Pair p(limits);
  p.server_consumes = false;
  auto id = p.client->connect("198.18.0.5:8080");
  ASSERT_TRUE(id.ok());
  std::string big(4 << 20, 'x');
  ASSERT_TRUE(p.client->send(*id, big).ok());
  p.flush();
  EXPECT_EQ(p.server_got[*id].size(), 64u * 1024);
  EXPECT_EQ(p.client->queued(*id), big.size() - 64 * 1024);
  // The reader catches up: the rest flows, a window at a time.
  for (int i = 0; i < 200 && p.server_got[*id].size() < big.size(); ++i) {
    p.server->consumed(*id, 64 * 1024);
    p.flush();
  }
  EXPECT_EQ(p.server_got[*id].size(), big.size());
  EXPECT_EQ(p.client->queued(*id), 0u);
}

TEST(H2Conn, RefusedConnectEndsTheStream) {
  Pair p;
  p.answer = 403;
  auto id = p.client->connect("198.18.0.5:8080");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(p.client->send(*id, "never delivered").ok());
  p.flush();
  EXPECT_EQ(p.status[*id], 403);
  EXPECT_TRUE(p.server_got[*id].empty());
  EXPECT_TRUE(p.client_closed.count(*id));
  EXPECT_EQ(p.client->openStreams(), 0u);
}

// The server may answer later (the upstream is still connecting): nothing is answered until
// respond(), and the answer is sent once.
TEST(H2Conn, PendingConnectIsAnsweredByRespond) {
  Pair p;
  p.answer = kPending;
  auto id = p.client->connect("198.18.0.5:8080");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(p.client->send(*id, "queued").ok());
  p.flush();
  EXPECT_EQ(p.authority[*id], "198.18.0.5:8080");
  EXPECT_FALSE(p.status.count(*id));
  // The client does not wait for the 200: its bytes follow the CONNECT, and the server hands
  // them over while the answer is pending (the inbound relay keeps them until its upstream is
  // up).
  EXPECT_EQ(p.server_got[*id], "queued");
  ASSERT_TRUE(p.server->respond(*id, 200).ok());
  EXPECT_FALSE(p.server->respond(*id, 200).ok());
  p.flush();
  EXPECT_EQ(p.status[*id], 200);
  EXPECT_EQ(p.server_got[*id], "queued");
  EXPECT_FALSE(p.server->respond(12345, 200).ok());
}

TEST(H2Conn, ResetIsSeenByThePeer) {
  Pair p;
  auto id = p.client->connect("198.18.0.5:8080");
  ASSERT_TRUE(id.ok());
  p.flush();
  ASSERT_TRUE(p.client->reset(*id, NGHTTP2_CANCEL).ok());
  p.flush();
  ASSERT_TRUE(p.server_closed.count(*id));
  EXPECT_EQ(p.server_closed[*id], static_cast<uint32_t>(NGHTTP2_CANCEL));
  EXPECT_FALSE(p.client->send(*id, "x").ok());
}

TEST(H2Conn, GarbageIsAProtocolErrorAndEndsTheConnection) {
  Pair p;
  auto st = p.server->receive("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("HTTP/2"), std::string::npos) << st.error().message();
  std::string out = p.server->takeOutput();  // SETTINGS and the GOAWAY
  EXPECT_FALSE(out.empty());
  EXPECT_TRUE(p.server->finished());
  EXPECT_FALSE(p.server->receive("more").ok());
}

TEST(H2Conn, GoAwayLetsOpenStreamsFinish) {
  Pair p;
  auto id = p.client->connect("198.18.0.5:8080");
  ASSERT_TRUE(id.ok());
  p.flush();
  p.server->goAway();
  p.flush();
  ASSERT_TRUE(p.client->send(*id, "after goaway").ok());
  ASSERT_TRUE(p.client->finish(*id).ok());
  p.flush();
  EXPECT_EQ(p.server_got[*id], "after goaway");
  // No new streams on this connection: a stream opened now is closed without reaching the
  // server.
  auto late = p.client->connect("198.18.0.6:80");
  if (late.ok()) {
    p.flush();
    EXPECT_TRUE(p.client_closed.count(*late));
    EXPECT_FALSE(p.status.count(*late));
  }
  EXPECT_EQ(p.authority.size(), 1u);
}

// One pooled link carries any number of connections over its life: each is opened, answered,
// used and then reset by the client (an app that closes with an RST), 2 500 in a row as fast as
// they go. nghttp2's rapid-reset guard (by default a server sends GOAWAY after 1 000 resets
// faster than 33/s) must not take the link down under them, with every stream in flight.
TEST(H2Conn, ManyShortStreamsResetInTurnKeepTheLink) {
  Pair p;
  p.answer = kPending;  // as the agent answers: once the app's connection is up
  for (int i = 0; i < 2500; ++i) {
    auto id = p.client->connect("198.18.0.5:8080");
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(p.client->send(*id, "x").ok());
    p.flush();
    ASSERT_TRUE(p.server->respond(*id, 200).ok());
    p.flush();
    ASSERT_EQ(p.status[*id], 200) << "stream " << i + 1;
    ASSERT_TRUE(p.server->send(*id, "y").ok());
    p.flush();
    ASSERT_EQ(p.client_got[*id], "y") << "stream " << i + 1;
    ASSERT_TRUE(p.client->reset(*id, NGHTTP2_CONNECT_ERROR).ok());
    p.flush();
    ASSERT_EQ(p.server_closed.count(*id), 1u) << "stream " << i + 1;
    EXPECT_EQ(p.client->openStreams(), 0u);
    EXPECT_EQ(p.server->openStreams(), 0u);
  }
}

}  // namespace
}  // namespace meshlet::hbone
