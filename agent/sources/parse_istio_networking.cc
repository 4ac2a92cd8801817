// Parser for networking.istio.io VirtualService (v1, v1beta1, v1alpha3); DestinationRule is in
// parse_istio_destination_rule.cc.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/sources/istio_fields.h"
#include "agent/sources/k8s_objects.h"

namespace meshlet::file_source_internal {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// How many automaton states a pattern roughly expands to: libstdc++ compiles a counted
// repetition x{n,m} by copying x max(n,m) times, so nested counts multiply.
double regexSize(const std::string& p) {
  std::vector<double> group{0};  // the size of each open group, innermost last
  double last = 0;               // the size of the last atom (what a repetition applies to)
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '(') {
      group.push_back(0);
      continue;
    }
    if (c == ')') {
      if (group.size() > 1) {
        last = group.back();
        group.pop_back();
        group.back() += last;
      }
      continue;
    }
    if (c == '{') {
      size_t close = p.find('}', i);
      std::string body = close == std::string::npos ? "" : p.substr(i + 1, close - i - 1);
      size_t comma = body.find(',');
      std::string lo = body.substr(0, comma),
                  hi = comma == std::string::npos ? lo : body.substr(comma + 1);
      if (hi.empty()) hi = lo;
      auto digits = [](const std::string& t) {
        return !t.empty() && t.size() <= 6 &&
               t.find_first_not_of("0123456789") == std::string::npos;
      };
      if (digits(lo) && digits(hi)) {
        double bound = std::max(std::stod(lo), std::stod(hi));
        group.back() += last * (bound - 1);
        last *= bound;
        i = close;
        continue;
      }
    }
    if (c == '*' || c == '+' || c == '?' || c == '|' || c == '^' || c == '$') continue;
    if (c == '\\') {
      ++i;
    } else if (c == '[') {
      size_t j = i + 1;
      if (j < p.size() && p[j] == '^') ++j;
      if (j < p.size() && p[j] == ']') ++j;
      while (j < p.size() && p[j] != ']') j += p[j] == '\\' ? 2 : 1;
      i = j;
    }
    last = 1;
    group.back() += 1;
  }
  double total = 0;
  for (double g : group) total += g;
  return total;
}

// Empty when `pattern` compiles with std::regex (ECMAScript), else why not.
std::string checkRegex(const std::string& pattern) {
  constexpr size_t kMaxLength = 1024;
  constexpr double kMaxSize = 10000;
  if (pattern.empty()) return "must not be empty";
  if (pattern.size() > kMaxLength) {
    return "is longer than " + std::to_string(kMaxLength) + " characters";
  }
  // Bound what one rule may cost to compile and to match.
  if (regexSize(pattern) > kMaxSize) {
    return "is too large once its counted repetitions are expanded (more than 10000 steps)";
  }
  try {
    std::regex re(pattern);
  } catch (const std::regex_error& e) {
    return "is not a valid regular expression: " + std::string(e.what());
  }
  return "";
}

enum class MatchUse { kPlain, kHeader, kQueryParam };

// {exact|prefix|regex}; `{}` (presence) only for headers and query parameters; query
// parameters have no prefix match (as in Istio).
Status stringMatch(const Reader& r, const Field& f, MatchUse use, StringMatch& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, use == MatchUse::kPlain, {"exact", "prefix", "regex"}));
  int set = 0;
  for (const char* k : {"exact", "prefix", "regex"}) set += f.child(k).present() ? 1 : 0;
  if (set > 1) return r.error(f, "only one of exact, prefix or regex may be set");
  if (set == 0) {
    if (use == MatchUse::kPlain) return r.error(f, "one of exact, prefix or regex is required");
    out = StringMatch{StringMatch::Kind::kPresent, ""};
    return Status::Ok();
  }
  if (f.child("exact").present()) {
    out.kind = StringMatch::Kind::kExact;
    return r.string(f.child("exact"), out.value, true);
  }
  if (f.child("prefix").present()) {
    if (use == MatchUse::kQueryParam) {
      return r.error(f.child("prefix"),
                     "prefix matching of query parameters is not supported "
                     "(as in Istio); use exact or regex");
    }
    out.kind = StringMatch::Kind::kPrefix;
    return r.string(f.child("prefix"), out.value, true);
  }
  Field re = f.child("regex");
  out.kind = StringMatch::Kind::kRegex;
  MESHLET_SOURCES_TRY(r.string(re, out.value, true));
  if (std::string why = checkRegex(out.value); !why.empty()) {
    return r.error(re, quote(out.value) + " " + why);
  }
  return Status::Ok();
}

