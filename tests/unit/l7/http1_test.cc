// The HTTP/1.1 codec: incremental parsing (split anywhere, one message per feed), framing,
// keep-alive, 1xx/HEAD/204/304, upgrades and CONNECT, every rejected input with its status, and
// the serializers (checked by parsing their output back).
#include "agent/l7/http1.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace meshlet::l7 {
namespace {

using Kind = Http1Parser::Kind;

// Every event, in order, as text: "H" heads, "B<bytes>" body pieces (merged), "E" ends.
struct Recorder : Http1Events {
  std::vector<RequestHead> requests;
  std::vector<ResponseHead> responses;
  std::vector<std::string> bodies;   // one per message
  std::vector<HeaderList> trailers;  // one per message that had any, in order
  int ends = 0;
  std::string log;

  void onRequestHead(RequestHead&& head) override {
    log += "H[" + head.method + " " + head.target + "]";
    requests.push_back(std::move(head));
    bodies.emplace_back();
  }
  void onResponseHead(ResponseHead&& head) override {
    log += "H[" + std::to_string(head.status) + "]";
    responses.push_back(std::move(head));
    bodies.emplace_back();
  }
  void onBody(std::string_view bytes) override {
    if (bytes.empty()) return;
    if (log.empty() || log.back() != '>') {
      log += "B<";
    } else {
      log.pop_back();
    }
    log.append(bytes);
    log += ">";
    if (!bodies.empty()) bodies.back().append(bytes);
  }
  void onTrailers(HeaderList&& t) override { trailers.push_back(std::move(t)); }
  void onMessageEnd() override {
    log += "E";
    ++ends;
  }
};

// Feeds all of `in` the way the proxy does: again with the rest after each message, until the
// parser stops taking bytes. Returns how many it took.
size_t feedAll(Http1Parser& p, std::string_view in) {
  size_t total = 0;
  while (total < in.size() && !p.failed() && !p.upgraded()) {
    size_t used = p.feed(in.data() + total, in.size() - total);
    EXPECT_LE(used, in.size() - total);
    if (used == 0) break;
    total += used;
  }
  return total;
}

// The same, one byte per feed() call.
size_t feedBytes(Http1Parser& p, std::string_view in) {
  size_t total = 0;
  for (size_t i = 0; i < in.size() && !p.failed() && !p.upgraded(); ++i) {
    size_t used = p.feed(in.data() + i, 1);
    if (used == 0) break;
    total += used;
  }
  return total;
}

struct Parsed {
  Recorder rec;
  size_t used = 0;
  bool failed = false;
  int status = 0;
  std::string error;
  bool upgraded = false;
};

Parsed parse(Kind kind, std::string_view in, bool bytewise = false, ParseLimits limits = {}) {
  Parsed out;
  Http1Parser p(kind, out.rec, limits);
  out.used = bytewise ? feedBytes(p, in) : feedAll(p, in);
  out.failed = p.failed();
  out.status = p.errorStatus();
  out.error = p.error();
  out.upgraded = p.upgraded();
  return out;
}

Parsed parseRequest(std::string_view in, bool bytewise = false) {
  return parse(Kind::kRequest, in, bytewise);
}

// ---- Requests ----

TEST(Http1Request, SimpleGet) {
  Recorder rec;
  Http1Parser p(Kind::kRequest, rec);
  std::string in = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: svc.ns:8080\r\nX-Two:  v 2 \r\n\r\n";
  EXPECT_EQ(p.feed(in.data(), in.size()), in.size());
  EXPECT_FALSE(p.failed());
  EXPECT_FALSE(p.inMessage());
  ASSERT_EQ(rec.requests.size(), 1u);
  const RequestHead& h = rec.requests[0];
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/a/b?x=1&y=2");
  EXPECT_EQ(h.path(), "/a/b");
  EXPECT_EQ(h.query(), "x=1&y=2");
  EXPECT_EQ(h.authority(), "svc.ns:8080");
  EXPECT_EQ(h.version_minor, 1);
  ASSERT_EQ(h.headers.size(), 2u);
  EXPECT_EQ(h.headers.fields[0].name, "Host");
  EXPECT_EQ(h.headers.fields[1].name, "X-Two");
  EXPECT_EQ(h.headers.fields[1].value, "v 2");  // surrounding whitespace is not the value's
  EXPECT_FALSE(h.framing.chunked);
  EXPECT_EQ(h.framing.content_length, 0u);  // a request without framing has no body
  EXPECT_TRUE(h.framing.keep_alive);
  EXPECT_FALSE(h.framing.upgrade);
  EXPECT_FALSE(h.expect_continue);
  EXPECT_EQ(rec.log, "H[GET /a/b?x=1&y=2]E");
  EXPECT_EQ(p.feed(in.data(), 0), 0u);
}

TEST(Http1Request, PathAndQueryForms) {
  RequestHead h;
  h.target = "/only";
  EXPECT_EQ(h.path(), "/only");
  EXPECT_EQ(h.query(), "");
  h.target = "/p?";
  EXPECT_EQ(h.path(), "/p");
  EXPECT_EQ(h.query(), "");
  h.target = "http://h.example:81/p/q?a=b";
  EXPECT_EQ(h.path(), "/p/q");
  EXPECT_EQ(h.query(), "a=b");
  EXPECT_EQ(h.authority(), "h.example:81");  // no Host header
  h.headers.add("host", "other");
  EXPECT_EQ(h.authority(), "other");
  h.target = "https://h.example?x";
  EXPECT_EQ(h.path(), "/");
  EXPECT_EQ(h.query(), "x");
  h.method = "CONNECT";
  h.target = "db.ns:5432";
  EXPECT_EQ(h.authority(), "db.ns:5432");
  h.method = "OPTIONS";
  h.target = "*";
  h.headers.fields.clear();
  EXPECT_EQ(h.path(), "*");
  EXPECT_EQ(h.authority(), "");
}

TEST(Http1Request, AbsoluteFormTarget) {
  auto r = parseRequest("GET http://web.ns:8080/p?q=1 HTTP/1.1\r\nHost: web.ns:8080\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  ASSERT_EQ(r.rec.requests.size(), 1u);
  EXPECT_EQ(r.rec.requests[0].path(), "/p");
  EXPECT_EQ(r.rec.requests[0].query(), "q=1");
  EXPECT_EQ(r.rec.requests[0].authority(), "web.ns:8080");
  // HTTP/1.0 may omit Host: the target's authority is the request's.
  r = parseRequest("GET http://web.ns/x HTTP/1.0\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.requests[0].authority(), "web.ns");
}

TEST(Http1Request, PostBodyStreamsInPieces) {
  Recorder rec;
  Http1Parser p(Kind::kRequest, rec);
  std::string head = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel";
  EXPECT_EQ(p.feed(head.data(), head.size()), head.size());
  ASSERT_EQ(rec.requests.size(), 1u);
  EXPECT_EQ(rec.requests[0].framing.content_length, 11u);
  EXPECT_FALSE(rec.requests[0].framing.chunked);
  EXPECT_TRUE(p.inMessage());
  EXPECT_EQ(rec.bodies[0], "hel");
  EXPECT_EQ(rec.ends, 0);
  std::string more = "lo wo";
  EXPECT_EQ(p.feed(more.data(), more.size()), more.size());
  EXPECT_EQ(rec.bodies[0], "hello wo");
  std::string last = "rld";
  EXPECT_EQ(p.feed(last.data(), last.size()), last.size());
  EXPECT_EQ(rec.bodies[0], "hello world");
  EXPECT_EQ(rec.ends, 1);
  EXPECT_FALSE(p.inMessage());
  EXPECT_EQ(rec.log, "H[POST /up]B<hello world>E");
}

TEST(Http1Request, ChunkedBodyWithExtensionsAndTrailers) {
  std::string in =
      "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n"
      "6\r\n world\r\n"
      "0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  auto r = parseRequest(in);
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.used, in.size());
  ASSERT_EQ(r.rec.requests.size(), 2u);
  EXPECT_TRUE(r.rec.requests[0].framing.chunked);
  EXPECT_FALSE(r.rec.requests[0].framing.content_length.has_value());
  EXPECT_EQ(r.rec.bodies[0], "hello world");
  EXPECT_EQ(r.rec.requests[1].target, "/next");
  EXPECT_EQ(r.rec.log, "H[POST /c]B<hello world>EH[GET /next]E");
  ASSERT_EQ(r.rec.trailers.size(), 1u);  // the second request has none
  ASSERT_EQ(r.rec.trailers[0].size(), 2u);
  EXPECT_EQ(*r.rec.trailers[0].get("x-checksum"), "abc");
  EXPECT_EQ(*r.rec.trailers[0].get("X-More"), "1");
  // gzip then chunked: chunked is the final coding.
  r = parseRequest(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\nab\r\n0\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_TRUE(r.rec.requests[0].framing.chunked);
  r = parseRequest(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,Chunked\r\n\r\n0\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_TRUE(r.rec.requests[0].framing.chunked);
}

// Only the exact names are framing fields: one that merely starts like "Transfer-Encoding" or
// "Content-Length" is an ordinary field (found by the fuzzer).
TEST(Http1Request, FieldNamesThatOnlyStartLikeFramingHeaders) {
  auto r = parseRequest(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding-X: y\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.requests[0].framing.content_length, 3u);
  EXPECT_EQ(r.rec.bodies[0], "abc");
  r = parseRequest("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encodingzz: gzip\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.log, "H[GET /]E");
  r = parseRequest("GET / HTTP/1.1\r\nHost: a\r\nContent-Lengthy: 5\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.requests[0].framing.content_length, 0u);
  auto resp = parse(Kind::kResponse,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding-X: y\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_FALSE(resp.failed) << resp.error;
  EXPECT_EQ(resp.rec.log, "H[200]B<ok>E");
}

TEST(Http1Request, ByteAtATimeEqualsWhole) {
  const std::vector<std::string> inputs = {
      "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
      "\r\nPOST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabcdePUT /z HTTP/1.1\r\n"
      "Host: b\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n10\r\n0123456789abcdef\r\n"
      "0\r\nT: 1\r\n\r\n",
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframes",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",  // rejected
  };
  for (const auto& in : inputs) {
    auto whole = parseRequest(in);
    auto bytes = parseRequest(in, true);
    EXPECT_EQ(whole.rec.log, bytes.rec.log) << in;
    if (!whole.failed) {
      EXPECT_EQ(whole.used, bytes.used) << in;
    }
    EXPECT_EQ(whole.failed, bytes.failed) << in;
    EXPECT_EQ(whole.error, bytes.error) << in;
    EXPECT_EQ(whole.upgraded, bytes.upgraded) << in;
  }
  const std::string response =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop";
  auto whole = parse(Kind::kResponse, response);
  auto bytes = parse(Kind::kResponse, response, true);
  EXPECT_FALSE(whole.failed) << whole.error;
  EXPECT_EQ(whole.rec.log, "H[100]EH[200]B<wikipedia>EH[404]B<nop>E");
  EXPECT_EQ(bytes.rec.log, whole.rec.log);
  EXPECT_EQ(bytes.used, response.size());
}

// Every split of the input in two, and one byte per feed(), give the events, the error and the
// bytes used of one feed: the head is kept across feeds, chunk framing too. (On a framing error
// only the error is the same: body bytes that came in an earlier feed() went out.)
TEST(Http1Request, EverySplitEqualsWhole) {
  const std::vector<std::pair<Kind, std::string>> inputs = {
      {Kind::kRequest,
       "\r\nGET /a?b HTTP/1.1\r\nHost: 198.19.0.30\r\nX-Long:  v  w \r\nAccept: */*\r\n\r\n"
       "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
       "3;ext=1\r\nabc\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT-1: x\r\nT-2:  y \r\n\r\n"
       "PUT /q HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nConnection: close\r\n\r\nwxyz\r\n"},
      {Kind::kResponse,
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: nginx\r\n"
       "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
       "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"
       "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the close"},
      {Kind::kRequest,  // an error in the trailers
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nT: 1\r\n"
       " folded\r\n\r\n"},
  };
  for (const auto& [kind, in] : inputs) {
    Recorder whole_rec;
    Http1Parser whole(kind, whole_rec);
    size_t whole_used = feedAll(whole, in);
    whole.finish();
    for (size_t cut = 0; cut <= in.size(); ++cut) {
      Recorder rec;
      Http1Parser p(kind, rec);
      size_t used = feedAll(p, std::string_view(in).substr(0, cut));
      if (used == cut) used += feedAll(p, std::string_view(in).substr(cut));
      p.finish();
      EXPECT_EQ(p.error(), whole.error()) << cut;
      if (whole.failed()) continue;
      ASSERT_EQ(rec.log, whole_rec.log) << "cut at " << cut << " of " << in;
      EXPECT_EQ(used, whole_used) << cut;
      ASSERT_EQ(rec.trailers.size(), whole_rec.trailers.size());
      for (size_t i = 0; i < rec.trailers.size(); ++i) {
        EXPECT_EQ(rec.trailers[i].fields.size(), whole_rec.trailers[i].fields.size());
      }
    }
    Recorder rec;
    Http1Parser p(kind, rec);
    feedBytes(p, in);
    p.finish();
    EXPECT_EQ(p.error(), whole.error());
    if (!whole.failed()) {
      EXPECT_EQ(rec.log, whole_rec.log) << in;
    }
  }
}

TEST(Http1Request, HeaderSplitAcrossFeedsIsAccumulated) {
  Recorder rec;
  Http1Parser p(Kind::kRequest, rec);
  std::string in = "GET /p HTTP/1.1\r\nHost: a\r\nX-Long-Name: first-part-second-part\r\n\r\n";
  for (size_t cut : {3u, 20u, 30u, 45u}) {
    rec = Recorder();
    Http1Parser q(Kind::kRequest, rec);
    EXPECT_EQ(q.feed(in.data(), cut), cut);
    EXPECT_EQ(q.feed(in.data() + cut, in.size() - cut), in.size() - cut);
    ASSERT_EQ(rec.requests.size(), 1u);
    EXPECT_EQ(*rec.requests[0].headers.get("x-long-name"), "first-part-second-part");
  }
}

TEST(Http1Request, PipelinedRequestsOneMessagePerFeed) {
  Recorder rec;
  Http1Parser p(Kind::kRequest, rec);
  std::string first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string second = "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string in = first + second;
  size_t used = p.feed(in.data(), in.size());
  EXPECT_EQ(used, first.size());
  EXPECT_EQ(rec.log, "H[GET /1]E");
  used += p.feed(in.data() + used, in.size() - used);
  EXPECT_EQ(used, in.size());
  EXPECT_EQ(rec.log, "H[GET /1]EH[GET /2]E");
}

TEST(Http1Request, KeepAlive) {
  auto ka = [](std::string_view in) {
    auto r = parseRequest(in);
    EXPECT_FALSE(r.failed) << r.error;
    return !r.rec.requests.empty() && r.rec.requests[0].framing.keep_alive;
  };
  EXPECT_TRUE(ka("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_FALSE(ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n"));
  EXPECT_FALSE(ka("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_EQ(parseRequest("GET / HTTP/1.0\r\n\r\n").rec.requests[0].version_minor, 0);
}

TEST(Http1Request, NothingButCrlfAfterTheLastMessage) {
  std::string first = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  auto r = parseRequest(first + "\r\n");
  EXPECT_FALSE(r.failed);
  EXPECT_EQ(r.used, first.size() + 2);
  r = parseRequest(first + "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.rec.requests.size(), 1u);
}

TEST(Http1Request, LeadingEmptyLinesAreSkipped) {
  auto r = parseRequest("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.requests.size(), 1u);
}

TEST(Http1Request, ExpectContinue) {
  auto r = parseRequest(
      "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_TRUE(r.rec.requests[0].expect_continue);
  EXPECT_EQ(r.rec.bodies[0], "ok");
}

TEST(Http1Request, WebSocketUpgradeLeavesTheRest) {
  std::string head =
      "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  std::string in = head + "\x81\x05hello";
  for (bool bytewise : {false, true}) {
    auto r = parseRequest(in, bytewise);
    ASSERT_FALSE(r.failed) << r.error;
    EXPECT_TRUE(r.upgraded);
    EXPECT_EQ(r.used, head.size());
    ASSERT_EQ(r.rec.requests.size(), 1u);
    EXPECT_TRUE(r.rec.requests[0].framing.upgrade);
    EXPECT_EQ(r.rec.log, "H[GET /chat]E");
  }
  Recorder rec;
  Http1Parser p(Kind::kRequest, rec);
  EXPECT_EQ(p.feed(in.data(), in.size()), head.size());
  EXPECT_TRUE(p.upgraded());
  EXPECT_FALSE(p.inMessage());
  EXPECT_EQ(p.feed(in.data() + head.size(), in.size() - head.size()), 0u);  // not HTTP
  EXPECT_FALSE(p.failed());
}

TEST(Http1Request, UpgradeNeedsConnectionUpgradeAndHttp11) {
  auto r = parseRequest("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n");
  EXPECT_FALSE(r.upgraded);
  EXPECT_FALSE(r.rec.requests[0].framing.upgrade);
  r = parseRequest("GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nGET");
  EXPECT_FALSE(r.upgraded);  // RFC 9110 7.8: ignored in HTTP/1.0
  EXPECT_FALSE(r.rec.requests[0].framing.upgrade);
}

// An upgrading request with a body is upgraded after the body (the body is still HTTP).
TEST(Http1Request, UpgradeWithBodyUpgradesAfterTheBody) {
  std::string msg =
      "POST /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
      "Content-Length: 4\r\n\r\nbody";
  for (bool bytewise : {false, true}) {
    auto r = parseRequest(msg + "rest", bytewise);
    ASSERT_FALSE(r.failed) << r.error;
    EXPECT_TRUE(r.upgraded);
    EXPECT_EQ(r.used, msg.size());
    EXPECT_TRUE(r.rec.requests[0].framing.upgrade);
    EXPECT_EQ(r.rec.requests[0].framing.content_length, 4u);
    EXPECT_EQ(r.rec.log, "H[POST /ws]B<body>E");
  }
}

TEST(Http1Request, Connect) {
  std::string head = "CONNECT db.ns.svc:5432 HTTP/1.1\r\nHost: db.ns.svc:5432\r\n\r\n";
  auto r = parseRequest(head + "\x16\x03\x01 tls bytes");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_TRUE(r.upgraded);
  EXPECT_EQ(r.used, head.size());
  const RequestHead& h = r.rec.requests[0];
  EXPECT_EQ(h.method, "CONNECT");
  EXPECT_EQ(h.target, "db.ns.svc:5432");
  EXPECT_EQ(h.authority(), "db.ns.svc:5432");
  EXPECT_TRUE(h.framing.upgrade);
  EXPECT_EQ(h.framing.content_length, 0u);
  r = parseRequest("CONNECT /x HTTP/1.1\r\nHost: a:1\r\n\r\n");
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(r.status, 400);
}

// ---- Rejected requests ----

struct Bad {
  std::string in;
  int status;
  std::string why;  // a part of error()
};

TEST(Http1Request, RejectsMalformedInput) {
  const std::string ok = "GET / HTTP/1.1\r\nHost: a\r\n";
  const std::vector<Bad> cases = {
      {"HELLO\r\n\r\n", 400, "invalid method"},
      {"GET /\r\n\r\n", 400, "request target"},
      {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "HTTP version"},
      {"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "HTTP version"},
      {"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target"},
      {"GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment"},
      {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "OPTIONS"},
      {"GET a.b:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target"},
      {"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "authority"},
      {"GET http://other/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "does not match"},
      {"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501, "unknown method"},
      {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "version"},
      {"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, "version"},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "HTTP/2"},
      // Fields.
      {ok + "Ho st: a\r\n\r\n", 400, "invalid header name"},
      {ok + "Host : a\r\n\r\n", 400, "invalid header name"},
      {ok + "X\x01Y: a\r\n\r\n", 400, "invalid header name"},
      {ok + ": a\r\n\r\n", 400, "invalid header name"},
      {ok + "NoColon\r\n\r\n", 400, "colon"},
      {ok + "X: a\rb\r\n\r\n", 400, "CR without LF"},
      {ok + "X: a\x7f\r\n\r\n", 400, "invalid header value"},
      {ok + "X: a\x01z\r\n\r\n", 400, "invalid header value"},
      {ok + std::string("X: a\0b\r\n\r\n", 10), 400, "NUL"},
      {ok + std::string("X\0: b\r\n\r\n", 9), 400, "NUL"},
      {ok + "X: a\r\n  folded\r\n\r\n", 400, "obs-fold"},
      {ok + "X: a\r\n\tfolded\r\n\r\n", 400, "obs-fold"},
      {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "whitespace"},
      {ok + "\rX", 400, "CR without LF"},
      // Bare LF: rejected everywhere (see the report in http1.cc's header comment).
      {"GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF"},
      {ok + "X: 1\n\r\n", 400, "bare LF"},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400,
       "chunk size"},
      // Host.
      {"GET / HTTP/1.1\r\n\r\n", 400, "missing Host"},
      {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, "more than one Host"},
      {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"},
      {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"},
      // Framing and smuggling.
      {ok + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400,
       "both Transfer-Encoding and Content-Length"},
      {ok + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400,
       "both Transfer-Encoding and Content-Length"},
      {ok + "Transfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", 400, "both"},
      {ok + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "more than one"},
      {ok + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, "more than one"},
      {ok + "Content-Length: 3, 3\r\n\r\nabc", 400, "invalid Content-Length"},
      {ok + "Content-Length: -1\r\n\r\n", 400, "invalid Content-Length"},
      {ok + "Content-Length: 0x10\r\n\r\n", 400, "invalid Content-Length"},
      {ok + "Content-Length: 99999999999999999999999\r\n\r\n", 400, "Content-Length"},
      {ok + "Transfer-Encoding: gzip\r\n\r\n", 400, "does not end in chunked"},
      {ok + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, "not the final"},
      {ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "not the final"},
      {ok + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400, "not the final"},
      {ok + "Transfer-Encoding: xchunked\r\n\r\n", 400, "does not end in chunked"},
      {ok + "Transfer-Encoding: chunked;q=1\r\n\r\n", 400, "invalid Transfer-Encoding"},
      {ok + "Transfer-Encoding: \"chunked\"\r\n\r\n", 400, "invalid Transfer-Encoding"},
      {ok + "Transfer-Encoding: ,\r\n\r\n", 400, "empty Transfer-Encoding"},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "HTTP/1.0"},
      {ok + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk size"},
      {ok + "Transfer-Encoding: chunked\r\n\r\n;x\r\n", 400, "chunk size"},
      {ok + "Transfer-Encoding: chunked\r\n\r\n-1\r\n", 400, "chunk size"},
      // Chunk framing is strict: CRLF after the data, LF after CR, no CTLs in extensions, and
      // trailers follow the head's rules.
      {ok + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400, "not followed by CRLF"},
      {ok + "Transfer-Encoding: chunked\r\n\r\n3\rXabc\r\n0\r\n\r\n", 400, "CR without LF"},
      {ok + "Transfer-Encoding: chunked\r\n\r\n3;a\x01\r\nabc\r\n0\r\n\r\n", 400, "extension"},
      {ok + "Transfer-Encoding: chunked\r\n\r\n0\r\nT: 1\n\n", 400, "bare LF"},
      {ok + "Transfer-Encoding: chunked\r\n\r\n0\r\nT: x\r\n y\r\n\r\n", 400, "obs-fold"},
      {ok + "Transfer-Encoding: chunked\r\n\r\n0\r\nT : x\r\n\r\n", 400, "invalid header name"},
      {ok + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\r", 400, "CR without LF"},
      {ok + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400, "chunk size"},
  };
  for (const auto& c : cases) {
    for (bool bytewise : {false, true}) {
      auto r = parseRequest(c.in, bytewise);
      EXPECT_TRUE(r.failed) << c.in;
      EXPECT_EQ(r.status, c.status) << c.in << " -> " << r.error;
      EXPECT_NE(r.error.find(c.why), std::string::npos) << c.in << " -> " << r.error;
      EXPECT_EQ(r.error.find('\n'), std::string::npos);
      // A bad head: no event. A bad body: the head went out, the message never ends.
      EXPECT_TRUE(r.rec.requests.empty() || r.rec.requests[0].framing.chunked) << c.in;
      EXPECT_EQ(r.rec.ends, 0) << c.in;
    }
  }
}

TEST(Http1Request, FailedParserTakesNothingMore) {
  Recorder rec;
  Http1Parser p(Kind::kRequest, rec);
  std::string bad = "GET / HTTP/1.1\r\nHo st: a\r\n\r\n";
  p.feed(bad.data(), bad.size());
  ASSERT_TRUE(p.failed());
  EXPECT_EQ(p.error(), "invalid header name");
  std::string good = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(p.feed(good.data(), good.size()), 0u);
  p.finish();
  EXPECT_EQ(p.error(), "invalid header name");
  EXPECT_TRUE(rec.requests.empty());
}

TEST(Http1Request, OversizeHeadIs431) {
  std::string big =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(70 * 1024, 'x') + "\r\n\r\n";
  for (bool bytewise : {false, true}) {
    auto r = parseRequest(big, bytewise);
    EXPECT_TRUE(r.failed);
    EXPECT_EQ(r.status, 431);
    EXPECT_EQ(r.error, "head larger than 65536 bytes");
    EXPECT_TRUE(r.rec.requests.empty());
  }
  // A long request line counts too, and so do the limits one sets.
  std::string line = "GET /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  auto r = parse(Kind::kRequest, line, false, ParseLimits{256, 100});
  EXPECT_EQ(r.status, 431);
  r = parse(Kind::kRequest, line, false, ParseLimits{line.size(), 100});
  EXPECT_FALSE(r.failed) << r.error;
  // Above 80 KiB a head is refused whatever the limits: 431 as well.
  std::string huge =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(90 * 1024, 'x') + "\r\n\r\n";
  r = parse(Kind::kRequest, huge, false, ParseLimits{1024 * 1024, 100});
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(r.status, 431);
}

TEST(Http1Request, TooManyFieldsIs431) {
  auto withFields = [](int n) {
    std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 1; i < n; ++i) in += "X-" + std::to_string(i) + ": v\r\n";
    return in + "\r\n";
  };
  auto r = parseRequest(withFields(100));
  EXPECT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.requests[0].headers.size(), 100u);
  r = parseRequest(withFields(101));
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.error, "more than 100 header fields");
  r = parse(Kind::kRequest, withFields(4), false, ParseLimits{65536, 3});
  EXPECT_EQ(r.status, 431);
}

TEST(Http1Request, OversizeTrailersAre431) {
  std::string in =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
  for (int i = 0; i < 40; ++i)
    in += "X-Trailer-" + std::to_string(i) + ": " + std::string(50, 'v') + "\r\n";
  in += "\r\n";
  auto r = parse(Kind::kRequest, in, false, ParseLimits{1024, 100});
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.error, "trailers larger than 1024 bytes");
  EXPECT_EQ(r.rec.ends, 0);
  in = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 4; ++i) in += "T" + std::to_string(i) + ": v\r\n";
  r = parse(Kind::kRequest, in + "\r\n", false, ParseLimits{1024, 3});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.error, "more than 3 trailer fields");
}

TEST(Http1Request, FinishInTheMiddleIsAnError) {
  for (std::string in :
       {"GET / HTTP/1.1\r\nHos", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab"}) {
    Recorder rec;
    Http1Parser p(Kind::kRequest, rec);
    feedAll(p, in);
    EXPECT_FALSE(p.failed());
    p.finish();
    EXPECT_TRUE(p.failed()) << in;
    EXPECT_EQ(p.errorStatus(), 400);
    EXPECT_EQ(rec.ends, 0);
  }
  Recorder rec;
  Http1Parser p(Kind::kRequest, rec);
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n";
  feedAll(p, in);
  p.finish();  // between messages: a clean close
  EXPECT_FALSE(p.failed());
}

// reset(): the parser is as new, whatever state it was left in.
TEST(Http1Parser, ResetMakesItNew) {
  const std::string get = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::vector<std::string> before = {
      "GET / HTTP/1.1\r\nHo st: a\r\n\r\n",                                           // failed
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: ws\r\nConnection: upgrade\r\n\r\nxx",  // upgraded
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",                       // closed
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc",                   // in a body
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",      // in a chunk
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: x",    // trailers
      "GET / HTTP/1.1\r\nHos",                                                        // in a head
  };
  for (const auto& first : before) {
    for (bool finish : {false, true}) {
      Recorder rec;
      Http1Parser p(Kind::kRequest, rec, ParseLimits{4096, 10});
      feedAll(p, first);
      if (finish) p.finish();
      p.reset();
      EXPECT_FALSE(p.failed()) << first;
      EXPECT_EQ(p.errorStatus(), 0);
      EXPECT_EQ(p.error(), "");
      EXPECT_FALSE(p.upgraded());
      EXPECT_FALSE(p.inMessage());
      rec = Recorder();
      std::string in = get +
                       "POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "1\r\nz\r\n0\r\nT: y\r\n\r\n";
      EXPECT_EQ(feedAll(p, in), in.size()) << first;
      EXPECT_EQ(rec.log, "H[GET /a]EH[POST /b]B<z>E") << first;
      ASSERT_EQ(rec.trailers.size(), 1u);
      EXPECT_EQ(rec.trailers[0].size(), 1u);
      p.finish();
      EXPECT_FALSE(p.failed()) << p.error();
    }
  }
  // The limits stay; expectNoBody does not.
  Recorder rec;
  Http1Parser p(Kind::kResponse, rec, ParseLimits{64, 2});
  p.expectNoBody(true);
  p.reset();
  std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  EXPECT_EQ(feedAll(p, ok), ok.size());
  EXPECT_EQ(rec.log, "H[200]B<ok>E");
  std::string many = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  feedAll(p, many);
  EXPECT_EQ(p.error(), "more than 2 header fields");
  p.reset();
  std::string big = "HTTP/1.1 200 OK\r\nX: " + std::string(100, 'x') + "\r\n\r\n";
  feedAll(p, big);
  EXPECT_EQ(p.error(), "head larger than 64 bytes");
}

// Connection and Transfer-Encoding values are read token by token from the raw value: a token
// counts when SP or a comma follows it; HTAB or a byte that is not a token character at the
// start of a token ends the reading. Proxy-Connection counts as Connection.
TEST(Http1Request, ConnectionAndTransferEncodingTokens) {
  auto keepAlive = [](std::string_view connection) {
    auto r = parseRequest("GET / HTTP/1.1\r\nHost: a\r\n" + std::string(connection) + "\r\n\r\n");
    EXPECT_FALSE(r.failed) << connection << ": " << r.error;
    return !r.rec.requests.empty() && r.rec.requests[0].framing.keep_alive;
  };
  EXPECT_FALSE(keepAlive("Connection: CLOSE"));
  EXPECT_FALSE(keepAlive("Connection: x , close  "));
  EXPECT_FALSE(keepAlive("Connection: close,"));
  EXPECT_FALSE(keepAlive("Proxy-Connection: close"));
  EXPECT_TRUE(keepAlive("Connection: closed"));
  EXPECT_TRUE(keepAlive("Connection: close\t"));
  EXPECT_TRUE(keepAlive("Connection: x,\tclose"));
  EXPECT_TRUE(keepAlive("Connection: ,close"));
  EXPECT_FALSE(keepAlive("Connection: \"x\", close"));
  EXPECT_TRUE(keepAlive("Connection: x, \"y\", close"));
  EXPECT_TRUE(keepAlive("Connection:"));
  auto r = parseRequest("GET / HTTP/1.1\r\nHost: a\r\nUpgrade:\r\nConnection: upgrade\r\n\r\n");
  EXPECT_FALSE(r.upgraded);  // an empty Upgrade does not count
  r = parseRequest("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: a, Upgrade \r\n\r\n");
  EXPECT_TRUE(r.upgraded);
  for (std::string te : {"chunked\t", ",chunked", "gzip,\tchunked", "gzip, chunked ,"}) {
    r = parseRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + te +
                     "\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(r.error, "ambiguous Transfer-Encoding") << te;
  }
  r = parseRequest(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip ,  chunked  \r\n\r\n"
      "0\r\n\r\n");
  EXPECT_FALSE(r.failed) << r.error;
}

TEST(Http1Request, LimitsOfTheFraming) {
  const std::string ok = "POST / HTTP/1.1\r\nHost: a\r\n";
  auto r = parseRequest(ok + "Content-Length: 18446744073709551609\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.requests[0].framing.content_length, 18446744073709551609u);
  r = parseRequest(ok + "Content-Length: 18446744073709551610\r\n\r\n");
  EXPECT_EQ(r.error, "invalid Content-Length");
  r = parseRequest(ok + "Content-Length: 3 \t\r\n\r\nabc");
  EXPECT_EQ(r.error, "invalid Content-Length");
  r = parseRequest(ok + "Content-Length: 0003  \r\n\r\nabc");
  EXPECT_EQ(r.rec.bodies[0], "abc");
  r = parseRequest("GET h2c://a/ HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.error, "malformed message: invalid URL");  // a scheme is letters only
  for (std::string m : {"ACL", "BIND", "M-SEARCH", "MKCALENDAR", "PROPPATCH", "PURGE", "SOURCE",
                        "UNLINK", "UNSUBSCRIBE"}) {
    r = parseRequest(m + " / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_FALSE(r.failed) << m << ": " << r.error;
  }
  for (std::string m : {"GE", "GETS", "get", "PROPFIN", "MKCOLX", "QUERY"}) {
    r = parseRequest(m + " / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(r.status, 501) << m;
  }
  // Above 80 KiB of empty lines and head, whatever the limits.
  ParseLimits big{1 << 20, 100};
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  r = parse(Kind::kRequest, std::string(81920 - head.size(), '\n') + head, false, big);
  EXPECT_FALSE(r.failed) << r.error;
  r = parse(Kind::kRequest, std::string(81921 - head.size(), '\n') + head, false, big);
  EXPECT_EQ(r.error, "head or trailers larger than 81920 bytes");
}

// Chunk sizes up to 0xffffffffffffffef; a size or Content-Length trailer error, or HTAB after
// the size, ends the body after the bytes before it; other framing errors drop the bytes of the
// same feed().
TEST(Http1Request, ChunkedBodyErrors) {
  const std::string head =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n";
  struct Case {
    std::string tail;
    std::string error;
    std::string log;  // whole
  };
  const std::vector<Case> cases = {
      {"0ffffffffffffffef\r\nab", "", "H[POST /]B<zab>"},
      {"ffffffffffffffff\r\n", "invalid chunk size", "H[POST /]B<z>"},
      {"1fffffffffffffff0\r\n", "invalid chunk size", "H[POST /]"},
      {"3\t\r\nabc\r\n0\r\n\r\n", "invalid chunk size", "H[POST /]B<z>"},
      {"3\t\r\nabcXY", "chunk data not followed by CRLF", "H[POST /]"},
      {"0\r\nContent-Length: x\r\n\r\n", "invalid chunk size", "H[POST /]B<z>"},
      {"0\r\nContent-Length:\r\n\r\n", "invalid chunk size", "H[POST /]B<z>"},
      {"0\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n",
       "both Transfer-Encoding and Content-Length, or more than one Content-Length",
       "H[POST /]B<z>"},
      {"0\r\nContent-Length: 1 \r\n\r\n", "", "H[POST /]B<z>E"},
      {"zz\r\n", "invalid chunk size", "H[POST /]"},
  };
  for (const auto& c : cases) {
    auto r = parseRequest(head + c.tail);
    EXPECT_EQ(r.error, c.error) << c.tail;
    EXPECT_EQ(r.rec.log, c.log) << c.tail;
    auto bytes = parseRequest(head + c.tail, true);  // one feed per byte: the first error
    EXPECT_EQ(bytes.error, c.tail == "3\t\r\nabcXY" ? "invalid chunk size" : c.error) << c.tail;
  }
}

// ---- Responses ----

TEST(Http1Response, SimpleResponse) {
  Recorder rec;
  Http1Parser p(Kind::kResponse, rec);
  std::string in = "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nServer: x\r\n\r\nnope";
  EXPECT_EQ(feedAll(p, in), in.size());
  ASSERT_EQ(rec.responses.size(), 1u);
  const ResponseHead& h = rec.responses[0];
  EXPECT_EQ(h.status, 404);
  EXPECT_EQ(h.reason, "Not Found");
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.framing.content_length, 4u);
  EXPECT_TRUE(h.framing.keep_alive);
  EXPECT_EQ(rec.bodies[0], "nope");
  EXPECT_EQ(rec.ends, 1);
  auto r = parse(Kind::kResponse, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.responses[0].reason, "");
}

// gRPC over the internal HTTP/1.1 leg: grpc-status/grpc-message arrive as chunked trailers and
// are handed out before the end, whole whatever the feed boundaries.
TEST(Http1Response, ChunkedTrailers) {
  std::string in =
      "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n"
      "5\r\nabcde\r\n"
      "0\r\ngrpc-status: 5\r\ngrpc-message: not found\r\n\r\n"
      "HTTP/1.1 204 No Content\r\n\r\n";
  for (bool bytewise : {false, true}) {
    Recorder rec;
    Http1Parser p(Kind::kResponse, rec);
    size_t used = bytewise ? feedBytes(p, in) : feedAll(p, in);
    ASSERT_FALSE(p.failed()) << p.error();
    EXPECT_EQ(used, in.size());
    ASSERT_EQ(rec.ends, 2);
    ASSERT_EQ(rec.trailers.size(), 1u);
    ASSERT_EQ(rec.trailers[0].size(), 2u);
    EXPECT_EQ(rec.trailers[0].fields[0].name, "grpc-status");
    EXPECT_EQ(rec.trailers[0].fields[0].value, "5");
    EXPECT_EQ(*rec.trailers[0].get("grpc-message"), "not found");
    EXPECT_EQ(rec.bodies[0].size(), 5u);
  }
  // No trailer section: no onTrailers.
  auto r = parse(Kind::kResponse, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.ends, 1);
  EXPECT_TRUE(r.rec.trailers.empty());
  // Malformed trailers are still an error.
  r = parse(Kind::kResponse,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n");
  EXPECT_TRUE(r.failed);
}

TEST(Http1Response, HeadResponseHasNoBody) {
  Recorder rec;
  Http1Parser p(Kind::kResponse, rec);
  p.expectNoBody(true);
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
  std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  std::string in = head + next;
  EXPECT_EQ(p.feed(in.data(), in.size()), head.size());
  ASSERT_EQ(rec.responses.size(), 1u);
  EXPECT_EQ(rec.responses[0].framing.content_length, 0u);
  EXPECT_EQ(*rec.responses[0].headers.get("content-length"), "1000");  // headers as sent
  EXPECT_EQ(rec.ends, 1);
  // The flag covered one response: the next one has its body.
  EXPECT_EQ(p.feed(next.data(), next.size()), next.size());
  EXPECT_EQ(rec.log, "H[200]EH[200]B<ok>E");
  // A chunked HEAD response: no body either.
  auto r = Recorder();
  Http1Parser q(Kind::kResponse, r);
  q.expectNoBody(true);
  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(q.feed(chunked.data(), chunked.size()), chunked.size());
  EXPECT_FALSE(r.responses[0].framing.chunked);
  EXPECT_EQ(r.ends, 1);
}

TEST(Http1Response, ContinueThenFinal) {
  Recorder rec;
  Http1Parser p(Kind::kResponse, rec);
  p.expectNoBody(true);  // outlives the 1xx: it is about the final response
  std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
  std::string final = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  std::string in = cont + "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + final;
  size_t used = p.feed(in.data(), in.size());
  EXPECT_EQ(used, cont.size());
  EXPECT_EQ(rec.log, "H[100]E");
  EXPECT_EQ(rec.responses[0].framing.content_length, 0u);
  EXPECT_EQ(feedAll(p, std::string_view(in).substr(used)), in.size() - used);
  EXPECT_EQ(rec.log, "H[100]EH[103]EH[200]E");
  EXPECT_FALSE(p.failed());

  auto r = parse(Kind::kResponse,
                 "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
  EXPECT_EQ(r.rec.log, "H[100]EH[200]B<hi>E");
}

TEST(Http1Response, NoContentAndNotModifiedHaveNoBody) {
  for (int status : {204, 304}) {
    std::string first = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 7\r\n\r\n";
    auto r = parse(Kind::kResponse, first + "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz");
    ASSERT_FALSE(r.failed) << r.error;
    EXPECT_EQ(r.rec.log, "H[" + std::to_string(status) + "]EH[200]B<z>E");
    EXPECT_EQ(r.rec.responses[0].framing.content_length, 0u);
    EXPECT_TRUE(r.rec.responses[0].framing.keep_alive);
  }
}

TEST(Http1Response, BodyUntilClose) {
  for (std::string in :
       {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of ", "HTTP/1.0 200 OK\r\n\r\nall of ",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nall of "}) {
    Recorder rec;
    Http1Parser p(Kind::kResponse, rec);
    EXPECT_EQ(feedAll(p, in), in.size());
    std::string more = "it";
    EXPECT_EQ(p.feed(more.data(), more.size()), more.size());
    ASSERT_EQ(rec.responses.size(), 1u);
    EXPECT_FALSE(rec.responses[0].framing.keep_alive);
    EXPECT_FALSE(rec.responses[0].framing.content_length.has_value());
    EXPECT_FALSE(rec.responses[0].framing.chunked);
    EXPECT_TRUE(p.inMessage());
    EXPECT_EQ(rec.ends, 0);
    p.finish();
    EXPECT_FALSE(p.failed()) << p.error();
    EXPECT_EQ(rec.ends, 1);
    EXPECT_EQ(rec.bodies[0], "all of it");
    EXPECT_EQ(p.feed(more.data(), more.size()), 0u);  // after finish()
  }
}

TEST(Http1Response, UnfinishedResponseAtCloseFails) {
  Recorder rec;
  Http1Parser p(Kind::kResponse, rec);
  std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
  feedAll(p, in);
  p.finish();
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(p.error(), "connection closed before the message ended");
  EXPECT_EQ(rec.ends, 0);
}

TEST(Http1Response, SwitchingProtocolsLeavesTheRest) {
  std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  for (bool bytewise : {false, true}) {
    auto r = parse(Kind::kResponse, head + "\x81\x02hi", bytewise);
    ASSERT_FALSE(r.failed) << r.error;
    EXPECT_TRUE(r.upgraded);
    EXPECT_EQ(r.used, head.size());
    EXPECT_TRUE(r.rec.responses[0].framing.upgrade);
    EXPECT_EQ(r.rec.log, "H[101]E");
  }
  // A 101 is an upgrade even when the headers are missing.
  std::string bare = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
  auto r = parse(Kind::kResponse, bare + "xyz");
  EXPECT_TRUE(r.upgraded);
  EXPECT_EQ(r.used, bare.size());
}

TEST(Http1Response, RejectsMalformedInput) {
  const std::vector<Bad> cases = {
      {"HTTP/1.1 2000 OK\r\n\r\n", 400, "status code"},
      {"HTTP/1.1 099 OK\r\n\r\n", 400, "status code"},
      {"HTTP/1.1 abc\r\n\r\n", 400, "status code"},
      {"HTTP/1.1200 OK\r\n\r\n", 400, "status line"},
      {"HTTX/1.1 200 OK\r\n\r\n", 400, "status line"},
      {"HTTP/2 200\r\n\r\n", 400, "HTTP version"},
      {"HTTP/2.0 200 OK\r\n\r\n", 400, "version"},
      {"HTTP/1.1 200 OK\x01\r\n\r\n", 400, "reason"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, "not the final"},
      {"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 400, "obs-fold"},
      {"HTTP/1.1 200 OK\nContent-Length: 0\n\n", 400, "bare LF"},
      {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"},
  };
  for (const auto& c : cases) {
    auto r = parse(Kind::kResponse, c.in);
    EXPECT_TRUE(r.failed) << c.in;
    EXPECT_EQ(r.status, c.status) << c.in << " -> " << r.error;
    EXPECT_NE(r.error.find(c.why), std::string::npos) << c.in << " -> " << r.error;
    EXPECT_TRUE(r.rec.responses.empty()) << c.in;
  }
}

// ---- Serializers ----

TEST(Http1Write, RequestHeadRoundTrip) {
  RequestHead head;
  head.method = "POST";
  head.target = "/api/v1?x=1";
  head.version_minor = 0;  // always written as HTTP/1.1
  head.headers.add("Host", "svc.ns:80");
  head.headers.add("Content-Length", "3");
  head.headers.add("X-Empty", "");
  ByteBuf out;
  writeRequestHead(head, out);
  EXPECT_EQ(out.view(),
            "POST /api/v1?x=1 HTTP/1.1\r\nHost: svc.ns:80\r\nContent-Length: 3\r\nX-Empty: "
            "\r\n\r\n");
  out.append("abc");
  auto r = parseRequest(out.view());
  ASSERT_FALSE(r.failed) << r.error;
  ASSERT_EQ(r.rec.requests.size(), 1u);
  const RequestHead& back = r.rec.requests[0];
  EXPECT_EQ(back.method, head.method);
  EXPECT_EQ(back.target, head.target);
  EXPECT_EQ(back.version_minor, 1);
  ASSERT_EQ(back.headers.size(), head.headers.size());
  for (size_t i = 0; i < head.headers.size(); ++i) {
    EXPECT_EQ(back.headers.fields[i].name, head.headers.fields[i].name);
    EXPECT_EQ(back.headers.fields[i].value, head.headers.fields[i].value);
  }
  EXPECT_EQ(r.rec.bodies[0], "abc");
}

TEST(Http1Write, ResponseHeadRoundTrip) {
  ResponseHead head;
  head.status = 503;
  head.headers.add("transfer-encoding", "chunked");
  head.headers.add("Retry-After", "5");
  ByteBuf out;
  writeResponseHead(head, out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\nRetry-After: "
            "5\r\n\r\n");
  writeChunk("hello", out);
  writeChunk("", out);  // nothing: an empty chunk would end the body
  writeChunk(std::string(255, 'x'), out);
  writeLastChunk(out);
  auto r = parse(Kind::kResponse, out.view());
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.used, out.size());
  EXPECT_EQ(r.rec.responses[0].status, 503);
  EXPECT_EQ(r.rec.responses[0].reason, "Service Unavailable");
  EXPECT_EQ(r.rec.bodies[0], "hello" + std::string(255, 'x'));
  EXPECT_EQ(r.rec.ends, 1);
  head.reason = "Custom";
  ByteBuf custom;
  writeResponseHead(head, custom);
  EXPECT_EQ(custom.view().substr(0, 23), "HTTP/1.1 503 Custom\r\ntr");
}

TEST(Http1Write, ChunkFormat) {
  ByteBuf out;
  writeChunk("hello", out);
  EXPECT_EQ(out.view(), "5\r\nhello\r\n");
  out.clear();
  writeChunk(std::string(26, 'a'), out);
  EXPECT_EQ(out.view().substr(0, 4), "1a\r\n");
  EXPECT_EQ(out.size(), 4u + 26u + 2u);
  out.clear();
  writeChunk("", out);
  EXPECT_TRUE(out.empty());
  writeLastChunk(out);
  EXPECT_EQ(out.view(), "0\r\n\r\n");
  out.clear();
  HeaderList t;
  t.add("grpc-status", "0");
  t.add("grpc-message", "ok");
  writeLastChunk(t, out);
  EXPECT_EQ(out.view(), "0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n");
  // Parsed back as the trailers of a chunked body.
  std::string in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  in += out.view();
  auto r = parse(Kind::kResponse, in);
  ASSERT_FALSE(r.failed) << r.error;
  ASSERT_EQ(r.rec.trailers.size(), 1u);
  EXPECT_EQ(*r.rec.trailers[0].get("grpc-message"), "ok");
}

TEST(Http1Write, SimpleResponse) {
  ByteBuf out;
  HeaderList extra;
  extra.add("x-meshlet-flags", "NR");
  writeSimpleResponse(404, "no route\n", true, extra, out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n"
            "x-meshlet-flags: NR\r\nconnection: close\r\n\r\nno route\n");
  auto r = parse(Kind::kResponse, out.view());
  ASSERT_FALSE(r.failed) << r.error;
  EXPECT_EQ(r.rec.bodies[0], "no route\n");
  EXPECT_FALSE(r.rec.responses[0].framing.keep_alive);
  out.clear();
  writeSimpleResponse(503, "", false, {}, out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: "
            "0\r\n\r\n");
  out.clear();
  writeSimpleResponse(204, "ignored", false, {}, out);
  EXPECT_EQ(out.view(), "HTTP/1.1 204 No Content\r\n\r\n");
}

TEST(Http1Write, ReasonPhrases) {
  EXPECT_STREQ(reasonPhrase(200), "OK");
  EXPECT_STREQ(reasonPhrase(404), "Not Found");
  EXPECT_STREQ(reasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_STREQ(reasonPhrase(504), "Gateway Timeout");
  EXPECT_STREQ(reasonPhrase(999), "Unknown");
  for (int s : {100, 101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401,
                403, 404, 405, 408, 409, 413, 414, 415, 429, 431, 500, 501, 502, 503, 504}) {
    EXPECT_STRNE(reasonPhrase(s), "Unknown") << s;
  }
}

// ---- HeaderList ----

TEST(Http1Headers, HeaderList) {
  HeaderList h;
  h.add("Accept", "text/html");
  h.add("X-Id", "1");
  h.add("accept", "application/json");
  EXPECT_EQ(h.size(), 3u);
  EXPECT_TRUE(h.has("ACCEPT"));
  EXPECT_FALSE(h.has("Accept-Encoding"));
  EXPECT_EQ(*h.get("accept"), "text/html");
  EXPECT_EQ(h.get("nope"), nullptr);
  EXPECT_EQ(h.joined("Accept"), "text/html, application/json");
  EXPECT_EQ(h.joined("x-id"), "1");
  EXPECT_FALSE(h.joined("nope").has_value());
  h.set("ACCEPT", "*/*");  // every Accept becomes one, where the first was
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.fields[0].name, "Accept");
  EXPECT_EQ(h.fields[0].value, "*/*");
  EXPECT_EQ(h.fields[1].name, "X-Id");
  h.set("New", "v");
  EXPECT_EQ(h.fields.back().name, "New");
  h.remove("x-ID");
  EXPECT_FALSE(h.has("X-Id"));
  EXPECT_EQ(h.size(), 2u);
  EXPECT_TRUE(equalsIgnoreCase("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(equalsIgnoreCase("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(equalsIgnoreCase("a", "b"));
  EXPECT_TRUE(equalsIgnoreCase("", ""));
}

}  // namespace
}  // namespace meshlet::l7
