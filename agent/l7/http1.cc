#include "agent/l7/http1.h"

#include <http_parser.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdio>
#include <string>
#include <utility>

// Two parsers read every head. HeadScanner, below, is strict (RFC 9112 grammar: CRLF line ends,
// token field names, no obs-fold, no CTLs in values) and builds the head that is handed out.
// Debian's http-parser is built non-strict (it takes "Ho st:" as a field name, any byte after a
// CR as its LF, a new message after "connection: close"), so it only sees a head once the
// scanner has read all of it and found it valid (a head split across feeds is kept until then:
// at most ParseLimits::max_head_bytes), and it does the framing (Content-Length, chunked,
// keep-alive, upgrade) and decodes the body. Errors therefore do not depend on how the bytes
// were split, and no event leaves for a head that breaks a rule or a limit.
//
// Bare LF line ends are rejected in heads (RFC 9112 2.2 allows either; http-parser itself
// rejects them in chunk-size lines, and one rule for the whole message is easier to reason
// about when proxy and server must agree on where a message ends).

namespace meshlet::l7 {
namespace {

constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool isTchar(unsigned char c) { return kTchar[c]; }
bool isDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool isAlpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool isVchar(unsigned char c) { return c > 0x20 && c < 0x7f; }
// field-vchar / obs-text / SP / HTAB (RFC 9110 5.5).
bool isFieldChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }
// What a host[:port] may hold (RFC 3986 reg-name, IP-literal, port).
bool isHostChar(unsigned char c) {
  return isAlpha(c) || isDigit(c) ||
         std::string_view("-._~%!$&'()*+,;=:[]").find(c) != std::string_view::npos;
}
bool isHost(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return isHostChar(c); });
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "scheme://authority[/path][?query]": the authority and what follows it.
struct AbsoluteForm {
  std::string_view authority;
  std::string_view rest;
};
std::optional<AbsoluteForm> splitAbsolute(std::string_view t) {
  if (t.empty() || !isAlpha(t[0])) return std::nullopt;
  size_t i = 1;
  while (i < t.size() &&
         (isAlpha(t[i]) || isDigit(t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.')) {
    ++i;
  }
  if (t.substr(i, 3) != "://") return std::nullopt;
  size_t begin = i + 3;
  size_t end = std::min(t.find_first_of("/?#", begin), t.size());
  return AbsoluteForm{t.substr(begin, end - begin), t.substr(end)};
}

// CONNECT's authority-form: host ":" port.
bool isAuthorityForm(std::string_view t) {
  size_t colon = t.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view port = t.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return isDigit(c); })) {
    return false;
  }
  return isHost(t.substr(0, colon));
}

// The request or status line and the fields of one head, read byte by byte as they arrive.
class HeadScanner {
 public:
  HeadScanner(bool request, const ParseLimits& limits) : request_(request), limits_(limits) {}

  void reset() {
    state_ = State::kLeading;
    trailers_ = false;
    bytes_ = 0;
    pos_ = 0;
    method.clear();
    target.clear();
    reason.clear();
    headers.fields.clear();
    major = minor = status = 0;
  }

  // Reads from `data` up to the end of the head; returns how many bytes it read. On an error
  // `status_` and `error_` say why (the scanner stays failed).
  size_t scan(const char* data, size_t n) {
    size_t i = 0;
    while (i < n && state_ != State::kDone && !failed()) {
      if (++bytes_ > limits_.max_head_bytes) {
        fail(431, std::string(trailers_ ? "trailers" : "head") + " larger than " +
                      std::to_string(limits_.max_head_bytes) + " bytes");
        break;
      }
      step(static_cast<unsigned char>(data[i++]));
    }
    return i;
  }

  bool done() const { return state_ == State::kDone; }
  bool started() const { return state_ != State::kLeading; }
  // Reads a chunked body's trailer section: field lines and an empty line.
  void startTrailers() {
    reset();
    trailers_ = true;
    state_ = State::kFieldStart;
  }
  bool failed() const { return status_ != 0; }
  int errorStatus() const { return status_; }
  const std::string& error() const { return error_; }

  // The head so far.
  std::string method;  // requests
  std::string target;
  std::string reason;  // responses
  int major = 0, minor = 0, status = 0;
  HeaderList headers;