// A map of header (or query parameter) name → StringMatch.
Status matchMap(const Reader& r, const Field& f, MatchUse use,
                std::map<std::string, StringMatch>& out) {
  MESHLET_SOURCES_TRY(r.expectMap(f, false));
  if (!f.present()) return Status::Ok();
  for (auto entry : f.node().entries()) {
    std::string name(entry.key.scalar());
    Field value(entry.value, f.path() + "[" + quote(name) + "]");
    if (use == MatchUse::kHeader) {
      if (std::string why = checkHeaderName(name); !why.empty()) {
        return r.error(value, quote(name) + " " + why);
      }
    } else if (name.empty()) {
      return r.error(value, "query parameter name must not be empty");
    }
    StringMatch m;
    if (!value.present()) {
      m.kind = StringMatch::Kind::kPresent;  // `name:` with no value: presence
    } else {
      MESHLET_SOURCES_TRY(stringMatch(r, value, use, m));
    }
    std::string key = use == MatchUse::kHeader ? lower(name) : name;
    if (!out.emplace(key, m).second) return r.error(value, "duplicate name " + quote(key));
  }
  return Status::Ok();
}

Status meshGateways(const Reader& r, const Field& f) {
  std::vector<std::string> gateways;
  MESHLET_SOURCES_TRY(stringList(r, f, gateways));
  for (size_t i = 0; i < gateways.size(); ++i) {
    if (gateways[i] == "mesh") continue;
    return r.error(f.element(i),
                   quote(gateways[i]) +
                       " is not supported: meshlet has no ingress or egress gateway, so routes "
                       "bound to a gateway would never apply; omit gateways or use \"mesh\"");
  }
  return Status::Ok();
}

Status destination(const Reader& r, const Field& f, RouteDestinationTarget& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"host", "subset", "port"}));
  Field host = f.child("host");
  MESHLET_SOURCES_TRY(r.string(host, out.host, true));
  if (std::string why = checkHost(out.host, false); !why.empty()) {
    return r.error(host, quote(out.host) + ": " + why);
  }
  Field subset = f.child("subset");
  MESHLET_SOURCES_TRY(r.string(subset, out.subset, false));
  if (subset.present()) {
    if (std::string why = checkDns1123Label(out.subset); !why.empty()) {
      return r.error(subset, quote(out.subset) + " is not a valid subset name: " + why);
    }
  }
  Field port = f.child("port");
  MESHLET_SOURCES_TRY(strictMap(r, port, false, {"number"}));
  if (port.present()) MESHLET_SOURCES_TRY(r.port(port.child("number"), out.port, true));
  return Status::Ok();
}

Status headerOps(const Reader& r, const Field& f, HeaderOperations& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, false, {"set", "add", "remove"}));
  for (const char* which : {"set", "add"}) {
    Field m = f.child(which);
    StringMap values;
    MESHLET_SOURCES_TRY(r.stringMap(m, values));
    auto& target = std::string_view(which) == "set" ? out.set : out.add;
    for (const auto& [name, value] : values) {
      if (std::string why = checkHeaderName(name); !why.empty()) {
        return r.error(m.path() + "[" + quote(name) + "]", quote(name) + " " + why);
      }
      target[lower(name)] = value;
    }
  }
  Field remove = f.child("remove");
  std::vector<std::string> names;
  MESHLET_SOURCES_TRY(stringList(r, remove, names));
  for (size_t i = 0; i < names.size(); ++i) {
    if (std::string why = checkHeaderName(names[i]); !why.empty()) {
      return r.error(remove.element(i), quote(names[i]) + " " + why);
    }
    out.remove.push_back(lower(names[i]));
  }
  return Status::Ok();
}

