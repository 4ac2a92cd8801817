#include "agent/l7/http1.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>
#include <utility>

// One incremental parser reads each message once.
//
// HeadScanner reads a head (request or status line and fields; a chunked body's trailer section
// the same way) strictly: RFC 9112 grammar, CRLF line ends, token field names, no obs-fold, no
// CTLs in values. It scans runs of bytes of one class at a time, keeps its state across feed()
// calls and copies the bytes of the head into one buffer (once per feed); the parts are offsets
// into it, turned into the head's strings once the head is whole and valid. So no event leaves
// for a head that breaks a rule or a limit, and errors do not depend on how the bytes were
// split. Bare LF line ends are rejected (RFC 9112 2.2 allows them; one rule for the whole message
// is easier to reason about when proxy and server must agree on where a message ends).
//
// Framing, keep-alive, upgrades and the method list keep the rules the agent has always had
// (those of the C library it parsed with before this parser), quirks included, so that no peer
// sees a change:
// - Connection and Proxy-Connection options are read token by token from the raw value: a token
//   counts only when SP or a comma follows it, and a byte that is neither a token character nor
//   SP at the start of a token (HTAB included) ends the reading of that field.
// - Transfer-Encoding is chunked when the raw value ends in "chunked" (SP allowed after it) read
//   the same way; when that disagrees with the list validateHead() reads, the head is refused
//   ("ambiguous Transfer-Encoding").
// - Content-Length is digits then only SP, at most 18446744073709551609.
// - Upgrade counts when its value is not empty.
// - A head, a trailer section or a chunk-size line never takes more than 80 KiB (431), whatever
//   the limits (empty lines before a start line count toward the head).
// - Methods outside the list below are refused with 501.
// - In a chunked body, a chunk size of 2^60 - 1 or more followed by a digit, HTAB right after
//   the size, a Content-Length trailer that is not digits (or a second one) and the 80 KiB cap
//   end the body where they stand (the body bytes before them still go out); any other framing
//   error discards the body bytes of the same feed() call.

namespace meshlet::l7 {

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

namespace {

constexpr size_t kNone = static_cast<size_t>(-1);
constexpr size_t kHeaderCap = 80 * 1024;

// Byte classes: token characters (RFC 9110 5.6.2), visible characters (request target), field
// content (field-vchar, obs-text, SP, HTAB: RFC 9110 5.5) and what a host[:port] may hold
// (RFC 3986 reg-name, IP-literal, port).
enum : uint8_t { kTchar = 1, kVchar = 2, kFieldChar = 4, kHostChar = 8 };

constexpr std::array<uint8_t, 256> kClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if (c > 0x20 && c < 0x7f) t[c] |= kVchar;
    if (c == '\t' || (c >= 0x20 && c != 0x7f)) t[c] |= kFieldChar;
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      t[c] |= kTchar | kHostChar;
    }
  }
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] |= kTchar;
  for (char c : std::string_view("-._~%!$&'()*+,;=:[]")) {
    t[static_cast<unsigned char>(c)] |= kHostChar;
  }
  return t;
}();

