// The HTTP/2 <-> HTTP/1.1 field conversions of the h2 bridge (the bridge itself is exercised
// end to end with real clients and servers in tests/e2e/h2_test.cc).
#include "agent/l7/h2_bridge.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/l7/http_proxy.h"

namespace meshlet::l7 {
namespace {

std::string wire(const RequestHead& h) {
  ByteBuf out;
  writeRequestHead(h, out);
  return std::string(out.view());
}

const std::string kMark = HttpSession::kDownstreamH2Header;

TEST(H2Bridge, RequestFromH2) {
  std::vector<H2Field> f = {{":method", "POST"},
                            {":scheme", "http"},
                            {":authority", "echo.default.svc:8080"},
                            {":path", "/pkg.Svc/Call?x=1"},
                            {"content-type", "application/grpc"},
                            {"te", "trailers"},
                            {"cookie", "a=1"},
                            {"cookie", "b=2"},
                            {"connection", "keep-alive"},
                            {kMark, "1"}};  // a client's own mark is not kept
  RequestHead h = h1RequestFromH2(f, true, kMark);
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/pkg.Svc/Call?x=1");
  EXPECT_EQ(h.authority(), "echo.default.svc:8080");
  EXPECT_TRUE(h.framing.chunked);
  EXPECT_EQ(*h.headers.get("cookie"), "a=1; b=2");
  EXPECT_FALSE(h.headers.has("connection"));
  EXPECT_EQ(*h.headers.get("te"), "trailers");  // the session drops it as hop-by-hop
  EXPECT_EQ(wire(h),
            "POST /pkg.Svc/Call?x=1 HTTP/1.1\r\nhost: echo.default.svc:8080\r\n"
            "content-type: application/grpc\r\nte: trailers\r\ncookie: a=1; b=2\r\n"
            "transfer-encoding: chunked\r\nx-meshlet-downstream-h2: 1\r\n\r\n");
  // No body: no framing fields; a content-length is kept as is; Host when no :authority.
  h = h1RequestFromH2({{":method", "GET"}, {":path", "/"}, {"host", "h:1"}}, false, kMark);
  EXPECT_EQ(h.authority(), "h:1");
  EXPECT_FALSE(h.framing.chunked);
  EXPECT_FALSE(h.headers.has("transfer-encoding"));
  h = h1RequestFromH2(
      {{":method", "PUT"}, {":path", "/u"}, {":authority", "a"}, {"content-length", "3"}}, true,
      "");
  EXPECT_FALSE(h.framing.chunked);
  EXPECT_EQ(*h.headers.get("content-length"), "3");
  EXPECT_FALSE(h.headers.has(kMark));
}

TEST(H2Bridge, ResponseToH2) {
  ResponseHead r;
  r.status = 200;
  r.headers.add("Content-Type", "application/grpc");
  r.headers.add("Transfer-Encoding", "chunked");
  r.headers.add("Connection", "keep-alive");
  r.headers.add("Content-Length", "12");
  r.headers.add("X-Custom", "v");
  auto f = h2ResponseFromH1(r, false);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].name, ":status");
  EXPECT_EQ(f[0].value, "200");
  EXPECT_EQ(f[1].name, "content-type");
  EXPECT_EQ(f[2].name, "x-custom");
  f = h2ResponseFromH1(r, true);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[2].name, "content-length");
}

TEST(H2Bridge, RequestToH2) {
  RequestHead h;
  h.method = "POST";
  h.target = "/pkg.Svc/Call";
  h.headers.add("Host", "echo:50051");
  h.headers.add("Content-Type", "application/grpc+proto");
  h.headers.add("Transfer-Encoding", "chunked");
  h.headers.add(kMark, "1");
  h.headers.add("X-Request-Id", "abc");
  auto f = h2RequestFromH1(h);
  std::vector<std::string> got;
  for (const auto& x : f) got.push_back(x.name + "=" + x.value);
  EXPECT_EQ(got, (std::vector<std::string>{
                     ":method=POST", ":scheme=http", ":authority=echo:50051", ":path=/pkg.Svc/Call",
                     "content-type=application/grpc+proto", "x-request-id=abc", "te=trailers"}));
  h.headers.remove("content-type");
  f = h2RequestFromH1(h);
  EXPECT_EQ(f.back().name, "x-request-id");  // te: trailers only for gRPC
}

}  // namespace
}  // namespace meshlet::l7