Status headerRules(const Reader& r, const Field& f, HeaderRules& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, false, {"request", "response"}));
  MESHLET_SOURCES_TRY(headerOps(r, f.child("request"), out.request));
  return headerOps(r, f.child("response"), out.response);
}

Status httpMatch(const Reader& r, const Field& f, HttpMatch& out) {
  MESHLET_SOURCES_TRY(strictMap(
      r, f, true,
      {"name", "uri", "scheme", "method", "authority", "headers", "queryParams", "withoutHeaders",
       "port", "sourceLabels", "sourceNamespace", "ignoreUriCase", "gateways"},
      {{"statPrefix", "per-route stats prefixes are not implemented"}}));
  MESHLET_SOURCES_TRY(r.string(f.child("name"), out.name, false));
  struct Named {
    const char* key;
    std::optional<StringMatch>& target;
  };
  for (Named n : {Named{"uri", out.uri}, Named{"scheme", out.scheme}, Named{"method", out.method},
                  Named{"authority", out.authority}}) {
    Field m = f.child(n.key);
    if (!m.present()) continue;
    StringMatch sm;
    MESHLET_SOURCES_TRY(stringMatch(r, m, MatchUse::kPlain, sm));
    n.target = sm;
  }
  MESHLET_SOURCES_TRY(matchMap(r, f.child("headers"), MatchUse::kHeader, out.headers));
  MESHLET_SOURCES_TRY(
      matchMap(r, f.child("withoutHeaders"), MatchUse::kHeader, out.without_headers));
  MESHLET_SOURCES_TRY(matchMap(r, f.child("queryParams"), MatchUse::kQueryParam, out.query_params));
  MESHLET_SOURCES_TRY(r.port(f.child("port"), out.port, false));
  MESHLET_SOURCES_TRY(r.labels(f.child("sourceLabels"), out.source_labels));
  Field ns = f.child("sourceNamespace");
  MESHLET_SOURCES_TRY(r.string(ns, out.source_namespace, false));
  if (ns.present()) {
    if (std::string why = checkDns1123Label(out.source_namespace); !why.empty()) {
      return r.error(ns, quote(out.source_namespace) + " is not a valid namespace name: " + why);
    }
  }
  MESHLET_SOURCES_TRY(r.boolean(f.child("ignoreUriCase"), out.ignore_uri_case));
  return meshGateways(r, f.child("gateways"));
}

// Weights of a route list: 0-100; a lone destination gets 100; several must sum to 100.
template <typename Dest>
Status checkWeights(const Reader& r, const Field& route, std::vector<Dest>& dests) {
  if (dests.size() == 1) {
    dests[0].weight = 100;
    return Status::Ok();
  }
  int sum = 0;
  for (const Dest& d : dests) sum += d.weight;
  if (dests.size() > 1 && sum != 100) {
    return r.error(route, "weights sum to " + std::to_string(sum) +
                              "; with more than one destination they must sum to 100");
  }
  return Status::Ok();
}

Status httpRouteDestinations(const Reader& r, const Field& f,
                             std::vector<HttpRouteDestination>& out) {
  MESHLET_SOURCES_TRY(r.expectSeq(f, false));
  for (size_t i = 0; i < f.size(); ++i) {
    Field e = f.element(i);
    MESHLET_SOURCES_TRY(strictMap(r, e, true, {"destination", "weight", "headers"}));
    HttpRouteDestination d;
    d.weight = 0;
    MESHLET_SOURCES_TRY(destination(r, e.child("destination"), d.destination));
    MESHLET_SOURCES_TRY(intRange(r, e.child("weight"), 0, 100, d.weight));
    MESHLET_SOURCES_TRY(headerRules(r, e.child("headers"), d.headers));
    out.push_back(std::move(d));
  }
  return checkWeights(r, f, out);
}

