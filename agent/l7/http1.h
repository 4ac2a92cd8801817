#pragma once
// HTTP/1.1 for the L7 path: an incremental, single-pass request/response parser and the
// serializers the proxy forwards with. Bodies stream through: the parser hands out decoded body
// bytes (chunked framing removed) as they arrive, as views into the bytes it was fed, never a
// whole body. Every input that is not valid HTTP/1.x ends in a parse error with the status the
// proxy answers (400, 431 for oversize heads, 413/501 where they fit) and nothing is buffered
// beyond one head.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/byte_buf.h"

namespace meshlet::l7 {

// Header fields in arrival order; names keep their case, lookups ignore it.
struct HeaderList {
  struct Field {
    std::string name;
    std::string value;
  };
  std::vector<Field> fields;

  // The first field named `name` (case-insensitive), nullptr when absent.
  const std::string* get(std::string_view name) const;
  // Every value of `name`, joined with ", " (RFC 9110 5.3); nullopt when absent.
  std::optional<std::string> joined(std::string_view name) const;
  bool has(std::string_view name) const { return get(name) != nullptr; }
  // Replaces every field named `name` by one with `value` (appended when absent).
  void set(std::string_view name, std::string_view value);
  void add(std::string_view name, std::string_view value);
  void remove(std::string_view name);  // every field of that name
  size_t size() const { return fields.size(); }
};

bool equalsIgnoreCase(std::string_view a, std::string_view b);
// Without the optional whitespace (spaces and tabs) around it (RFC 9110 5.6.3).
std::string_view trimOws(std::string_view s);

// Message framing as the parser found it (RFC 9112 6).
struct Framing {
  bool chunked = false;  // Transfer-Encoding: chunked (the last coding)
  // How many body bytes follow the head: Content-Length, or 0 for a message without a body
  // whatever its headers say (a request with neither Content-Length nor Transfer-Encoding, a
  // CONNECT or upgrade without a body, HEAD/1xx/204/304 responses); nullopt when chunked or when
  // a response's body runs to the close.
  std::optional<uint64_t> content_length;
  bool keep_alive = true;  // the connection may carry another message after this one
  bool upgrade = false;    // Upgrade (request) / 101 Switching Protocols (response), or CONNECT
};

struct RequestHead {
  std::string method;     // as sent ("GET")
  std::string target;     // request-target as sent: "/path?query", "*" or "host:port" (CONNECT)
  int version_minor = 1;  // HTTP/1.<minor>
  HeaderList headers;
  Framing framing;
  bool expect_continue = false;  // Expect: 100-continue

  std::string_view path() const;   // target up to '?' (the whole target when there is none)
  std::string_view query() const;  // after '?', without it ("" when none)
  // Host header, or the authority of an absolute-form target; "" when neither. For CONNECT, the
  // target (host:port). The parser rejects an absolute-form target whose authority differs from
  // the Host header, so the two never disagree.
  std::string authority() const;
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int version_minor = 1;
  HeaderList headers;
  Framing framing;
};

struct ParseLimits {
  size_t max_head_bytes = 64 * 1024;  // request/status line plus fields; more: 431
  size_t max_fields = 100;            // more: 431
};

// Receives what the parser finds. The default implementations ignore the event. Every head is
// followed by its onMessageEnd, an upgrading one too (after its body, if it has one). A chunked
// body's trailer fields, when there are any, come in onTrailers right before onMessageEnd.
class Http1Events {
 public:
  virtual ~Http1Events() = default;
  virtual void onRequestHead(RequestHead&& /*head*/) {}
  virtual void onResponseHead(ResponseHead&& /*head*/) {}
  virtual void onBody(std::string_view /*bytes*/) {}  // decoded body bytes, in order
  virtual void onTrailers(HeaderList&& /*trailers*/) {}
  virtual void onMessageEnd() {}
};

class Http1Parser {
 public:
  enum class Kind { kRequest, kResponse };
  Http1Parser(Kind kind, Http1Events& events, ParseLimits limits = {});
  ~Http1Parser();
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  // Parses from `data` and returns how many bytes it used. It stops early, returning fewer
  // than `n`, after a message ends (onMessageEnd ran: the caller handles one message at a time,
  // which makes pipelining safe; call feed again with the rest), after the head of a message
  // that upgrades the connection (then the remaining bytes are not HTTP: see upgraded()), or on
  // an error (failed()).
  size_t feed(const char* data, size_t n);
  // The peer closed its side: completes a response whose body runs to the close; an
  // unfinished message is an error.
  void finish();

  // Makes the parser ready for a new connection, as if it had just been constructed with the
  // same kind, events and limits (no error, not upgraded, no expectNoBody), keeping the memory
  // it has allocated: one parser can serve connection after connection.
  void reset();

  // Response parsers: the next response answers a HEAD request (or is 1xx/204/304 per status
  // anyway), so it has no body whatever its headers say. Call before feeding that response.
  void expectNoBody(bool no_body);

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }  // why, for logs and the 400 body
  int errorStatus() const { return error_status_; }    // 400, 431, ...
  // The last message upgraded the connection (its head had framing.upgrade and its
  // onMessageEnd ran: right after the head, or after the body of a request that has one):
  // feed() takes no more bytes; what follows is the new protocol's.
  bool upgraded() const { return upgraded_; }
  // Between a head and its onMessageEnd.
  bool inMessage() const { return in_message_; }

 private:
  struct Impl;
  Impl* impl_ = nullptr;
  std::string error_;
  int error_status_ = 0;
  bool upgraded_ = false;
  bool in_message_ = false;
  friend struct Impl;
};

// Serializers. Heads are written as given (framing headers included: the caller sets
// Content-Length / Transfer-Encoding to match how it will send the body).
void writeRequestHead(const RequestHead& head, ByteBuf& out);
void writeResponseHead(const ResponseHead& head, ByteBuf& out);
// One chunk of a chunked body (nothing for an empty `bytes`), and the last chunk.
void writeChunk(std::string_view bytes, ByteBuf& out);
void writeLastChunk(ByteBuf& out);
// The last chunk with a trailer section (`trailers` written as given).
void writeLastChunk(const HeaderList& trailers, ByteBuf& out);
// The standard reason phrase ("Not Found"), "Unknown" for codes it does not know.
const char* reasonPhrase(int status);
// A complete response with a small text body, Content-Length framing; `close` adds
// "connection: close".
void writeSimpleResponse(int status, std::string_view body, bool close, const HeaderList& extra,
                         ByteBuf& out);

}  // namespace meshlet::l7
