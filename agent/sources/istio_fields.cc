#include "agent/sources/istio_fields.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "agent/sources/k8s_objects.h"

namespace meshlet::file_source_internal {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 9110 tchar.
bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

Status strictMap(const Reader& r, const Field& f, bool required,
                 std::initializer_list<std::string_view> known,
                 std::initializer_list<Unsupported> unsupported) {
  MESHLET_SOURCES_TRY(r.expectMap(f, required));
  if (!f.present()) return Status::Ok();
  for (auto entry : f.node().entries()) {
    std::string_view key = entry.key.scalar();
    bool ok = false;
    for (std::string_view k : known) ok = ok || k == key;
    if (ok) continue;
    std::string path = f.path().empty() ? std::string(key) : f.path() + "." + std::string(key);
    for (const Unsupported& u : unsupported) {
      if (u.field == key) return r.error(path, "is not supported: " + std::string(u.why));
    }
    return r.error(path, "unknown field");
  }
  return Status::Ok();
}

Status istioObject(const Reader& r, const Field& root, const Origin& origin, ObjectMeta& meta) {
  MESHLET_SOURCES_TRY(
      strictMap(r, root, true, {"apiVersion", "kind", "metadata", "spec", "status"}));
  MESHLET_SOURCES_TRY(parseMeta(r, root, true, checkDns1123Subdomain, origin, meta));
  return Status::Ok();
}

Status stringList(const Reader& r, const Field& f, std::vector<std::string>& out) {
  MESHLET_SOURCES_TRY(r.expectSeq(f, false));
  std::vector<std::string> result;
  for (size_t i = 0; i < f.size(); ++i) {
    std::string s;
    MESHLET_SOURCES_TRY(r.string(f.element(i), s, true));
    result.push_back(std::move(s));
  }
  out = std::move(result);
  return Status::Ok();
}

std::string parseDurationNs(std::string_view s, int64_t& ns) {
  static const std::string kForm =
      "expected a duration such as \"250ms\", \"1.5s\", \"1m\" or \"1h30m\"";
  if (s.empty()) return kForm;
  if (s.front() == '-') return "must not be negative";
  if (s.front() == '+') s.remove_prefix(1);
  if (s == "0") {
    ns = 0;
    return "";
  }
  if (s.empty()) return kForm;
  // Long double holds every 63-bit count of nanoseconds exactly enough to detect overflow.
  long double total = 0;
  while (!s.empty()) {
    size_t i = 0;
    while (i < s.size() && isDigit(s[i])) ++i;
    std::string_view whole = s.substr(0, i);
    std::string_view frac;
    if (i < s.size() && s[i] == '.') {
      size_t j = i + 1;
      while (j < s.size() && isDigit(s[j])) ++j;
      frac = s.substr(i + 1, j - i - 1);
      i = j;
    }
    if (whole.empty() && frac.empty()) return kForm;
    size_t u = i;
    while (u < s.size() && !isDigit(s[u]) && s[u] != '.') ++u;
    std::string_view unit = s.substr(i, u - i);
    long double scale;
    if (unit == "ns") {
      scale = 1;
    } else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs") {
      scale = 1e3L;
    } else if (unit == "ms") {
      scale = 1e6L;
    } else if (unit == "s") {
      scale = 1e9L;
    } else if (unit == "m") {
      scale = 60e9L;
    } else if (unit == "h") {
      scale = 3600e9L;
    } else if (unit.empty()) {
      return "missing unit (ns, us, ms, s, m or h)";
    } else {
      return "unknown unit " + quote(unit) + " (ns, us, ms, s, m or h)";
    }
    long double value = 0;
    for (char c : whole) value = value * 10 + (c - '0');
    long double place = 0.1L;
    for (char c : frac) {
      value += (c - '0') * place;
      place /= 10;
    }
    total += value * scale;
    if (total > static_cast<long double>(std::numeric_limits<int64_t>::max())) {
      return "is too long";
    }
    s.remove_prefix(u);
  }
  ns = static_cast<int64_t>(std::llround(total));
  return "";
}