Status redirect(const Reader& r, const Field& f, HttpRedirect& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"uri", "authority", "port", "scheme", "redirectCode"},
                                {{"derivePort", "set port explicitly"}}));
  MESHLET_SOURCES_TRY(r.string(f.child("uri"), out.uri, false));
  MESHLET_SOURCES_TRY(r.string(f.child("authority"), out.authority, false));
  MESHLET_SOURCES_TRY(r.port(f.child("port"), out.port, false));
  Field scheme = f.child("scheme");
  MESHLET_SOURCES_TRY(r.string(scheme, out.scheme, false));
  if (scheme.present() && out.scheme != "http" && out.scheme != "https") {
    return r.error(scheme, quote(out.scheme) + " is not a valid scheme (http or https)");
  }
  Field code = f.child("redirectCode");
  MESHLET_SOURCES_TRY(intRange(r, code, 0, 999, out.redirect_code));
  static const std::set<int> kCodes = {301, 302, 303, 307, 308};
  if (code.present() && !kCodes.count(out.redirect_code)) {
    return r.error(code, std::to_string(out.redirect_code) +
                             " is not a redirect status (301, 302, 303, 307 or 308)");
  }
  return Status::Ok();
}

Status rewrite(const Reader& r, const Field& f, HttpRewrite& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"uri", "authority", "uriRegexRewrite"}));
  MESHLET_SOURCES_TRY(r.string(f.child("uri"), out.uri, false));
  MESHLET_SOURCES_TRY(r.string(f.child("authority"), out.authority, false));
  Field re = f.child("uriRegexRewrite");
  if (!re.present()) return Status::Ok();
  if (f.child("uri").present()) {
    return r.error(re, "uri and uriRegexRewrite are mutually exclusive");
  }
  MESHLET_SOURCES_TRY(strictMap(r, re, true, {"match", "rewrite"}));
  std::string match, substitution;
  MESHLET_SOURCES_TRY(r.string(re.child("match"), match, true));
  if (std::string why = checkRegex(match); !why.empty()) {
    return r.error(re.child("match"), quote(match) + " " + why);
  }
  MESHLET_SOURCES_TRY(r.string(re.child("rewrite"), substitution, true));
  out.uri_regex = std::make_pair(match, substitution);
  return Status::Ok();
}

Status retries(const Reader& r, const Field& f, HttpRetry& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"attempts", "perTryTimeout", "retryOn"},
                                {{"retryRemoteLocalities",
                                  "locality-aware retries are not "
                                  "implemented"},
                                 {"backoff", "a custom retry backoff is not implemented"}}));
  MESHLET_SOURCES_TRY(intRange(r, f.child("attempts"), 0, kInt32Max, out.attempts));
  MESHLET_SOURCES_TRY(durationMs(r, f.child("perTryTimeout"), 1, out.per_try_timeout_ms));
  Field on = f.child("retryOn");
  std::string text;
  MESHLET_SOURCES_TRY(r.string(on, text, false));
  if (!on.present()) return Status::Ok();
  static const std::pair<const char*, RetryOn> kConditions[] = {
      {"5xx", RetryOn::k5xx},
      {"gateway-error", RetryOn::kGatewayError},
      {"connect-failure", RetryOn::kConnectFailure},
      {"reset", RetryOn::kReset},
      {"retriable-4xx", RetryOn::kRetriable4xx},
      {"refused-stream", RetryOn::kRefusedStream},
      {"retriable-status-codes", RetryOn::kRetriableStatusCodes},
  };
  static const std::set<std::string> kGrpc = {"cancelled", "deadline-exceeded", "internal",
                                              "resource-exhausted", "unavailable"};
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    if (item.empty()) return r.error(on, quote(text) + ": empty retry condition");
    bool found = false;
    for (const auto& [name, cond] : kConditions) {
      if (item == name) {
        found = true;
        out.retry_on.push_back(cond);
      }
    }
    if (found) continue;
    if (item.find_first_not_of("0123456789") == std::string::npos) {
      int code = item.size() <= 3 ? std::stoi(item) : 0;
      if (code < 100 || code > 599) {
        return r.error(on, quote(item) + " is not an HTTP status code (100-599)");
      }
      out.retriable_status_codes.push_back(code);
      continue;
    }
    if (kGrpc.count(item)) {
      return r.error(on, "gRPC retry condition " + quote(item) + " is not supported");
    }
    return r.error(on, quote(item) +
                           " is not a supported retry condition (5xx, gateway-error, "
                           "connect-failure, reset, retriable-4xx, refused-stream, "
                           "retriable-status-codes or an HTTP status code)");
  }
  return Status::Ok();
}