 private:
  enum class State {
    kLeading,  // empty lines before the start line
    kMethod,   // request line
    kTarget,
    kVersion,  // both; pos_ indexes "HTTP/d.d"
    kStatus,   // status line; pos_ counts digits
    kReason,
    kLineLf,      // after the start line's CR
    kFieldStart,  // first byte of a field line, or the CR of the empty line
    kName,
    kValueWs,  // OWS before the value
    kValue,
    kFieldLf,  // after a field line's CR
    kEndLf,    // after the empty line's CR
    kDone,
  };

  void fail(int status, std::string why) {
    status_ = status;
    error_ = std::move(why);
  }

  void step(unsigned char c) {
    if (c == '\n' && state_ != State::kLeading && state_ != State::kLineLf &&
        state_ != State::kFieldLf && state_ != State::kEndLf) {
      return fail(400, "bare LF line ending (CRLF required)");
    }
    if (c == 0) {
      return fail(400, state_ == State::kValue || state_ == State::kValueWs
                           ? "NUL in header value"
                           : "NUL in message head");
    }
    switch (state_) {
      case State::kLeading:
        if (c == '\r' || c == '\n') return;
        if (request_) {
          if (!isTchar(c)) return fail(400, "invalid request line");
          method.push_back(static_cast<char>(c));
          state_ = State::kMethod;
        } else {
          if (c != 'H') return fail(400, "invalid status line");
          state_ = State::kVersion;
          pos_ = 1;
        }
        return;
      case State::kMethod:
        if (isTchar(c)) {
          method.push_back(static_cast<char>(c));
        } else if (c == ' ') {
          state_ = State::kTarget;
        } else {
          fail(400, "invalid method");
        }
        return;
      case State::kTarget:
        if (isVchar(c)) {
          target.push_back(static_cast<char>(c));
        } else if (c == ' ' && !target.empty()) {
          state_ = State::kVersion;
          pos_ = 0;
        } else {
          fail(400, "invalid request target");
        }
        return;
      case State::kVersion:
        return version(c);
      case State::kStatus:
        if (pos_ < 3) {
          if (!isDigit(c) || (pos_ == 0 && c == '0')) return fail(400, "invalid status code");
          status = status * 10 + (c - '0');
          ++pos_;
        } else if (c == ' ') {
          state_ = State::kReason;
        } else if (c == '\r') {
          state_ = State::kLineLf;
        } else {
          fail(400, "invalid status code");
        }
        return;
      case State::kReason:
        if (c == '\r') {
          state_ = State::kLineLf;
        } else if (isFieldChar(c)) {
          reason.push_back(static_cast<char>(c));
        } else {
          fail(400, "invalid reason phrase");
        }
        return;
      case State::kLineLf:
      case State::kFieldLf:
        if (c != '\n') return fail(400, "CR without LF");
        state_ = State::kFieldStart;
        return;
      case State::kFieldStart:
        if (c == '\r') {
          state_ = State::kEndLf;
        } else if (isTchar(c)) {
          if (headers.size() >= limits_.max_fields) {
            return fail(431, "more than " + std::to_string(limits_.max_fields) +
                                 (trailers_ ? " trailer fields" : " header fields"));
          }
          headers.fields.push_back({std::string(1, static_cast<char>(c)), {}});
          state_ = State::kName;
        } else if (c == ' ' || c == '\t') {
          fail(400, headers.fields.empty() ? "whitespace before the first header field"
                                           : "obs-fold line folding in a header field");
        } else {
          fail(400, "invalid header name");
        }
        return;
      case State::kName:
        if (isTchar(c)) {
          headers.fields.back().name.push_back(static_cast<char>(c));
        } else if (c == ':') {
          state_ = State::kValueWs;
        } else if (c == '\r') {
          fail(400, "header line without a colon");
        } else {
          fail(400, "invalid header name");
        }
        return;
      case State::kValueWs:
        if (c == ' ' || c == '\t') return;
        state_ = State::kValue;
        [[fallthrough]];
      case State::kValue:
        if (c == '\r') {
          std::string& value = headers.fields.back().value;
          while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
          state_ = State::kFieldLf;
        } else if (isFieldChar(c)) {
          headers.fields.back().value.push_back(static_cast<char>(c));
        } else {
          fail(400, "invalid header value");
        }
        return;
      case State::kEndLf:
        if (c != '\n') return fail(400, "CR without LF");
        state_ = State::kDone;
        return;
      case State::kDone:
        return;
    }
  }

