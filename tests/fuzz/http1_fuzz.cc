// libFuzzer harness for the HTTP/1.1 codec (agent/l7/http1.h). The first byte picks the parser
// (request/response), small limits or not, expectNoBody, and where the rest is split in two;
// each piece is fed the way the proxy does (again with what is left after every message) until
// the parser fails or upgrades, then finish(). Besides crashes and sanitizer reports it checks
// the contract: feed() never takes more than it was given, events come in order (head, body,
// end), nothing arrives after a failure or an upgrade, every head parsed back from its
// serialization is the same head, and a parser after reset() does what a new one does.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "agent/l7/http1.h"

namespace {

using meshlet::ByteBuf;
using meshlet::l7::Http1Events;
using meshlet::l7::Http1Parser;
using meshlet::l7::ParseLimits;
using meshlet::l7::RequestHead;
using meshlet::l7::ResponseHead;

void check(bool ok) {
  if (!ok) std::abort();
}

bool sameHeaders(const meshlet::l7::HeaderList& a, const meshlet::l7::HeaderList& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a.fields[i].name != b.fields[i].name || a.fields[i].value != b.fields[i].value) {
      return false;
    }
  }
  return true;
}

// Keeps the last head of a reparse.
struct Capture : Http1Events {
  std::optional<RequestHead> request;
  std::optional<ResponseHead> response;
  void onRequestHead(RequestHead&& head) override { request = std::move(head); }
  void onResponseHead(ResponseHead&& head) override { response = std::move(head); }
};

struct Checker : Http1Events {
  Http1Parser* parser = nullptr;
  bool in_message = false;
  uint64_t body_bytes = 0;
  // Totals, to compare runs.
  uint64_t heads = 0, ends = 0, all_body_bytes = 0;

  void onRequestHead(RequestHead&& head) override {
    check(!in_message && !parser->failed() && !parser->upgraded());
    in_message = true;
    body_bytes = 0;
    ++heads;
    (void)head.path();
    (void)head.query();
    (void)head.authority();
    if (head.version_minor != 1) return;  // written back as HTTP/1.1: Host rules differ
    ByteBuf wire;
    meshlet::l7::writeRequestHead(head, wire);
    Capture back;
    Http1Parser p(Http1Parser::Kind::kRequest, back, ParseLimits{1 << 20, 1000});
    p.feed(wire.data(), wire.size());
    check(!p.failed() && back.request);
    check(back.request->method == head.method && back.request->target == head.target);
    check(sameHeaders(back.request->headers, head.headers));
  }
  void onResponseHead(ResponseHead&& head) override {
    check(!in_message && !parser->failed() && !parser->upgraded());
    in_message = true;
    body_bytes = 0;
    ++heads;
    ByteBuf wire;
    meshlet::l7::writeResponseHead(head, wire);
    Capture back;
    Http1Parser p(Http1Parser::Kind::kResponse, back, ParseLimits{1 << 20, 1000});
    p.expectNoBody(true);
    p.feed(wire.data(), wire.size());
    check(!p.failed() && back.response);
    check(back.response->status == head.status &&
          sameHeaders(back.response->headers, head.headers));
  }
  void onBody(std::string_view bytes) override {
    check(in_message && !parser->failed());
    body_bytes += bytes.size();
    all_body_bytes += bytes.size();
  }
  void onMessageEnd() override {
    check(in_message && !parser->failed());
    in_message = false;
    ++ends;
  }
};

void feedAll(Http1Parser& p, const char* data, size_t n) {
  while (n > 0 && !p.failed() && !p.upgraded()) {
    size_t used = p.feed(data, n);
    check(used <= n);
    if (used == 0) break;
    data += used;
    n -= used;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t ctl = data[0];
  const char* rest = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;

  auto kind = (ctl & 1) ? Http1Parser::Kind::kResponse : Http1Parser::Kind::kRequest;
  ParseLimits limits;
  if (ctl & 2) limits = ParseLimits{200, 6};  // reach the 431 paths with small inputs
  Checker events;
  Http1Parser parser(kind, events, limits);
  events.parser = &parser;
  if (ctl & 4) parser.expectNoBody(true);

  size_t split = n * (ctl >> 3) / 31;
  auto run = [&](Http1Parser& p) {
    feedAll(p, rest, split);
    feedAll(p, rest + split, n - split);
    p.finish();
  };
  run(parser);
  check(!parser.failed() || (parser.errorStatus() >= 400 && !parser.error().empty()));
  check(parser.inMessage() == events.in_message || parser.failed());
  check(parser.feed("x", 1) == 0);  // nothing after finish()

  // Reused after reset(): the same as the first time (expectNoBody is not kept).
  Checker first = events;
  std::string first_error = parser.error();
  events = Checker();
  events.parser = &parser;
  parser.reset();
  check(!parser.failed() && !parser.upgraded() && !parser.inMessage());
  if (ctl & 4) parser.expectNoBody(true);
  run(parser);
  check(events.heads == first.heads && events.ends == first.ends &&
        events.all_body_bytes == first.all_body_bytes && parser.error() == first_error);
  return 0;
}