Status fault(const Reader& r, const Field& f, HttpFault& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"delay", "abort"}));
  Field delay = f.child("delay"), abort = f.child("abort");
  if (!delay.present() && !abort.present()) return r.error(f, "delay or abort must be set");
  constexpr const char* kPercent = "the deprecated integer percent; use percentage.value";
  if (delay.present()) {
    MESHLET_SOURCES_TRY(strictMap(r, delay, true, {"fixedDelay", "percentage"},
                                  {{"exponentialDelay", "use fixedDelay"}, {"percent", kPercent}}));
    HttpFault::Delay d;
    std::optional<int64_t> ms;
    MESHLET_SOURCES_TRY(r.required(delay.child("fixedDelay")));
    MESHLET_SOURCES_TRY(durationMs(r, delay.child("fixedDelay"), 1, ms));
    d.fixed_delay_ms = *ms;
    MESHLET_SOURCES_TRY(percent(r, delay.child("percentage"), d.percentage));
    out.delay = d;
  }
  if (abort.present()) {
    constexpr const char* kHttpOnly = "only httpStatus aborts are implemented";
    MESHLET_SOURCES_TRY(
        strictMap(r, abort, true, {"httpStatus", "percentage"},
                  {{"grpcStatus", kHttpOnly}, {"http2Error", kHttpOnly}, {"percent", kPercent}}));
    HttpFault::Abort a;
    MESHLET_SOURCES_TRY(r.required(abort.child("httpStatus")));
    MESHLET_SOURCES_TRY(intRange(r, abort.child("httpStatus"), 200, 599, a.http_status));
    MESHLET_SOURCES_TRY(percent(r, abort.child("percentage"), a.percentage));
    out.abort = a;
  }
  return Status::Ok();
}