  void version(unsigned char c) {
    static constexpr std::string_view kHttp = "HTTP/";
    if (pos_ < kHttp.size()) {
      if (c != kHttp[pos_])
        return fail(400, request_ ? "invalid HTTP version" : "invalid status line");
    } else if (pos_ == 5 || pos_ == 7) {
      if (!isDigit(c)) return fail(400, "invalid HTTP version");
      (pos_ == 5 ? major : minor) = c - '0';
    } else if (pos_ == 6) {
      if (c != '.') return fail(400, "invalid HTTP version");
    } else if (request_) {
      if (c != '\r') return fail(400, "invalid HTTP version");
      state_ = State::kLineLf;
    } else {
      if (c != ' ') return fail(400, "invalid status line");
      state_ = State::kStatus;
      pos_ = 0;
      return;
    }
    ++pos_;
  }

  bool request_;
  bool trailers_ = false;
  const ParseLimits& limits_;
  State state_ = State::kLeading;
  size_t bytes_ = 0;
  size_t pos_ = 0;
  int status_ = 0;
  std::string error_;
};

// The framing of a chunked body (RFC 9112 7.1), checked strictly ahead of http-parser, which
// (built non-strict) takes any two bytes after a chunk's data for its CRLF and a bare LF in
// trailers. Chunk data is skipped, not kept; trailers are read by a HeadScanner and kept in
// trailer_fields until the message ends.
class ChunkScanner {
 public:
  explicit ChunkScanner(const ParseLimits& limits) : limits_(limits), trailers_(true, limits) {}

  void reset() {
    state_ = State::kSize;
    size_ = 0;
    digits_ = 0;
    line_ = 0;
    trailer_fields.fields.clear();
  }

  // Reads from `data` up to the end of the body; returns how many bytes it read.
  size_t scan(const char* data, size_t n) {
    size_t i = 0;
    while (i < n && state_ != State::kDone && !failed()) {
      if (state_ == State::kData) {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - i));
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDataCr;
        continue;
      }
      if (state_ == State::kTrailers) {
        i += trailers_.scan(data + i, n - i);
        if (trailers_.failed()) {
          fail(trailers_.errorStatus(), trailers_.error());
        } else if (trailers_.done()) {
          trailer_fields = std::move(trailers_.headers);
          trailers_.reset();
          state_ = State::kDone;
        }
        continue;
      }
      if (++line_ > limits_.max_head_bytes) {
        fail(400,
             "chunk-size line longer than " + std::to_string(limits_.max_head_bytes) + " bytes");
        break;
      }
      step(static_cast<unsigned char>(data[i++]));
    }
    return i;
  }

  bool done() const { return state_ == State::kDone; }
  bool failed() const { return status_ != 0; }
  int errorStatus() const { return status_; }
  const std::string& error() const { return error_; }

  HeaderList trailer_fields;  // of the body just scanned (once done())

 private:
  enum class State { kSize, kExt, kSizeLf, kData, kDataCr, kDataLf, kTrailers, kDone };

  void fail(int status, std::string why) {
    status_ = status;
    error_ = std::move(why);
  }

  static int hex(unsigned char c) {
    if (isDigit(c)) return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
  }

  void step(unsigned char c) {
    switch (state_) {
      case State::kSize:
        if (int h = hex(c); h >= 0) {
          if (size_ > (UINT64_MAX >> 4)) return fail(400, "invalid chunk size");
          size_ = size_ * 16 + static_cast<uint64_t>(h);
          ++digits_;
        } else if (digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
          state_ = State::kExt;
        } else if (digits_ > 0 && c == '\r') {
          state_ = State::kSizeLf;
        } else {
          fail(400, "invalid chunk size");
        }
        return;
      case State::kExt:
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (!isFieldChar(c)) {
          fail(400, "invalid chunk extension");
        }
        return;
      case State::kSizeLf:
        if (c != '\n') return fail(400, "CR without LF in a chunked body");
        if (size_ == 0) {
          state_ = State::kTrailers;
          trailers_.startTrailers();
        } else {
          remaining_ = size_;
          state_ = State::kData;
        }
        return;
      case State::kDataCr:
        if (c != '\r') return fail(400, "chunk data not followed by CRLF");
        state_ = State::kDataLf;
        return;
      case State::kDataLf:
        if (c != '\n') return fail(400, "chunk data not followed by CRLF");
        reset();
        return;
      case State::kData:
      case State::kTrailers:
      case State::kDone:
        return;
    }
  }

  const ParseLimits& limits_;
  HeadScanner trailers_;
  State state_ = State::kSize;
  uint64_t size_ = 0;
  uint64_t remaining_ = 0;
  int digits_ = 0;
  size_t line_ = 0;
  int status_ = 0;
  std::string error_;
};