Status durationMs(const Reader& r, const Field& f, int64_t min_ms, std::optional<int64_t>& out) {
  if (!f.present()) return Status::Ok();
  std::string text;
  MESHLET_SOURCES_TRY(r.string(f, text, true));
  int64_t ns = 0;
  if (std::string why = parseDurationNs(text, ns); !why.empty()) {
    return r.error(f, quote(text) + ": " + why);
  }
  if (ns % 1000000 != 0) {
    return r.error(f, quote(text) + ": only whole milliseconds are supported");
  }
  int64_t ms = ns / 1000000;
  if (ms < min_ms) {
    return r.error(f, quote(text) + ": must be at least " +
                          (min_ms == 1 ? std::string("1ms") : std::to_string(min_ms) + "ms"));
  }
  out = ms;
  return Status::Ok();
}

Status number(const Reader& r, const Field& f, double min, double max, double& out) {
  MESHLET_SOURCES_TRY(r.required(f));
  std::string text = f.scalar();
  double v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (!f.isScalar() || f.isQuotedString() || text.empty() || ec != std::errc() || ptr != end ||
      !std::isfinite(v)) {
    return r.error(f, "expected a number, got " + f.describe());
  }
  if (v < min || v > max) {
    auto fmt = [](double d) {
      std::string s = std::to_string(d);
      s.erase(s.find_last_not_of('0') + 1);
      if (s.back() == '.') s.pop_back();
      return s;
    };
    return r.error(f, text + " is out of range " + fmt(min) + "-" + fmt(max));
  }
  out = v;
  return Status::Ok();
}

Status intRange(const Reader& r, const Field& f, int64_t min, int64_t max, int& out) {
  if (!f.present()) return Status::Ok();
  int64_t v = 0;
  MESHLET_SOURCES_TRY(r.integer(f, v, true));
  if (v < min || v > max) {
    return r.error(f, std::to_string(v) + " is out of range " + std::to_string(min) + "-" +
                          std::to_string(max));
  }
  out = static_cast<int>(v);
  return Status::Ok();
}

Status percent(const Reader& r, const Field& f, double& out) {
  if (!f.present()) return Status::Ok();
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"value"}));
  return number(r, f.child("value"), 0, 100, out);
}

Status workloadSelector(const Reader& r, const Field& f, std::optional<Labels>& out) {
  if (!f.present()) return Status::Ok();
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"matchLabels"}));
  Labels labels;
  Field match = f.child("matchLabels");
  MESHLET_SOURCES_TRY(r.labels(match, labels));
  for (const auto& [key, value] : labels) {
    if (value.find('*') != std::string::npos || key.find('*') != std::string::npos) {
      return r.error(match.path() + "[" + quote(key) + "]", "wildcards are not allowed");
    }
  }
  out = std::move(labels);
  return Status::Ok();
}

Status exportTo(const Reader& r, const Field& f, std::vector<std::string>& out) {
  std::vector<std::string> list;
  MESHLET_SOURCES_TRY(stringList(r, f, list));
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string& v = list[i];
    Field e = f.element(i);
    if (v == "~") {
      if (list.size() > 1) return r.error(e, "\"~\" (export nowhere) must be the only entry");
    } else if (v != "." && v != "*") {
      if (std::string why = checkDns1123Label(v); !why.empty()) {
        return r.error(e, quote(v) + " is not \".\", \"*\", \"~\" or a namespace name: " + why);
      }
    }
    if (!seen.insert(v).second) return r.error(e, "duplicate entry " + quote(v));
  }
  out = std::move(list);
  return Status::Ok();
}

std::string checkHost(std::string_view s, bool wildcard) {
  if (s.empty()) return "must not be empty";
  std::string_view rest = s;
  if (rest.substr(0, 2) == "*.") {
    if (!wildcard) return "wildcards are not allowed here";
    rest.remove_prefix(2);
  } else if (rest.find('*') != std::string_view::npos) {
    return wildcard ? "a wildcard is only allowed as a whole leading label (\"*.example.com\")"
                    : "wildcards are not allowed here";
  }
  if (IpAddr::parse(rest)) return "";  // an address is a valid host
  if (std::string why = checkDns1123Subdomain(rest); !why.empty()) {
    return "not a valid host name: " + why;
  }
  return "";
}

std::string checkHeaderName(std::string_view s) {
  if (s.empty()) return "must not be empty";
  for (char c : s) {
    if (!isTokenChar(c)) return "is not a valid HTTP header name";
  }
  return "";
}

}  // namespace meshlet::file_source_internal