Status httpRoute(const Reader& r, const Field& f, HttpRoute& out) {
  MESHLET_SOURCES_TRY(
      strictMap(r, f, true,
                {"name", "match", "route", "redirect", "rewrite", "timeout", "retries", "fault",
                 "mirror", "mirrorPercentage", "mirrors", "headers"},
                {{"corsPolicy", "CORS is not implemented by meshlet's HTTP proxy"},
                 {"directResponse", "use a fault abort with percentage 100"},
                 {"delegate", "VirtualService delegation is not implemented"},
                 {"mirrorPercent", "the deprecated integer percent; use mirrorPercentage.value"}}));
  MESHLET_SOURCES_TRY(r.string(f.child("name"), out.name, false));
  Field match = f.child("match");
  MESHLET_SOURCES_TRY(r.expectSeq(match, false));
  for (size_t i = 0; i < match.size(); ++i) {
    HttpMatch m;
    MESHLET_SOURCES_TRY(httpMatch(r, match.element(i), m));
    out.match.push_back(std::move(m));
  }
  Field route = f.child("route"), redir = f.child("redirect"), rw = f.child("rewrite");
  MESHLET_SOURCES_TRY(httpRouteDestinations(r, route, out.route));
  if (redir.present()) {
    if (!out.route.empty()) return r.error(redir, "route and redirect are mutually exclusive");
    if (rw.present()) return r.error(rw, "rewrite and redirect are mutually exclusive");
    HttpRedirect rd;
    MESHLET_SOURCES_TRY(redirect(r, redir, rd));
    out.redirect = rd;
  } else if (out.route.empty()) {
    return r.error(route, "route or redirect is required");
  }
  if (rw.present()) {
    HttpRewrite w;
    MESHLET_SOURCES_TRY(rewrite(r, rw, w));
    out.rewrite = std::move(w);
  }
  MESHLET_SOURCES_TRY(durationMs(r, f.child("timeout"), 0, out.timeout_ms));
  if (f.child("retries").present()) {
    HttpRetry rt;
    MESHLET_SOURCES_TRY(retries(r, f.child("retries"), rt));
    out.retries = std::move(rt);
  }
  if (f.child("fault").present()) {
    HttpFault ft;
    MESHLET_SOURCES_TRY(fault(r, f.child("fault"), ft));
    out.fault = ft;
  }
  Field mirror = f.child("mirror"), mirror_pct = f.child("mirrorPercentage");
  Field mirrors = f.child("mirrors");
  if (mirror.present()) {
    if (mirrors.present()) return r.error(mirrors, "mirror and mirrors are mutually exclusive");
    HttpMirror m;
    MESHLET_SOURCES_TRY(destination(r, mirror, m.destination));
    MESHLET_SOURCES_TRY(percent(r, mirror_pct, m.percentage));
    out.mirrors.push_back(std::move(m));
  } else if (mirror_pct.present()) {
    return r.error(mirror_pct, "only valid with mirror");
  }
  MESHLET_SOURCES_TRY(r.expectSeq(mirrors, false));
  for (size_t i = 0; i < mirrors.size(); ++i) {
    Field e = mirrors.element(i);
    MESHLET_SOURCES_TRY(strictMap(r, e, true, {"destination", "percentage"}));
    HttpMirror m;
    MESHLET_SOURCES_TRY(destination(r, e.child("destination"), m.destination));
    MESHLET_SOURCES_TRY(percent(r, e.child("percentage"), m.percentage));
    out.mirrors.push_back(std::move(m));
  }
  return headerRules(r, f.child("headers"), out.headers);
}

Status tcpRoute(const Reader& r, const Field& f, TcpRoute& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"match", "route"}));
  Field match = f.child("match");
  MESHLET_SOURCES_TRY(r.expectSeq(match, false));
  for (size_t i = 0; i < match.size(); ++i) {
    Field m = match.element(i);
    MESHLET_SOURCES_TRY(strictMap(r, m, true,
                                  {"port", "sourceLabels", "sourceNamespace", "gateways"},
                                  {{"destinationSubnets", "match on port (and source) only"},
                                   {"sourceSubnet", "match on port (and source) only"}}));
    TcpMatch tm;
    MESHLET_SOURCES_TRY(r.port(m.child("port"), tm.port, false));
    MESHLET_SOURCES_TRY(r.labels(m.child("sourceLabels"), tm.source_labels));
    Field ns = m.child("sourceNamespace");
    MESHLET_SOURCES_TRY(r.string(ns, tm.source_namespace, false));
    if (ns.present()) {
      if (std::string why = checkDns1123Label(tm.source_namespace); !why.empty()) {
        return r.error(ns, quote(tm.source_namespace) + " is not a valid namespace name: " + why);
      }
    }
    MESHLET_SOURCES_TRY(meshGateways(r, m.child("gateways")));
    out.match.push_back(std::move(tm));
  }
  Field route = f.child("route");
  MESHLET_SOURCES_TRY(r.expectSeq(route, true));
  if (route.size() == 0) return r.error(route, "must have at least one destination");
  for (size_t i = 0; i < route.size(); ++i) {
    Field e = route.element(i);
    MESHLET_SOURCES_TRY(strictMap(r, e, true, {"destination", "weight"}));
    TcpRouteDestination d;
    d.weight = 0;
    MESHLET_SOURCES_TRY(destination(r, e.child("destination"), d.destination));
    MESHLET_SOURCES_TRY(intRange(r, e.child("weight"), 0, 100, d.weight));
    out.route.push_back(std::move(d));
  }
  return checkWeights(r, route, out.route);
}

}  // namespace