std::string errnoMessage(http_errno e, size_t max_head_bytes) {
  switch (e) {
    case HPE_HEADER_OVERFLOW:
      return "head or trailers larger than " +
             std::to_string(std::min<size_t>(max_head_bytes, HTTP_MAX_HEADER_SIZE)) + " bytes";
    case HPE_INVALID_METHOD:
      return "unknown method";
    case HPE_INVALID_CONTENT_LENGTH:
      return "invalid Content-Length";
    case HPE_UNEXPECTED_CONTENT_LENGTH:
      return "both Transfer-Encoding and Content-Length, or more than one Content-Length";
    case HPE_INVALID_TRANSFER_ENCODING:
      return "Transfer-Encoding does not end in chunked";
    case HPE_INVALID_CHUNK_SIZE:
      return "invalid chunk size";
    case HPE_INVALID_EOF_STATE:
      return "connection closed before the message ended";
    default:
      return std::string("malformed message: ") + http_errno_description(e);
  }
}

}  // namespace

struct Http1Parser::Impl {
  Impl(Http1Parser& owner, Kind k, Http1Events& ev, ParseLimits lim)
      : self(owner),
        events(ev),
        limits(lim),
        kind(k),
        scanner(k == Kind::kRequest, limits),
        chunks(limits) {
    http_parser_init(&hp, k == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE);
    hp.data = this;
  }

  Http1Parser& self;
  Http1Events& events;
  ParseLimits limits;
  Kind kind;
  http_parser hp;
  HeadScanner scanner;
  ChunkScanner chunks;
  bool te_present = false;        // validateHead() found Transfer-Encoding
  bool chunked_expected = false;  // and read chunked as its final coding
  bool head_completed = false;    // on_headers_complete ran during this execute
  bool in_head_slice = false;     // executing the bytes the scanner found to be the head
  bool no_body_next = false;      // expectNoBody
  bool last_final = false;        // the last message was a request or a final (>= 200) response
  bool last_keep_alive = true;
  bool closed = false;        // the last message ended the connection: only CR/LF may follow
  bool finished = false;      // finish() ran
  bool chunked_body = false;  // the message in progress is chunked: chunks checks its framing
  std::string pending;        // the start of a head that arrived in more than one feed()
  // The head http-parser is reading, and whether its message ended with it (no body).
  std::optional<RequestHead> request;
  std::optional<ResponseHead> response;
  bool end_deferred = false;

  bool isRequest() const { return kind == Kind::kRequest; }

  // Records the first error; returns -1 for the http-parser callback that hit it.
  int fail(int status, std::string why) {
    if (!self.failed()) {
      self.error_ = std::move(why);
      self.error_status_ = status;
    }
    return -1;
  }

  bool reject(int status, std::string why) {
    fail(status, std::move(why));
    return false;
  }

  size_t execute(const char* data, size_t n) {
    size_t used = http_parser_execute(&hp, &settings(), data, n);
    auto e = HTTP_PARSER_ERRNO(&hp);
    if (e != HPE_OK && e != HPE_PAUSED) {
      // http-parser reports a chunk size that overflows as an invalid Content-Length.
      if (e == HPE_INVALID_CONTENT_LENGTH && self.in_message_) e = HPE_INVALID_CHUNK_SIZE;
      fail(e == HPE_HEADER_OVERFLOW  ? 431
           : e == HPE_INVALID_METHOD ? 501
                                     : 400,
           errnoMessage(e, limits.max_head_bytes));
    }
    return used;
  }