bool is(unsigned char c, uint8_t cls) { return (kClass[c] & cls) != 0; }
bool isDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool isAlpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool isHost(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is(static_cast<unsigned char>(c), kHostChar); });
}
int hexValue(unsigned char c) {
  if (isDigit(c)) return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
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

// The methods the agent takes (others: 501).
constexpr std::string_view kMethods[] = {
    "GET",         "POST",       "PUT",        "DELETE", "HEAD",     "OPTIONS", "PATCH",
    "CONNECT",     "TRACE",      "COPY",       "LOCK",   "MKCOL",    "MOVE",    "PROPFIND",
    "PROPPATCH",   "SEARCH",     "UNLOCK",     "BIND",   "REBIND",   "UNBIND",  "ACL",
    "REPORT",      "MKACTIVITY", "CHECKOUT",   "MERGE",  "M-SEARCH", "NOTIFY",  "SUBSCRIBE",
    "UNSUBSCRIBE", "PURGE",      "MKCALENDAR", "LINK",   "UNLINK",   "SOURCE"};

// kNone for a known method; else where it stops being a prefix of one (for the 80 KiB cap's
// order: the byte that is refused).
size_t unknownMethodAt(std::string_view m) {
  size_t longest = 0;
  for (std::string_view k : kMethods) {
    if (k == m) return kNone;
    size_t i = 0;
    while (i < k.size() && i < m.size() && k[i] == m[i]) ++i;
    longest = std::max(longest, i);
  }
  return longest;
}

enum class Name {
  kOther,
  kContentLength,
  kTransferEncoding,
  kHost,
  kConnection,
  kUpgrade,
  kExpect
};

Name classify(std::string_view n) {
  switch (n.size()) {
    case 4:
      return equalsIgnoreCase(n, "host") ? Name::kHost : Name::kOther;
    case 6:
      return equalsIgnoreCase(n, "expect") ? Name::kExpect : Name::kOther;
    case 7:
      return equalsIgnoreCase(n, "upgrade") ? Name::kUpgrade : Name::kOther;
    case 10:
      return equalsIgnoreCase(n, "connection") ? Name::kConnection : Name::kOther;
    case 14:
      return equalsIgnoreCase(n, "content-length") ? Name::kContentLength : Name::kOther;
    case 16:
      return equalsIgnoreCase(n, "proxy-connection") ? Name::kConnection : Name::kOther;
    case 17:
      return equalsIgnoreCase(n, "transfer-encoding") ? Name::kTransferEncoding : Name::kOther;
    default:
      return Name::kOther;
  }
}

// Connection options, read from the raw value (first byte after the OWS up to the CR).
enum : uint8_t { kClose = 1, kKeepAlive = 2, kUpgradeOption = 4 };

uint8_t connectionOptions(std::string_view v) {
  enum class St { kStart, kToken, kMatch, kMatched, kIgnore };
  static constexpr std::string_view kWords[] = {"close", "keep-alive", "upgrade"};
  uint8_t flags = 0;
  int word = 0;
  size_t index = 0;
  auto begin = [&](unsigned char c) {
    word = c == 'c' ? 0 : c == 'k' ? 1 : c == 'u' ? 2 : -1;
    index = 0;
    return word >= 0;
  };
  if (v.empty()) return 0;
  St st = begin(static_cast<unsigned char>(v[0]) | 0x20) ? St::kMatch : St::kToken;
  for (size_t i = 1; i < v.size() && st != St::kIgnore; ++i) {
    unsigned char ch = static_cast<unsigned char>(v[i]);
    unsigned char c = ch | 0x20;
    switch (st) {
      case St::kStart:
        if (begin(c)) {
          st = St::kMatch;
        } else if (is(c, kTchar)) {
          st = St::kToken;
        } else if (c != ' ') {
          st = St::kIgnore;
        }
        break;
      case St::kMatch:
        ++index;
        if (index >= kWords[word].size() || c != kWords[word][index]) {
          st = St::kToken;
        } else if (index + 1 == kWords[word].size()) {
          st = St::kMatched;
        }
        break;
      case St::kToken:
        if (ch == ',') st = St::kStart;
        break;
      case St::kMatched:
        if (ch == ',') {
          flags |= static_cast<uint8_t>(1 << word);
          st = St::kStart;
        } else if (ch != ' ') {
          st = St::kToken;
        }
        break;
      case St::kIgnore:
        break;
    }
  }
  if (st == St::kMatched) flags |= static_cast<uint8_t>(1 << word);
  return flags;
}

// Whether a raw Transfer-Encoding value ends in chunked, read the same way.
bool endsInChunked(std::string_view v) {
  enum class St { kStart, kToken, kMatch, kChunked, kIgnore };
  static constexpr std::string_view kChunkedWord = "chunked";
  if (v.empty()) return false;
  size_t index = 0;
  St st = (static_cast<unsigned char>(v[0]) | 0x20) == 'c' ? St::kMatch : St::kToken;
  for (size_t i = 1; i < v.size() && st != St::kIgnore; ++i) {
    unsigned char ch = static_cast<unsigned char>(v[i]);
    unsigned char c = ch | 0x20;
    switch (st) {
      case St::kStart:
        if (c == 'c') {
          st = St::kMatch;
          index = 0;
        } else if (is(c, kTchar)) {
          st = St::kToken;
        } else if (c != ' ') {
          st = St::kIgnore;
        }
        break;
      case St::kMatch:
        ++index;
        if (index >= kChunkedWord.size() || c != kChunkedWord[index]) {
          st = St::kToken;
        } else if (index + 1 == kChunkedWord.size()) {
          st = St::kChunked;
        }
        break;
      case St::kToken:
        if (ch == ',') st = St::kStart;
        break;
      case St::kChunked:
        if (ch != ' ') st = St::kToken;
        break;
      case St::kIgnore:
        break;
    }
  }
  return st == St::kChunked;
}

// A raw Content-Length value (first byte after the OWS up to the CR): digits, at most
// 18446744073709551609, then only SP. Where it goes wrong, kNone when it does not; *value gets
// the number.
size_t lengthValueError(std::string_view v, uint64_t* value = nullptr) {
  if (v.empty() || !isDigit(v[0])) return 0;
  uint64_t n = static_cast<uint64_t>(v[0] - '0');
  size_t i = 1;
  for (; i < v.size() && isDigit(v[i]); ++i) {
    if (n > (UINT64_MAX - 10) / 10) return i;
    n = n * 10 + static_cast<uint64_t>(v[i] - '0');
  }
  for (; i < v.size(); ++i) {
    if (v[i] != ' ') return i;
  }
  if (value) *value = n;
  return kNone;
}

// The request or status line and the fields of one head, or a trailer section.
class HeadScanner {
 public:
  // Offsets into buf(); kNone until scanned. value_b is the first byte after the OWS (raw_e when
  // the value is empty), raw_e the CR, value_e the end without trailing OWS (once done()).
  struct Field {
    size_t name_b, name_e, value_b, raw_e, value_e;
  };

  HeadScanner(bool request, const ParseLimits& limits) : request_(request), limits_(limits) {}

  // Ready for the next head; keeps the buffers.
  void reset() {
    state_ = State::kLeading;
    trailers_ = false;
    bytes_ = lead_ = pos_ = 0;
    status_ = 0;
    error_.clear();
    buf_.clear();
    fields_.clear();
    major = minor = status = 0;
    method_e = target_b = target_e = reason_b = reason_e = 0;
  }
  // Reads a chunked body's trailer section: field lines and an empty line.
  void startTrailers() {
    reset();
    trailers_ = true;
    state_ = State::kFieldStart;
  }

  // Reads from `data` up to the end of the head; returns how many bytes it read. On an error
  // errorStatus() and error() say why (the scanner stays failed).
  size_t scan(const char* data, size_t n) {
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    size_t lim = std::min(n, limits_.max_head_bytes - bytes_);
    size_t i = 0;
    size_t start = 0;  // data[start, i) goes into buf_
    while (i < lim && state_ != State::kDone && status_ == 0) {
      switch (state_) {
        case State::kLeading:  // empty lines before the start line: counted, not kept
          while (i < lim && (p[i] == '\r' || p[i] == '\n')) ++i;
          lead_ += i - start;
          start = i;
          break;
        case State::kMethod:
        case State::kName:
          while (i < lim && is(p[i], kTchar)) ++i;
          break;
        case State::kTarget:
          while (i < lim && is(p[i], kVchar)) ++i;
          break;
        case State::kReason:
        case State::kValue:
          while (i < lim && is(p[i], kFieldChar)) ++i;
          break;
        case State::kValueWs:
          while (i < lim && (p[i] == ' ' || p[i] == '\t')) ++i;
          break;
        default:
          break;
      }
      if (i == lim) break;
      step(p[i], buf_.size() + (i - start));
      ++i;
    }
    bytes_ += i;
    if (status_ != 0) return i;
    if (i == lim && lim < n && state_ != State::kDone) {
      fail(431, std::string(trailers_ ? "trailers" : "head") + " larger than " +
                    std::to_string(limits_.max_head_bytes) + " bytes");
      return i;
    }
    buf_.append(data + start, i - start);
    if (state_ == State::kDone) {
      for (Field& f : fields_) {
        f.value_e = f.raw_e;
        while (f.value_e > f.value_b &&
               (buf_[f.value_e - 1] == ' ' || buf_[f.value_e - 1] == '\t')) {
          --f.value_e;
        }
      }
    }
    return i;
  }

  bool done() const { return state_ == State::kDone; }
  bool started() const { return state_ != State::kLeading; }
  bool failed() const { return status_ != 0; }
  int errorStatus() const { return status_; }
  const std::string& error() const { return error_; }
  size_t bytes() const { return bytes_; }  // read so far, empty lines before the start line too
  size_t lead() const { return lead_; }    // empty-line bytes before the start line
  const std::string& buf() const { return buf_; }
  const std::vector<Field>& fields() const { return fields_; }
  std::string_view part(size_t b, size_t e) const {
    return std::string_view(buf_.data() + b, e - b);
  }

  // The start line: the method is buf()[0, method_e).
  size_t method_e = 0, target_b = 0, target_e = 0, reason_b = 0, reason_e = 0;
  int major = 0, minor = 0, status = 0;

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

  // One byte that ends a run (or is not part of one), at buffer offset `off`.
  void step(unsigned char c, size_t off) {
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
      case State::kLeading:  // the first byte of the start line
        if (request_) {
          if (!is(c, kTchar)) return fail(400, "invalid request line");
          state_ = State::kMethod;
        } else {
          if (c != 'H') return fail(400, "invalid status line");
          state_ = State::kVersion;
          pos_ = 1;
        }
        return;
      case State::kMethod:
        if (is(c, kTchar)) return;
        if (c != ' ') return fail(400, "invalid method");
        method_e = off;
        target_b = off + 1;
        state_ = State::kTarget;
        return;
      case State::kTarget:
        if (is(c, kVchar)) return;
        if (c != ' ' || off == target_b) return fail(400, "invalid request target");
        target_e = off;
        state_ = State::kVersion;
        pos_ = 0;
        return;
      case State::kVersion:
        return version(c);
      case State::kStatus:
        if (pos_ < 3) {
          if (!isDigit(c) || (pos_ == 0 && c == '0')) return fail(400, "invalid status code");
          status = status * 10 + (c - '0');
          ++pos_;
        } else if (c == ' ') {
          reason_b = reason_e = off + 1;
          state_ = State::kReason;
        } else if (c == '\r') {
          reason_b = reason_e = off;
          state_ = State::kLineLf;
        } else {
          fail(400, "invalid status code");
        }
        return;
      case State::kReason:
        if (c == '\r') {
          reason_e = off;
          state_ = State::kLineLf;
        } else if (!is(c, kFieldChar)) {
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
        } else if (is(c, kTchar)) {
          if (fields_.size() >= limits_.max_fields) {
            return fail(431, "more than " + std::to_string(limits_.max_fields) +
                                 (trailers_ ? " trailer fields" : " header fields"));
          }
          fields_.push_back({off, kNone, kNone, kNone, kNone});
          state_ = State::kName;
        } else if (c == ' ' || c == '\t') {
          fail(400, fields_.empty() ? "whitespace before the first header field"
                                    : "obs-fold line folding in a header field");
        } else {
          fail(400, "invalid header name");
        }
        return;
      case State::kName:
        if (is(c, kTchar)) return;
        if (c == ':') {
          fields_.back().name_e = off;
          state_ = State::kValueWs;
        } else if (c == '\r') {
          fail(400, "header line without a colon");
        } else {
          fail(400, "invalid header name");
        }
        return;
      case State::kValueWs:
        if (c == ' ' || c == '\t') return;
        fields_.back().value_b = off;
        state_ = State::kValue;
        [[fallthrough]];
      case State::kValue:
        if (c == '\r') {
          fields_.back().raw_e = off;
          state_ = State::kFieldLf;
        } else if (!is(c, kFieldChar)) {
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
      if (c != kHttp[pos_]) {
        return fail(400, request_ ? "invalid HTTP version" : "invalid status line");
      }
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
  size_t lead_ = 0;
  size_t pos_ = 0;
  int status_ = 0;
  std::string error_;
  std::string buf_;
  std::vector<Field> fields_;
};

std::string capMessage(size_t max_head_bytes) {
  return "head or trailers larger than " + std::to_string(std::min(max_head_bytes, kHeaderCap)) +
         " bytes";
}

}  // namespace

struct Http1Parser::Impl {
  enum class Body { kNone, kLength, kChunked, kToClose };
  enum class Chunk { kSize, kExt, kSizeLf, kData, kDataCr, kDataLf, kTrailers, kDone };

  Impl(Http1Parser& owner, Kind k, Http1Events& ev, ParseLimits lim)
      : self(owner), events(ev), limits(lim), kind(k), scanner(k == Kind::kRequest, limits) {}

  Http1Parser& self;
  Http1Events& events;
  ParseLimits limits;
  Kind kind;
  HeadScanner scanner;  // the head, then a chunked body's trailers
  // The connection.
  bool no_body_next = false;  // expectNoBody
  bool closed = false;        // the last message ended the connection: only CR/LF may follow
  bool finished = false;      // finish() ran
  // The message in progress.
  Body body = Body::kNone;
  uint64_t remaining = 0;  // of a Content-Length body
  bool upgrade = false;
  bool final_message = true;  // a request or a final (>= 200) response
  bool keep_alive = true;
  // Its chunked body.
  Chunk chunk = Chunk::kSize;
  uint64_t chunk_size = 0;
  int chunk_digits = 0;
  size_t line = 0;              // bytes of the chunk-size line (and the CRLF after the data)
  size_t trailer_field = 0;     // the next trailer field whose Content-Length rules are due
  bool trailer_length = false;  // a Content-Length trailer was read
  bool trailer_capped = false;  // the 80 KiB cap was checked on this trailer section
  HeaderList trailers;
  std::vector<std::pair<const char*, size_t>> spans;  // this feed's body bytes
  int late_status = 0;  // an error that ends the body after this feed's earlier body bytes
  std::string late_error;
  size_t late_at = 0;
  std::vector<std::string_view> codings;  // scratch for validateHead()

  bool isRequest() const { return kind == Kind::kRequest; }

  void reset() {
    scanner.reset();
    no_body_next = closed = finished = false;
    body = Body::kNone;
    remaining = 0;
    upgrade = false;
    final_message = keep_alive = true;
    chunk = Chunk::kSize;
    chunk_size = 0;
    chunk_digits = 0;
    line = 0;
    trailers.fields.clear();
    late_status = 0;
  }

  // Records the first error.
  void fail(int status, std::string why) {
    if (!self.failed()) {
      self.error_ = std::move(why);
      self.error_status_ = status;
    }
  }
  bool reject(int status, std::string why) {
    fail(status, std::move(why));
    return false;
  }
  // fail() for the chunk reader: nothing of the feed is used.
  size_t broken(int status, const char* why) {
    fail(status, why);
    return 0;
  }
  void late(int status, std::string why, size_t at) {
    if (late_status != 0) return;
    late_status = status;
    late_error = std::move(why);
    late_at = at;
  }

  // The scanner has a whole head: checks it, finds its framing, hands it out and, for a message
  // without a body, ends it. False on an error.
  bool startMessage() {
    const HeadScanner& s = scanner;
    const bool request = isRequest();
    std::string_view method = request ? s.part(0, s.method_e) : std::string_view();
    std::string_view target = request ? s.part(s.target_b, s.target_e) : std::string_view();
    if (request && method == "PRI" && target == "*" && s.major == 2) {
      return reject(400, "HTTP/2 connection preface on an HTTP/1 connection");
    }
    if (s.major != 1) {
      return reject(request ? 505 : 400, "unsupported HTTP version " + std::to_string(s.major) +
                                             "." + std::to_string(s.minor));
    }
    const HeadScanner::Field* length = nullptr;
    const HeadScanner::Field* host = nullptr;
    const HeadScanner::Field* expect = nullptr;
    int hosts = 0;
    bool te_present = false;
    bool te_chunked = false;  // a Transfer-Encoding value ends in chunked, read token by token
    bool upgrade_field = false;
    uint8_t options = 0;
    codings.clear();
    for (const auto& f : s.fields()) {
      switch (classify(s.part(f.name_b, f.name_e))) {
        case Name::kContentLength: {
          if (length) return reject(400, "more than one Content-Length");
          length = &f;
          std::string_view v = s.part(f.value_b, f.value_e);
          if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return isDigit(c); })) {
            return reject(400, "invalid Content-Length");
          }
          break;
        }
        case Name::kTransferEncoding: {
          te_present = true;
          std::string_view list = s.part(f.value_b, f.value_e);
          while (!list.empty()) {
            size_t comma = std::min(list.find(','), list.size());
            std::string_view coding = trimOws(list.substr(0, comma));
            list.remove_prefix(std::min(comma + 1, list.size()));
            if (!coding.empty()) codings.push_back(coding);
          }
          te_chunked |= endsInChunked(s.part(f.value_b, f.raw_e));
          break;
        }
        case Name::kHost:
          ++hosts;
          host = &f;
          break;
        case Name::kConnection:
          options |= connectionOptions(s.part(f.value_b, f.raw_e));
          break;
        case Name::kUpgrade:
          upgrade_field |= f.value_b < f.raw_e;
          break;
        case Name::kExpect:
          if (!expect) expect = &f;
          break;
        case Name::kOther:
          break;
      }
    }
    bool chunked_expected = false;
    if (te_present) {
      if (s.minor == 0) return reject(400, "Transfer-Encoding in an HTTP/1.0 message");
      if (length) return reject(400, "both Transfer-Encoding and Content-Length");
      if (codings.empty()) return reject(400, "empty Transfer-Encoding");
      for (size_t i = 0; i < codings.size(); ++i) {
        std::string_view name = trimOws(codings[i].substr(0, codings[i].find(';')));
        if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
              return is(static_cast<unsigned char>(c), kTchar);
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
      if (request && !chunked_expected) {
        return reject(400, "Transfer-Encoding does not end in chunked");
      }
    }
    const bool connect = request && method == "CONNECT";
    if (request) {
      std::string_view host_value = host ? s.part(host->value_b, host->value_e) : "";
      if (hosts > 1) return reject(400, "more than one Host header");
      if (hosts == 0 && s.minor >= 1) return reject(400, "missing Host header");
      if (host && !isHost(host_value)) return reject(400, "invalid Host header");
      if (target.find('#') != std::string_view::npos) {
        return reject(400, "fragment in request target");
      }
      if (connect) {
        if (!isAuthorityForm(target)) return reject(400, "CONNECT target is not host:port");
      } else if (target == "*") {
        if (method != "OPTIONS") return reject(400, "\"*\" target on a method but OPTIONS");
      } else if (target[0] != '/') {
        auto abs = splitAbsolute(target);
        if (!abs) return reject(400, "invalid request target");
        if (abs->authority.empty() || !isHost(abs->authority) ||
            abs->authority.find('@') != std::string_view::npos) {
          return reject(400, "invalid authority in the request target");
        }
        if (host && !equalsIgnoreCase(host_value, abs->authority)) {
          return reject(400, "Host header does not match the request target");
        }
      }
    }

    // The rules checked byte by byte in order (and the 80 KiB cap among them): an unknown
    // method, a scheme that is not letters only, a Content-Length beyond its limit or followed
    // by HTAB.
    size_t cap_at = s.lead() < kHeaderCap ? kHeaderCap - s.lead() : 0;  // first offset over it
    auto refuse = [&](size_t at, int status, const char* why) {
      return at >= cap_at ? reject(431, capMessage(limits.max_head_bytes)) : reject(status, why);
    };
    if (request) {
      if (size_t at = unknownMethodAt(method); at != kNone) {
        return refuse(at, 501, "unknown method");
      }
      if (!connect && target[0] != '/' && target != "*") {
        size_t j = 0;
        while (isAlpha(target[j])) ++j;
        if (target[j] != ':') {
          return refuse(s.target_b + j, 400, "malformed message: invalid URL");
        }
      }
    }
    uint64_t content_length = 0;
    if (length) {
      size_t bad = lengthValueError(s.part(length->value_b, length->raw_e), &content_length);
      if (bad != kNone) return refuse(length->value_b + bad, 400, "invalid Content-Length");
    }
    if (s.buf().size() > cap_at) return reject(431, capMessage(limits.max_head_bytes));

    // Framing.
    int status = 0;
    bool skip_body = false;  // 1xx, 204, 304, or the answer to HEAD
    if (request) {
      upgrade = (upgrade_field && (options & kUpgradeOption)) || connect;
      // RFC 9110 7.8: an Upgrade in an HTTP/1.0 request is ignored.
      if (upgrade && !connect && s.minor == 0) upgrade = false;
    } else {
      status = s.status;
      upgrade = status == 101;  // what follows is the new protocol's
      skip_body = status < 200 || status == 204 || status == 304 || no_body_next;
      if (status >= 200) no_body_next = false;
    }
    if (te_chunked != chunked_expected) return reject(400, "ambiguous Transfer-Encoding");

    Framing framing;
    framing.chunked = chunked_expected && !skip_body;
    framing.upgrade = upgrade;
    bool has_body = te_chunked || (length && content_length > 0);
    if (skip_body || (upgrade && (connect || !has_body))) {
      framing.content_length = 0;
    } else if (framing.chunked) {
      framing.content_length.reset();
    } else if (length) {
      framing.content_length = content_length;
    } else if (request) {
      framing.content_length = 0;
    }  // else a response whose body runs to the close
    // The answer runs to the close: 1xx/204/304/HEAD have none, and neither has a chunked or
    // Content-Length one; a Transfer-Encoding without chunked does.
    bool to_close = !request && !skip_body && !te_chunked && (te_present || !length);
    keep_alive = (s.minor >= 1 ? !(options & kClose) : (options & kKeepAlive) != 0) && !to_close;
    framing.keep_alive = keep_alive;
    final_message = request || status >= 200;

    if ((upgrade && (connect || skip_body || !has_body)) || skip_body) {
      body = Body::kNone;
    } else if (te_chunked) {
      body = Body::kChunked;
      chunk = Chunk::kSize;
      chunk_size = 0;
      chunk_digits = 0;
      line = 0;
    } else if (te_present) {
      body = Body::kToClose;  // a response (requests need chunked last)
    } else if (length) {
      body = content_length > 0 ? Body::kLength : Body::kNone;
      remaining = content_length;
    } else {
      body = request ? Body::kNone : Body::kToClose;
    }

    self.in_message_ = true;
    auto fillHeaders = [&](HeaderList& h) {
      h.fields.reserve(s.fields().size());
      for (const auto& f : s.fields()) {
        h.fields.push_back(HeaderList::Field{std::string(s.part(f.name_b, f.name_e)),
                                             std::string(s.part(f.value_b, f.value_e))});
      }
    };
    if (request) {
      RequestHead head;
      head.method.assign(method);
      head.target.assign(target);
      head.version_minor = s.minor;
      fillHeaders(head.headers);
      head.framing = framing;
      head.expect_continue =
          s.minor >= 1 && expect &&
          equalsIgnoreCase(s.part(expect->value_b, expect->value_e), "100-continue");
      events.onRequestHead(std::move(head));
    } else {
      ResponseHead head;
      head.status = status;
      head.reason.assign(s.part(s.reason_b, s.reason_e));
      head.version_minor = s.minor;
      fillHeaders(head.headers);
      head.framing = framing;
      events.onResponseHead(std::move(head));
    }
    if (body == Body::kNone) endMessage();
    return true;
  }

  void endMessage() {
    self.in_message_ = false;
    scanner.reset();
    body = Body::kNone;
    if (upgrade) {
      self.upgraded_ = true;
    } else if (final_message && !keep_alive) {
      closed = true;
    }
    if (!trailers.fields.empty()) {
      events.onTrailers(std::move(trailers));
      trailers.fields.clear();
    }
    events.onMessageEnd();
  }

  // Reads chunked framing from data[0, n) up to the end of the body, handing out the chunks'
  // bytes; returns how many bytes it used (0 after a framing error).
  size_t chunked(const char* data, size_t n) {
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    spans.clear();
    late_status = 0;
    size_t i = 0;
    while (i < n && chunk != Chunk::kDone) {
      if (chunk == Chunk::kData) {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining, n - i));
        if (late_status == 0) spans.emplace_back(data + i, take);
        i += take;
        remaining -= take;
        if (remaining == 0) chunk = Chunk::kDataCr;
        continue;
      }
      if (chunk == Chunk::kTrailers) {
        if (!readTrailers(data, n, i)) return 0;
        continue;
      }
      if (++line > limits.max_head_bytes) {
        fail(400,
             "chunk-size line longer than " + std::to_string(limits.max_head_bytes) + " bytes");
        return 0;
      }
      if (line > kHeaderCap && late_status == 0 && chunk <= Chunk::kSizeLf) {
        late(431, capMessage(limits.max_head_bytes), i);
      }
      unsigned char c = p[i];
      switch (chunk) {
        case Chunk::kSize:
          if (int h = hexValue(c); h >= 0) {
            if (chunk_size > (UINT64_MAX >> 4)) return broken(400, "invalid chunk size");
            if (chunk_size == (UINT64_MAX >> 4)) late(400, "invalid chunk size", i);
            chunk_size = chunk_size * 16 + static_cast<uint64_t>(h);
            ++chunk_digits;
          } else if (chunk_digits > 0 && (c == ';' || c == ' ' || c == '\t')) {
            if (c == '\t') late(400, "invalid chunk size", i);
            chunk = Chunk::kExt;
          } else if (chunk_digits > 0 && c == '\r') {
            chunk = Chunk::kSizeLf;
          } else {
            return broken(400, "invalid chunk size");
          }
          break;
        case Chunk::kExt:
          if (c == '\r') {
            chunk = Chunk::kSizeLf;
          } else if (!is(c, kFieldChar)) {
            return broken(400, "invalid chunk extension");
          }
          break;
        case Chunk::kSizeLf:
          if (c != '\n') return broken(400, "CR without LF in a chunked body");
          if (chunk_size == 0) {
            chunk = Chunk::kTrailers;
            scanner.startTrailers();
            trailer_field = 0;
            trailer_length = trailer_capped = false;
          } else {
            remaining = chunk_size;
            chunk = Chunk::kData;
          }
          break;
        case Chunk::kDataCr:
          if (c != '\r') return broken(400, "chunk data not followed by CRLF");
          chunk = Chunk::kDataLf;
          break;
        case Chunk::kDataLf:
          if (c != '\n') return broken(400, "chunk data not followed by CRLF");
          chunk = Chunk::kSize;
          chunk_size = 0;
          chunk_digits = 0;
          line = 0;
          break;
        default:
          break;
      }
      ++i;
    }
    for (const auto& [b, len] : spans) events.onBody(std::string_view(b, len));
    if (late_status != 0) {
      fail(late_status, std::move(late_error));
      return late_at;
    }
    if (chunk == Chunk::kDone) endMessage();
    return i;
  }

  // The trailer section from data[i, n); advances i. False on a framing error.
  bool readTrailers(const char* data, size_t n, size_t& i) {
    size_t avail = n - i;
    bool capped = !trailer_capped && limits.max_head_bytes > kHeaderCap;
    if (capped) avail = std::min(avail, kHeaderCap - std::min(scanner.bytes(), kHeaderCap));
    size_t before = scanner.buf().size();
    size_t used = scanner.scan(data + i, avail);
    if (scanner.failed()) {
      fail(scanner.errorStatus(), scanner.error());
      return false;
    }
    checkTrailerLengths(static_cast<ptrdiff_t>(i) - static_cast<ptrdiff_t>(before));
    i += used;
    if (scanner.done()) {
      trailers.fields.reserve(scanner.fields().size());
      for (const auto& f : scanner.fields()) {
        trailers.fields.push_back(
            HeaderList::Field{std::string(scanner.part(f.name_b, f.name_e)),
                              std::string(scanner.part(f.value_b, f.value_e))});
      }
      chunk = Chunk::kDone;
    } else if (capped && used == avail && i < n) {
      trailer_capped = true;
      late(431, capMessage(limits.max_head_bytes), i);
    }
    return true;
  }

  // Content-Length trailers: digits (ending the body where they are not), one only. `shift`
  // turns a scanner offset into an index into this feed's data.
  void checkTrailerLengths(ptrdiff_t shift) {
    const auto& fields = scanner.fields();
    const std::string& buf = scanner.buf();
    auto at = [&](size_t off) { return static_cast<size_t>(static_cast<ptrdiff_t>(off) + shift); };
    while (late_status == 0 && trailer_field < fields.size()) {
      const HeadScanner::Field& f = fields[trailer_field];
      if (f.name_e == kNone) return;
      if (classify(scanner.part(f.name_b, f.name_e)) != Name::kContentLength) {
        ++trailer_field;
        continue;
      }
      if (f.value_b == kNone) return;
      if (f.value_b == f.raw_e) {  // empty: refused at the first byte of the next line
        if (buf.size() > f.raw_e + 2) late(400, "invalid chunk size", at(f.raw_e + 2));
        return;
      }
      size_t end = f.raw_e == kNone ? buf.size() : f.raw_e;
      if (!isDigit(buf[f.value_b])) return late(400, "invalid chunk size", at(f.value_b));
      if (trailer_length) {
        return late(400,
                    "both Transfer-Encoding and Content-Length, or more than one Content-Length",
                    at(f.value_b));
      }
      size_t bad = lengthValueError(scanner.part(f.value_b, end));
      if (bad != kNone) return late(400, "invalid chunk size", at(f.value_b + bad));
      if (f.raw_e == kNone) return;
      trailer_length = true;
      ++trailer_field;
    }
  }
};

