#pragma once
// meshlet's local rate limit (Istio has no API of its own for it; Envoy's local_ratelimit
// filter is configured through EnvoyFilter). A token bucket per agent, written as an
// annotation:
//   Service         meshlet.io/local-rate-limit: "100/s"            every L7 request to it
//   VirtualService  meshlet.io/local-rate-limit.ROUTE: "10/m,burst=20"   the named http route
// "N/s", "N/m" or "N/h": N tokens refilled per unit; the bucket holds `burst` tokens (default
// N). A request takes one token; with none left it is answered 429 (response flag RL).
#include <cstdint>
#include <string>
#include <string_view>

namespace meshlet {

inline constexpr const char* kRateLimitAnnotation = "meshlet.io/local-rate-limit";

struct LocalRateLimit {
  double per_second = 0;  // refill rate
  double burst = 0;       // bucket size
  std::string text;       // as written
  bool operator==(const LocalRateLimit&) const = default;
};

// Parses "N/s|m|h[,burst=B]" (N and B positive integers); "" and *error set on a bad value.
inline bool parseLocalRateLimit(std::string_view s, LocalRateLimit* out, std::string* error) {
  auto number = [](std::string_view v, uint64_t* n) {
    if (v.empty() || v.size() > 9) return false;
    *n = 0;
    for (char c : v) {
      if (c < '0' || c > '9') return false;
      *n = *n * 10 + static_cast<uint64_t>(c - '0');
    }
    return *n > 0;
  };
  LocalRateLimit r;
  r.text = std::string(s);
  std::string_view rate = s.substr(0, s.find(','));
  size_t slash = rate.find('/');
  uint64_t n = 0;
  double unit = 0;
  if (slash != std::string_view::npos) {
    std::string_view u = rate.substr(slash + 1);
    unit = u == "s" ? 1 : u == "m" ? 60 : u == "h" ? 3600 : 0;
  }
  if (slash == std::string_view::npos || !number(rate.substr(0, slash), &n) || unit == 0) {
    *error = "\"" + std::string(s) + "\" is not a rate: N/s, N/m or N/h, optionally ,burst=B";
    return false;
  }
  r.per_second = static_cast<double>(n) / unit;
  r.burst = static_cast<double>(n);
  if (s.size() > rate.size()) {
    std::string_view rest = s.substr(rate.size() + 1);
    uint64_t b = 0;
    if (rest.substr(0, 6) != "burst=" || !number(rest.substr(6), &b)) {
      *error = "\"" + std::string(s) + "\": after the rate only \",burst=B\" may follow";
      return false;
    }
    r.burst = static_cast<double>(b);
  }
  *out = r;
  return true;
}

}  // namespace meshlet