  // The rules http-parser does not check, or checks only when built strict; runs on a whole head
  // before http-parser sees its end.
  bool validateHead() {
    const HeadScanner& h = scanner;
    if (isRequest() && h.method == "PRI" && h.target == "*" && h.major == 2) {
      return reject(400, "HTTP/2 connection preface on an HTTP/1 connection");
    }
    if (h.major != 1) {
      return reject(isRequest() ? 505 : 400, "unsupported HTTP version " + std::to_string(h.major) +
                                                 "." + std::to_string(h.minor));
    }
    const std::string* content_length = nullptr;
    const std::string* host = nullptr;
    int hosts = 0;
    std::vector<std::string_view> codings;
    te_present = false;
    for (const auto& f : h.headers.fields) {
      if (equalsIgnoreCase(f.name, "content-length")) {
        if (content_length) return reject(400, "more than one Content-Length");
        content_length = &f.value;
        if (f.value.empty() ||
            !std::all_of(f.value.begin(), f.value.end(), [](char c) { return isDigit(c); })) {
          return reject(400, "invalid Content-Length");
        }
      } else if (equalsIgnoreCase(f.name, "transfer-encoding")) {
        te_present = true;
        std::string_view list = f.value;
        while (!list.empty()) {
          size_t comma = std::min(list.find(','), list.size());
          std::string_view coding = trimOws(list.substr(0, comma));
          list.remove_prefix(std::min(comma + 1, list.size()));
          if (!coding.empty()) codings.push_back(coding);
        }
      } else if (equalsIgnoreCase(f.name, "host")) {
        ++hosts;
        host = &f.value;
      }
    }
    chunked_expected = false;
    if (te_present) {
      if (h.minor == 0) return reject(400, "Transfer-Encoding in an HTTP/1.0 message");
      if (content_length) {
        return reject(400, "both Transfer-Encoding and Content-Length");
      }
      if (codings.empty()) return reject(400, "empty Transfer-Encoding");
      for (size_t i = 0; i < codings.size(); ++i) {
        std::string_view name = trimOws(codings[i].substr(0, codings[i].find(';')));
        if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
              return isTchar(static_cast<unsigned char>(c));
            })) {
          return reject(400, "invalid Transfer-Encoding");
        }
        if (equalsIgnoreCase(name, "chunked")) {
          if (i + 1 != codings.size()) {
            return reject(400, "chunked is not the final transfer coding");
          }
          if (name.size() != codings[i].size()) {
            return reject(400, "invalid Transfer-Encoding");  // chunked takes no parameters
          }
          chunked_expected = true;
        }
      }
      if (isRequest() && !chunked_expected) {
        return reject(400, "Transfer-Encoding does not end in chunked");
      }
    }
    if (!isRequest()) return true;

    if (hosts > 1) return reject(400, "more than one Host header");
    if (hosts == 0 && h.minor >= 1) return reject(400, "missing Host header");
    if (host && !isHost(*host)) return reject(400, "invalid Host header");
    const std::string& t = h.target;
    if (t.find('#') != std::string::npos) return reject(400, "fragment in request target");
    if (h.method == "CONNECT") {
      if (!isAuthorityForm(t)) return reject(400, "CONNECT target is not host:port");
    } else if (t == "*") {
      if (h.method != "OPTIONS") return reject(400, "\"*\" target on a method but OPTIONS");
    } else if (t[0] != '/') {
      auto abs = splitAbsolute(t);
      if (!abs) return reject(400, "invalid request target");
      if (abs->authority.empty() || !isHost(abs->authority) ||
          abs->authority.find('@') != std::string_view::npos) {
        return reject(400, "invalid authority in the request target");
      }
      if (host && !equalsIgnoreCase(*host, abs->authority)) {
        return reject(400, "Host header does not match the request target");
      }
    }
    return true;
  }

  int headersComplete() {
    if (!scanner.done()) return fail(400, "malformed message head");  // parsers disagree
    head_completed = true;
    if (!te_present) hp.uses_transfer_encoding = 0;  // see fieldData()
    int ret = 0;
    int status = 0;
    if (isRequest()) {
      // RFC 9110 7.8: an Upgrade in an HTTP/1.0 request is ignored.
      if (hp.upgrade && hp.method != HTTP_CONNECT && scanner.minor == 0) hp.upgrade = 0;
    } else {
      status = hp.status_code;
      if (status == 101) {
        ret = 2;  // no body, and what follows is the new protocol's
        hp.upgrade = 1;
      } else if (status < 200 || status == 204 || status == 304 || no_body_next) {
        ret = 1;  // no body whatever the headers say
      }
      if (status >= 200) no_body_next = false;
    }
    if (ret) hp.flags |= F_SKIPBODY;
    if (((hp.flags & F_CHUNKED) != 0) != chunked_expected) {
      return fail(400, "ambiguous Transfer-Encoding");
    }

    Framing framing;
    bool has_length = (hp.flags & F_CONTENTLENGTH) != 0;
    framing.chunked = chunked_expected && !ret;
    framing.upgrade = hp.upgrade;
    bool body_before_upgrade =
        framing.chunked || (has_length && hp.content_length > 0 && hp.content_length != ULLONG_MAX);
    if (ret || (hp.upgrade && (hp.method == HTTP_CONNECT || !body_before_upgrade))) {
      framing.content_length = 0;
    } else if (framing.chunked) {
      framing.content_length.reset();
    } else if (has_length) {
      framing.content_length = hp.content_length;
    } else if (isRequest()) {
      framing.content_length = 0;
    }  // else a response whose body runs to the close
    framing.keep_alive = http_should_keep_alive(&hp) != 0;
    last_keep_alive = framing.keep_alive;
    last_final = isRequest() || status >= 200;
    chunked_body = framing.chunked;

    // The head is handed out once http-parser has taken the whole of it (emitHead()): it can
    // still refuse it after this callback.
    if (isRequest()) {
      RequestHead& head = request.emplace();
      head.method = std::move(scanner.method);
      head.target = std::move(scanner.target);
      head.version_minor = scanner.minor;
      head.headers = std::move(scanner.headers);
      head.framing = framing;
      const std::string* expect = head.headers.get("expect");
      head.expect_continue =
          head.version_minor >= 1 && expect && equalsIgnoreCase(*expect, "100-continue");
    } else {
      ResponseHead& head = response.emplace();
      head.status = status;
      head.reason = std::move(scanner.reason);
      head.version_minor = scanner.minor;
      head.headers = std::move(scanner.headers);
      head.framing = framing;
    }
    return ret;
  }

  void emitHead() {
    self.in_message_ = true;
    chunks.reset();
    if (request) {
      RequestHead head = std::move(*request);
      request.reset();
      events.onRequestHead(std::move(head));
    } else if (response) {
      ResponseHead head = std::move(*response);
      response.reset();
      events.onResponseHead(std::move(head));
    }
  }

  int messageComplete() {
    if (in_head_slice) {
      end_deferred = true;  // a message without a body: ends after emitHead()
    } else {
      endMessage();
    }
    http_parser_pause(&hp, 1);  // one message per feed()
    return 0;
  }

  void endMessage() {
    self.in_message_ = false;
    scanner.reset();
    if (hp.upgrade) {
      self.upgraded_ = true;
    } else if (last_final && !last_keep_alive) {
      closed = true;
    }
    if (chunked_body && !chunks.trailer_fields.fields.empty()) {
      events.onTrailers(std::move(chunks.trailer_fields));
      chunks.trailer_fields.fields.clear();
    }
    events.onMessageEnd();
  }

  int body(const char* at, size_t n) {
    if (in_head_slice) return fail(400, "malformed message head");  // parsers disagree
    events.onBody(std::string_view(at, n));
    return 0;
  }

  // The scanners have the fields (and check and drop trailers): this is only for a bug.
  int fieldData() {
    // http-parser 2.9.4 marks a message as using Transfer-Encoding for any field name that
    // starts with it ("Transfer-Encoding-X"); validateHead() knows whether there is a real one.
    if (!self.in_message_ && !te_present) hp.uses_transfer_encoding = 0;
    return 0;
  }

  static Impl& of(http_parser* p) { return *static_cast<Impl*>(p->data); }
  static const http_parser_settings& settings() {
    static const http_parser_settings s = [] {
      http_parser_settings s;
      http_parser_settings_init(&s);
      s.on_headers_complete = [](http_parser* p) { return of(p).headersComplete(); };
      s.on_body = [](http_parser* p, const char* at, size_t n) { return of(p).body(at, n); };
      s.on_message_complete = [](http_parser* p) { return of(p).messageComplete(); };
      s.on_header_field = [](http_parser* p, const char*, size_t) { return of(p).fieldData(); };
      s.on_header_value = [](http_parser* p, const char*, size_t) { return of(p).fieldData(); };
      return s;
    }();
    return s;
  }
};