Status parseVirtualService(const Reader& r, const Field& root, const Origin& origin,
                           VirtualService& out) {
  MESHLET_SOURCES_TRY(istioObject(r, root, origin, out.meta));
  Field spec = root.child("spec");
  MESHLET_SOURCES_TRY(strictMap(
      r, spec, true, {"hosts", "gateways", "exportTo", "http", "tcp"},
      {{"tls", "TLS (SNI) routes are not implemented; route TLS traffic with tcp routes"}}));
  Field hosts = spec.child("hosts");
  MESHLET_SOURCES_TRY(r.expectSeq(hosts, true));
  if (hosts.size() == 0) return r.error(hosts, "must have at least one host");
  MESHLET_SOURCES_TRY(stringList(r, hosts, out.hosts));
  std::set<std::string> seen;
  for (size_t i = 0; i < out.hosts.size(); ++i) {
    const std::string& h = out.hosts[i];
    if (h == "*") {
      return r.error(hosts.element(i),
                     "\"*\" is only valid for gateways; a mesh VirtualService "
                     "must name its hosts");
    }
    if (std::string why = checkHost(h, true); !why.empty()) {
      return r.error(hosts.element(i), quote(h) + ": " + why);
    }
    if (!seen.insert(h).second) return r.error(hosts.element(i), "duplicate host " + quote(h));
  }
  MESHLET_SOURCES_TRY(meshGateways(r, spec.child("gateways")));
  MESHLET_SOURCES_TRY(exportTo(r, spec.child("exportTo"), out.export_to));

  Field http = spec.child("http"), tcp = spec.child("tcp");
  MESHLET_SOURCES_TRY(r.expectSeq(http, false));
  MESHLET_SOURCES_TRY(r.expectSeq(tcp, false));
  if (http.size() == 0 && tcp.size() == 0) return r.error(spec, "http or tcp routes are required");
  std::set<std::string> names;
  for (size_t i = 0; i < http.size(); ++i) {
    HttpRoute route;
    MESHLET_SOURCES_TRY(httpRoute(r, http.element(i), route));
    if (!route.name.empty() && !names.insert(route.name).second) {
      return r.error(http.element(i).child("name"), "duplicate route name " + quote(route.name));
    }
    out.http.push_back(std::move(route));
  }
  for (size_t i = 0; i < tcp.size(); ++i) {
    TcpRoute route;
    MESHLET_SOURCES_TRY(tcpRoute(r, tcp.element(i), route));
    out.tcp.push_back(std::move(route));
  }
  // meshlet.io/local-rate-limit.ROUTE: a named http route's token bucket.
  const std::string prefix = std::string(kRateLimitAnnotation) + ".";
  for (const auto& [key, value] : out.meta.annotations) {
    if (key.rfind(prefix, 0) != 0) continue;
    const std::string path = "metadata.annotations[" + quote(key) + "]";
    std::string route = key.substr(prefix.size());
    if (!names.count(route)) {
      return r.error(path, "names no http route of this VirtualService (" + quote(route) +
                               "); name the route with `name:`");
    }
    LocalRateLimit limit;
    std::string why;
    if (!parseLocalRateLimit(value, &limit, &why)) return r.error(path, why);
    out.route_rate_limits[route] = limit;
  }
  return Status::Ok();
}

}  // namespace meshlet::file_source_internal