Http1Parser::Http1Parser(Kind kind, Http1Events& events, ParseLimits limits)
    : impl_(new Impl(*this, kind, events, limits)) {}

Http1Parser::~Http1Parser() { delete impl_; }

void Http1Parser::expectNoBody(bool no_body) { impl_->no_body_next = no_body; }

void Http1Parser::reset() {
  impl_->reset();
  error_.clear();
  error_status_ = 0;
  upgraded_ = false;
  in_message_ = false;
}

size_t Http1Parser::feed(const char* data, size_t n) {
  Impl& m = *impl_;
  if (failed() || upgraded_ || m.finished || n == 0) return 0;
  size_t used = 0;
  if (!in_message_) {
    if (m.closed) {
      // After "connection: close" (or an HTTP/1.0 message without keep-alive) nothing may follow
      // but the stray CRLFs some clients send after a body.
      while (used < n && (data[used] == '\r' || data[used] == '\n')) ++used;
      if (used < n) m.fail(400, "data after the last message of the connection");
      return used;
    }
    used = m.scanner.scan(data, n);
    if (m.scanner.failed()) {
      m.fail(m.scanner.errorStatus(), m.scanner.error());
      return 0;
    }
    if (!m.scanner.done()) return used;
    if (!m.startMessage()) return 0;
    if (!in_message_ || used == n) return used;  // a message without a body, or an upgrade
  }
  switch (m.body) {
    case Impl::Body::kLength: {
      size_t take = static_cast<size_t>(std::min<uint64_t>(m.remaining, n - used));
      m.events.onBody(std::string_view(data + used, take));
      m.remaining -= take;
      if (m.remaining == 0) m.endMessage();
      return used + take;
    }
    case Impl::Body::kToClose:
      m.events.onBody(std::string_view(data + used, n - used));
      return n;
    case Impl::Body::kChunked:
      return used + m.chunked(data + used, n - used);
    case Impl::Body::kNone:
      break;
  }
  return used;
}

void Http1Parser::finish() {
  Impl& m = *impl_;
  if (failed() || upgraded_ || m.finished) return;
  m.finished = true;
  if (!in_message_) {
    if (m.scanner.started()) m.fail(400, "connection closed in the middle of a message head");
    return;
  }
  if (m.body == Impl::Body::kToClose) return m.endMessage();
  m.fail(400, "connection closed before the message ended");
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
  if (status >= 0 && status <= 999) {  // every status a head can carry: no printf per response
    char line[] = "HTTP/1.1 000 ";
    line[9] = static_cast<char>('0' + status / 100);
    line[10] = static_cast<char>('0' + status / 10 % 10);
    line[11] = static_cast<char>('0' + status % 10);
    out.append(line, sizeof line - 1);
  } else {
    char line[32];
    int n = std::snprintf(line, sizeof line, "HTTP/1.1 %03d ", status);
    out.append(line, static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof line) - 1)));
  }
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
  char size[24];  // the size in hex, then CRLF
  char* end = size + sizeof size;
  char* p = end;
  *--p = '\n';
  *--p = '\r';
  for (size_t n = bytes.size(); n; n >>= 4) *--p = "0123456789abcdef"[n & 15];
  out.append(p, static_cast<size_t>(end - p));
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