Http1Parser::Http1Parser(Kind kind, Http1Events& events, ParseLimits limits)
    : impl_(new Impl(*this, kind, events, limits)) {}

Http1Parser::~Http1Parser() { delete impl_; }

void Http1Parser::expectNoBody(bool no_body) { impl_->no_body_next = no_body; }

size_t Http1Parser::feed(const char* data, size_t n) {
  Impl& m = *impl_;
  if (failed() || upgraded_ || m.finished || n == 0) return 0;
  if (HTTP_PARSER_ERRNO(&m.hp) == HPE_PAUSED) http_parser_pause(&m.hp, 0);
  size_t used = 0;
  if (!in_message_) {
    if (m.closed) {
      // After "connection: close" (or an HTTP/1.0 message without keep-alive) nothing may follow
      // but the stray CRLFs some clients send after a body.
      while (used < n && (data[used] == '\r' || data[used] == '\n')) ++used;
      if (used < n) m.fail(400, "data after the last message of the connection");
      return used;
    }
    size_t head = m.scanner.scan(data, n);
    if (m.scanner.failed()) {
      m.fail(m.scanner.errorStatus(), m.scanner.error());
      return 0;
    }
    if (!m.scanner.done()) {
      m.pending.append(data, n);  // http-parser reads a head only once it is whole and valid
      return n;
    }
    if (!m.validateHead()) return 0;
    std::string_view slice(data, head);
    if (!m.pending.empty()) {
      m.pending.append(data, head);
      slice = m.pending;
    }
    m.head_completed = m.end_deferred = false;
    m.in_head_slice = true;
    size_t parsed = m.execute(slice.data(), slice.size());
    m.in_head_slice = false;
    m.pending.clear();
    if (m.pending.capacity() > 4096) std::string().swap(m.pending);
    if (failed()) return 0;
    if (!m.head_completed || parsed != slice.size()) {
      m.fail(400, "malformed message head");  // http-parser and the scanner disagree
      return 0;
    }
    m.emitHead();
    if (m.end_deferred) m.endMessage();
    used = head;
    if (!in_message_ || upgraded_) return used;  // a message without a body, or an upgrade
  }
  if (used == n) return used;  // (executing 0 bytes would tell http-parser the peer closed)
  const char* body = data + used;
  size_t avail = n - used;
  if (!m.chunked_body) return used + m.execute(body, avail);
  size_t framed = m.chunks.scan(body, avail);
  if (m.chunks.failed()) {
    m.fail(m.chunks.errorStatus(), m.chunks.error());
    return used;
  }
  if (framed == 0) return used;
  bool ends = m.chunks.done();
  size_t parsed = m.execute(body, framed);
  if (!failed() && (parsed != framed || ends == in_message_)) {
    m.fail(400, "malformed chunked body");  // http-parser and the chunk scanner disagree
  }
  return used + parsed;
}

void Http1Parser::finish() {
  Impl& m = *impl_;
  if (failed() || upgraded_ || m.finished) return;
  m.finished = true;
  if (HTTP_PARSER_ERRNO(&m.hp) == HPE_PAUSED) http_parser_pause(&m.hp, 0);
  if (!in_message_ && m.scanner.started()) {
    m.fail(400, "connection closed in the middle of a message head");
    return;
  }
  static const char kNothing[1] = {0};
  m.execute(kNothing, 0);
}

// ---- HeaderList ----

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

const std::string* HeaderList::get(std::string_view name) const {
  for (const auto& f : fields) {
    if (equalsIgnoreCase(f.name, name)) return &f.value;
  }
  return nullptr;
}

std::optional<std::string> HeaderList::joined(std::string_view name) const {
  std::optional<std::string> out;
  for (const auto& f : fields) {
    if (!equalsIgnoreCase(f.name, name)) continue;
    if (out) {
      out->append(", ").append(f.value);
    } else {
      out = f.value;
    }
  }
  return out;
}

void HeaderList::set(std::string_view name, std::string_view value) {
  bool found = false;
  std::erase_if(fields, [&](Field& f) {
    if (!equalsIgnoreCase(f.name, name)) return false;
    if (found) return true;
    found = true;
    f.value = std::string(value);
    return false;
  });
  if (!found) add(name, value);
}

void HeaderList::add(std::string_view name, std::string_view value) {
  fields.push_back({std::string(name), std::string(value)});
}

void HeaderList::remove(std::string_view name) {
  std::erase_if(fields, [&](const Field& f) { return equalsIgnoreCase(f.name, name); });
}

// ---- RequestHead ----

std::string_view RequestHead::path() const {
  std::string_view t = target;
  if (auto abs = splitAbsolute(t)) {
    std::string_view p = abs->rest.substr(0, abs->rest.find('?'));
    return p.empty() ? std::string_view("/") : p;
  }
  return t.substr(0, t.find('?'));
}

std::string_view RequestHead::query() const {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

std::string RequestHead::authority() const {
  if (method == "CONNECT") return target;
  if (const std::string* host = headers.get("host")) return *host;
  if (auto abs = splitAbsolute(target)) return std::string(abs->authority);
  return "";
}

// ---- Serializers ----

namespace {

void appendFields(const HeaderList& headers, ByteBuf& out) {
  for (const auto& f : headers.fields) {
    out.append(f.name);
    out.append(": ");
    out.append(f.value);
    out.append("\r\n");
  }
}

void appendStatusLine(int status, std::string_view reason, ByteBuf& out) {
  char line[32];
  int n = std::snprintf(line, sizeof line, "HTTP/1.1 %03d ", status);
  out.append(line, static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof line) - 1)));
  out.append(reason.empty() ? std::string_view(reasonPhrase(status)) : reason);
  out.append("\r\n");
}

}  // namespace

void writeRequestHead(const RequestHead& head, ByteBuf& out) {
  out.append(head.method);
  out.append(" ");
  out.append(head.target);
  out.append(" HTTP/1.1\r\n");
  appendFields(head.headers, out);
  out.append("\r\n");
}

void writeResponseHead(const ResponseHead& head, ByteBuf& out) {
  appendStatusLine(head.status, head.reason, out);
  appendFields(head.headers, out);
  out.append("\r\n");
}

void writeChunk(std::string_view bytes, ByteBuf& out) {
  if (bytes.empty()) return;
  char size[24];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
  out.append(size, static_cast<size_t>(n));
  out.append(bytes);
  out.append("\r\n");
}

void writeLastChunk(ByteBuf& out) { out.append("0\r\n\r\n"); }

void writeLastChunk(const HeaderList& trailers, ByteBuf& out) {
  out.append("0\r\n");
  appendFields(trailers, out);
  out.append("\r\n");
}

const char* reasonPhrase(int status) {
  static constexpr std::pair<int, const char*> kPhrases[] = {
      {100, "Continue"},
      {101, "Switching Protocols"},
      {200, "OK"},
      {201, "Created"},
      {202, "Accepted"},
      {204, "No Content"},
      {206, "Partial Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {303, "See Other"},
      {304, "Not Modified"},
      {307, "Temporary Redirect"},
      {308, "Permanent Redirect"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {410, "Gone"},
      {411, "Length Required"},
      {413, "Content Too Large"},
      {414, "URI Too Long"},
      {415, "Unsupported Media Type"},
      {417, "Expectation Failed"},
      {421, "Misdirected Request"},
      {426, "Upgrade Required"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {505, "HTTP Version Not Supported"},
  };
  for (const auto& [code, phrase] : kPhrases) {
    if (code == status) return phrase;
  }
  return "Unknown";
}

void writeSimpleResponse(int status, std::string_view body, bool close, const HeaderList& extra,
                         ByteBuf& out) {
  appendStatusLine(status, {}, out);
  // 1xx and 204 carry no body and no Content-Length (RFC 9110 8.6), 304 no body.
  bool bodiless = status < 200 || status == 204 || status == 304;
  if (!bodiless) {
    out.append("content-type: text/plain\r\ncontent-length: ");
    out.append(std::to_string(body.size()));
    out.append("\r\n");
  }
  appendFields(extra, out);
  if (close) out.append("connection: close\r\n");
  out.append("\r\n");
  if (!bodiless) out.append(body);
}

}  // namespace meshlet::l7
