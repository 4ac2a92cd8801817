// Parsers for security.istio.io AuthorizationPolicy and PeerAuthentication (v1, v1beta1).
#include <string>
#include <string_view>
#include <vector>

#include "agent/sources/istio_fields.h"
#include "agent/sources/k8s_objects.h"

namespace meshlet::file_source_internal {
namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool hasSpace(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return true;
  }
  return false;
}

// Istio's wildcard forms. Empty string when valid, else why not.
std::string splitPattern(std::string_view s, StringPattern& out) {
  if (s.empty()) return "must not be empty";
  if (hasSpace(s)) return "must not contain whitespace or control characters";
  if (s == "*") {
    out = {StringPattern::Kind::kAny, ""};
    return "";
  }
  StringPattern p{StringPattern::Kind::kExact, std::string(s)};
  if (s.front() == '*') {
    p = {StringPattern::Kind::kSuffix, std::string(s.substr(1))};
  } else if (s.back() == '*') {
    p = {StringPattern::Kind::kPrefix, std::string(s.substr(0, s.size() - 1))};
  }
  if (p.value.find('*') != std::string::npos) {
    return "a wildcard '*' is only allowed alone or as the first or last character";
  }
  out = std::move(p);
  return "";
}

// What a pattern list holds; decides the checks on its literal parts.
enum class PatternType { kPrincipal, kNamespace, kRequestPrincipal, kHost, kMethod, kPath, kAny };

std::string checkPrincipalChars(std::string_view s) {
  for (char c : s) {
    if (!isLowerAlnum(c) && c != '.' && c != '-' && c != '_' && c != '/') {
      return "may only contain lower case alphanumerics, '.', '-', '_' and '/'";
    }
  }
  return "";
}

// "cluster.local/ns/NAMESPACE/sa/SERVICE_ACCOUNT".
std::string checkPrincipal(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    parts.push_back(s.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() != 5 || parts[1] != "ns" || parts[3] != "sa" || parts[0].empty()) {
    return "expected TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT (e.g. "
           "\"cluster.local/ns/default/sa/web\")";
  }
  if (std::string why = checkPrincipalChars(parts[0]); !why.empty()) return "trust domain " + why;
  if (std::string why = checkDns1123Label(parts[2]); !why.empty()) return "namespace: " + why;
  if (std::string why = checkDns1123Subdomain(parts[4]); !why.empty()) {
    return "service account: " + why;
  }
  return "";
}

std::string checkPattern(PatternType type, const StringPattern& p) {
  const std::string& v = p.value;
  bool exact = p.kind == StringPattern::Kind::kExact;
  switch (type) {
    case PatternType::kPrincipal:
      if (v.rfind("spiffe://", 0) == 0) {
        return "write principals without the \"spiffe://\" prefix (e.g. "
               "\"cluster.local/ns/default/sa/web\")";
      }
      return exact ? checkPrincipal(v) : checkPrincipalChars(v);
    case PatternType::kNamespace:
      if (exact) return checkDns1123Label(v);
      for (char c : v) {
        if (!isLowerAlnum(c) && c != '-')
          return "may only contain lower case alphanumerics and '-'";
      }
      return "";
    case PatternType::kRequestPrincipal:
      if (exact && v.find('/') == std::string::npos) return "expected ISSUER/SUBJECT";
      return "";
    case PatternType::kMethod:
      if (std::string why = checkHeaderName(v); !why.empty() && !v.empty()) {
        return "is not a valid HTTP method";
      }
      return "";
    case PatternType::kPath:
      if (p.kind != StringPattern::Kind::kSuffix && p.kind != StringPattern::Kind::kAny &&
          (v.empty() || v.front() != '/')) {
        return "must start with '/' (or be \"*\" or \"*SUFFIX\")";
      }
      return "";
    case PatternType::kHost:
    case PatternType::kAny:
      return "";
  }
  return "";
}

Status patternList(const Reader& r, const Field& f, PatternType type,
                   std::vector<StringPattern>& out, bool allow_empty_string = false) {
  std::vector<std::string> texts;
  MESHLET_SOURCES_TRY(stringList(r, f, texts));
  std::vector<StringPattern> result;
  for (size_t i = 0; i < texts.size(); ++i) {
    StringPattern p;
    if (texts[i].empty() && allow_empty_string) {
      result.push_back(p);
      continue;
    }
    std::string why;
    if (type == PatternType::kPath && texts[i].find_first_of("{}") != std::string::npos) {
      why = "path templates ({*}, {**}) are not supported";
    }
    if (why.empty()) why = splitPattern(texts[i], p);
    if (why.empty()) why = checkPattern(type, p);
    if (!why.empty()) return r.error(f.element(i), quote(texts[i]) + ": " + why);
    result.push_back(std::move(p));
  }
  out = std::move(result);
  return Status::Ok();
}

// "198.18.0.0/15", "2001:db8::/32" or a single address.
Status cidr(const Reader& r, const Field& f, Cidr& out) {
  std::string text;
  MESHLET_SOURCES_TRY(r.string(f, text, true));
  std::string_view addr = text;
  std::string_view len;
  size_t slash = text.find('/');
  if (slash != std::string::npos) {
    addr = std::string_view(text).substr(0, slash);
    len = std::string_view(text).substr(slash + 1);
  }
  std::optional<IpAddr> ip = IpAddr::parse(addr);
  if (!ip) return r.error(f, quote(text) + " is not a valid IP address or CIDR block");
  int max = ip->isV4() ? 32 : 128;
  int prefix = max;
  if (slash != std::string::npos) {
    if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != len.npos ||
        (len.size() > 1 && len[0] == '0')) {
      return r.error(f, quote(text) + " is not a valid CIDR block (bad prefix length)");
    }
    prefix = std::stoi(std::string(len));
    if (prefix > max) {
      return r.error(f, quote(text) + ": prefix length " + std::string(len) +
                            " is out of range 0-" + std::to_string(max));
    }
  }
  out = Cidr{*ip, prefix};
  return Status::Ok();
}

Status cidrList(const Reader& r, const Field& f, std::vector<Cidr>& out) {
  MESHLET_SOURCES_TRY(r.expectSeq(f, false));
  std::vector<Cidr> result;
  for (size_t i = 0; i < f.size(); ++i) {
    Cidr c;
    MESHLET_SOURCES_TRY(cidr(r, f.element(i), c));
    result.push_back(c);
  }
  out = std::move(result);
  return Status::Ok();
}

// A port as Istio encodes them in AuthorizationPolicy: a string "8080" (a bare number is
// accepted too).
Status stringPort(const Reader& r, const Field& f, int& out) {
  std::string text;
  MESHLET_SOURCES_TRY(r.string(f, text, true));
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != text.npos) {
    return r.error(f, quote(text) + " is not a valid port number");
  }
  int v = std::stoi(text);
  if (v < 1 || v > 65535) return r.error(f, text + " is out of range 1-65535");
  out = v;
  return Status::Ok();
}

Status portList(const Reader& r, const Field& f, std::vector<int>& out) {
  MESHLET_SOURCES_TRY(r.expectSeq(f, false));
  std::vector<int> result;
  for (size_t i = 0; i < f.size(); ++i) {
    int port = 0;
    MESHLET_SOURCES_TRY(stringPort(r, f.element(i), port));
    result.push_back(port);
  }
  out = std::move(result);
  return Status::Ok();
}

Status parseSource(const Reader& r, const Field& f, AuthzSource& out) {
  MESHLET_SOURCES_TRY(strictMap(
      r, f, true,
      {"principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces",
       "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"},
      {{"serviceAccounts", "use principals"}, {"notServiceAccounts", "use notPrincipals"}}));
  MESHLET_SOURCES_TRY(
      patternList(r, f.child("principals"), PatternType::kPrincipal, out.principals));
  MESHLET_SOURCES_TRY(
      patternList(r, f.child("notPrincipals"), PatternType::kPrincipal, out.not_principals));
  MESHLET_SOURCES_TRY(patternList(r, f.child("requestPrincipals"), PatternType::kRequestPrincipal,
                                  out.request_principals));
  MESHLET_SOURCES_TRY(patternList(r, f.child("notRequestPrincipals"),
                                  PatternType::kRequestPrincipal, out.not_request_principals));
  MESHLET_SOURCES_TRY(
      patternList(r, f.child("namespaces"), PatternType::kNamespace, out.namespaces));
  MESHLET_SOURCES_TRY(
      patternList(r, f.child("notNamespaces"), PatternType::kNamespace, out.not_namespaces));
  MESHLET_SOURCES_TRY(cidrList(r, f.child("ipBlocks"), out.ip_blocks));
  MESHLET_SOURCES_TRY(cidrList(r, f.child("notIpBlocks"), out.not_ip_blocks));
  MESHLET_SOURCES_TRY(cidrList(r, f.child("remoteIpBlocks"), out.remote_ip_blocks));
  MESHLET_SOURCES_TRY(cidrList(r, f.child("notRemoteIpBlocks"), out.not_remote_ip_blocks));
  if (out.principals.empty() && out.not_principals.empty() && out.request_principals.empty() &&
      out.not_request_principals.empty() && out.namespaces.empty() && out.not_namespaces.empty() &&
      out.ip_blocks.empty() && out.not_ip_blocks.empty() && out.remote_ip_blocks.empty() &&
      out.not_remote_ip_blocks.empty()) {
    return r.error(f, "must not be empty (as Istio requires)");
  }
  return Status::Ok();
}

Status parseOperation(const Reader& r, const Field& f, AuthzOperation& out) {
  MESHLET_SOURCES_TRY(strictMap(
      r, f, true,
      {"hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"}));
  MESHLET_SOURCES_TRY(patternList(r, f.child("hosts"), PatternType::kHost, out.hosts));
  MESHLET_SOURCES_TRY(patternList(r, f.child("notHosts"), PatternType::kHost, out.not_hosts));
  MESHLET_SOURCES_TRY(portList(r, f.child("ports"), out.ports));
  MESHLET_SOURCES_TRY(portList(r, f.child("notPorts"), out.not_ports));
  MESHLET_SOURCES_TRY(patternList(r, f.child("methods"), PatternType::kMethod, out.methods));
  MESHLET_SOURCES_TRY(patternList(r, f.child("notMethods"), PatternType::kMethod, out.not_methods));
  MESHLET_SOURCES_TRY(patternList(r, f.child("paths"), PatternType::kPath, out.paths));
  MESHLET_SOURCES_TRY(patternList(r, f.child("notPaths"), PatternType::kPath, out.not_paths));
  if (out.hosts.empty() && out.not_hosts.empty() && out.ports.empty() && out.not_ports.empty() &&
      out.methods.empty() && out.not_methods.empty() && out.paths.empty() &&
      out.not_paths.empty()) {
    return r.error(f, "must not be empty (as Istio requires)");
  }
  return Status::Ok();
}

// "[a][b]..." after a key prefix: the bracketed names, or an error text.
std::string bracketArgs(std::string_view s, std::vector<std::string>& out) {
  if (s.empty()) return "expected [NAME] after the key";
  while (!s.empty()) {
    if (s.front() != '[') return "expected '[' in the key";
    size_t close = s.find(']');
    if (close == std::string_view::npos) return "missing ']' in the key";
    std::string_view name = s.substr(1, close - 1);
    if (name.empty()) return "empty [] in the key";
    if (name.find('[') != std::string_view::npos) return "unexpected '[' in the key";
    out.emplace_back(name);
    s.remove_prefix(close + 1);
  }
  return "";
}

Status parseConditionKey(const Reader& r, const Field& f, AuthzCondition& out) {
  MESHLET_SOURCES_TRY(r.string(f, out.key_text, true));
  const std::string& key = out.key_text;
  using Key = AuthzCondition::Key;
  static const std::pair<const char*, Key> kPlain[] = {
      {"source.ip", Key::kSourceIp},
      {"remote.ip", Key::kRemoteIp},
      {"source.namespace", Key::kSourceNamespace},
      {"source.principal", Key::kSourcePrincipal},
      {"request.auth.principal", Key::kRequestAuthPrincipal},
      {"request.auth.audiences", Key::kRequestAuthAudiences},
      {"request.auth.presenter", Key::kRequestAuthPresenter},
      {"destination.ip", Key::kDestinationIp},
      {"destination.port", Key::kDestinationPort},
      {"connection.sni", Key::kConnectionSni},
  };
  for (const auto& [text, k] : kPlain) {
    if (key == text) {
      out.key = k;
      return Status::Ok();
    }
  }
  std::vector<std::string> args;
  std::string why;
  static const std::string kHeaders = "request.headers", kClaims = "request.auth.claims";
  if (key.rfind(kHeaders, 0) == 0) {
    why = bracketArgs(std::string_view(key).substr(kHeaders.size()), args);
    if (why.empty() && args.size() != 1) why = "expected exactly one [HEADER-NAME]";
    if (why.empty()) why = checkHeaderName(args[0]);
    if (why.empty()) {
      out.key = Key::kRequestHeader;
      out.header = lower(args[0]);
      return Status::Ok();
    }
  } else if (key.rfind(kClaims, 0) == 0) {
    why = bracketArgs(std::string_view(key).substr(kClaims.size()), args);
    if (why.empty()) {
      out.key = Key::kRequestAuthClaims;
      out.claim = std::move(args);
      return Status::Ok();
    }
  } else {
    why =
        "unknown key (expected request.headers[NAME], source.ip, remote.ip, source.namespace, "
        "source.principal, request.auth.principal, request.auth.audiences, "
        "request.auth.presenter, request.auth.claims[NAME], destination.ip, destination.port "
        "or connection.sni)";
  }
  return r.error(f, quote(key) + ": " + why);
}

Status parseCondition(const Reader& r, const Field& f, AuthzCondition& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"key", "values", "notValues"}));
  MESHLET_SOURCES_TRY(parseConditionKey(r, f.child("key"), out));
  Field values = f.child("values"), not_values = f.child("notValues");
  MESHLET_SOURCES_TRY(r.expectSeq(values, false));
  MESHLET_SOURCES_TRY(r.expectSeq(not_values, false));
  if (values.size() == 0 && not_values.size() == 0) {
    return r.error(f, "values or notValues must be set");
  }
  using Key = AuthzCondition::Key;
  switch (out.key) {
    case Key::kSourceIp:
    case Key::kRemoteIp:
    case Key::kDestinationIp:
      MESHLET_SOURCES_TRY(cidrList(r, values, out.cidr_values));
      MESHLET_SOURCES_TRY(cidrList(r, not_values, out.not_cidr_values));
      break;
    case Key::kDestinationPort:
      MESHLET_SOURCES_TRY(portList(r, values, out.port_values));
      MESHLET_SOURCES_TRY(portList(r, not_values, out.not_port_values));
      break;
    case Key::kSourcePrincipal:
      MESHLET_SOURCES_TRY(patternList(r, values, PatternType::kPrincipal, out.values));
      MESHLET_SOURCES_TRY(patternList(r, not_values, PatternType::kPrincipal, out.not_values));
      break;
    case Key::kSourceNamespace:
      MESHLET_SOURCES_TRY(patternList(r, values, PatternType::kNamespace, out.values));
      MESHLET_SOURCES_TRY(patternList(r, not_values, PatternType::kNamespace, out.not_values));
      break;
    default:
      // Header and claim values may be empty strings (an exact match on "").
      MESHLET_SOURCES_TRY(patternList(r, values, PatternType::kAny, out.values, true));
      MESHLET_SOURCES_TRY(patternList(r, not_values, PatternType::kAny, out.not_values, true));
      break;
  }
  return Status::Ok();
}

Status parseRule(const Reader& r, const Field& f, AuthzRule& out) {
  MESHLET_SOURCES_TRY(strictMap(r, f, true, {"from", "to", "when"}));
  Field from = f.child("from"), to = f.child("to"), when = f.child("when");
  MESHLET_SOURCES_TRY(r.expectSeq(from, false));
  for (size_t i = 0; i < from.size(); ++i) {
    Field e = from.element(i);
    MESHLET_SOURCES_TRY(strictMap(r, e, true, {"source"}));
    AuthzSource s;
    MESHLET_SOURCES_TRY(parseSource(r, e.child("source"), s));
    out.from.push_back(std::move(s));
  }
  MESHLET_SOURCES_TRY(r.expectSeq(to, false));
  for (size_t i = 0; i < to.size(); ++i) {
    Field e = to.element(i);
    MESHLET_SOURCES_TRY(strictMap(r, e, true, {"operation"}));
    AuthzOperation o;
    MESHLET_SOURCES_TRY(parseOperation(r, e.child("operation"), o));
    out.to.push_back(std::move(o));
  }
  MESHLET_SOURCES_TRY(r.expectSeq(when, false));
  for (size_t i = 0; i < when.size(); ++i) {
    AuthzCondition c;
    MESHLET_SOURCES_TRY(parseCondition(r, when.element(i), c));
    out.when.push_back(std::move(c));
  }
  return Status::Ok();
}

Status mtlsMode(const Reader& r, const Field& f, MtlsMode& out) {
  std::string text = "UNSET";
  MESHLET_SOURCES_TRY(r.string(f, text, false));
  if (text == "UNSET") {
    out = MtlsMode::kUnset;
  } else if (text == "DISABLE") {
    out = MtlsMode::kDisable;
  } else if (text == "PERMISSIVE") {
    out = MtlsMode::kPermissive;
  } else if (text == "STRICT") {
    out = MtlsMode::kStrict;
  } else {
    return r.error(f, quote(text) + " is not a valid mode (UNSET, DISABLE, PERMISSIVE or STRICT)");
  }
  return Status::Ok();
}

}  // namespace

Status parseAuthorizationPolicy(const Reader& r, const Field& root, const Origin& origin,
                                AuthorizationPolicy& out) {
  MESHLET_SOURCES_TRY(istioObject(r, root, origin, out.meta));
  Field spec = root.child("spec");
  static constexpr const char* kNoTargetRef =
      "meshlet has no waypoints or gateways to attach a policy to; use selector.matchLabels to "
      "select workloads";
  MESHLET_SOURCES_TRY(strictMap(r, spec, false, {"selector", "action", "rules", "provider"},
                                {{"targetRef", kNoTargetRef}, {"targetRefs", kNoTargetRef}}));
  MESHLET_SOURCES_TRY(workloadSelector(r, spec.child("selector"), out.selector));

  Field action = spec.child("action");
  std::string text = "ALLOW";
  MESHLET_SOURCES_TRY(r.string(action, text, false));
  if (text == "ALLOW") {
    out.action = AuthzAction::kAllow;
  } else if (text == "DENY") {
    out.action = AuthzAction::kDeny;
  } else if (text == "AUDIT") {
    out.action = AuthzAction::kAudit;
  } else if (text == "CUSTOM") {
    return r.error(action,
                   "CUSTOM (external authorization) is not supported (ALLOW, DENY or AUDIT)");
  } else {
    return r.error(action, quote(text) + " is not a valid action (ALLOW, DENY or AUDIT)");
  }
  if (spec.child("provider").present()) {
    return r.error(spec.child("provider"), "only valid with action CUSTOM");
  }

  Field rules = spec.child("rules");
  MESHLET_SOURCES_TRY(r.expectSeq(rules, false));
  for (size_t i = 0; i < rules.size(); ++i) {
    AuthzRule rule;
    MESHLET_SOURCES_TRY(parseRule(r, rules.element(i), rule));
    out.rules.push_back(std::move(rule));
  }
  return Status::Ok();
}

Status parsePeerAuthentication(const Reader& r, const Field& root, const Origin& origin,
                               PeerAuthentication& out) {
  MESHLET_SOURCES_TRY(istioObject(r, root, origin, out.meta));
  Field spec = root.child("spec");
  MESHLET_SOURCES_TRY(strictMap(r, spec, false, {"selector", "mtls", "portLevelMtls"}));
  MESHLET_SOURCES_TRY(workloadSelector(r, spec.child("selector"), out.selector));
  Field mtls = spec.child("mtls");
  MESHLET_SOURCES_TRY(strictMap(r, mtls, false, {"mode"}));
  MESHLET_SOURCES_TRY(mtlsMode(r, mtls.child("mode"), out.mode));

  Field ports = spec.child("portLevelMtls");
  MESHLET_SOURCES_TRY(r.expectMap(ports, false));
  if (ports.size() > 0 && !out.selector) {
    return r.error(ports, "requires a workload selector (as Istio requires)");
  }
  if (!ports.present()) return Status::Ok();
  for (auto entry : ports.node().entries()) {
    Field key(entry.key, ports.path() + "[" + quote(entry.key.scalar()) + "]");
    Field value(entry.value, key.path());
    int port = 0;
    MESHLET_SOURCES_TRY(stringPort(r, key, port));
    MESHLET_SOURCES_TRY(strictMap(r, value, true, {"mode"}));
    MtlsMode mode = MtlsMode::kUnset;
    MESHLET_SOURCES_TRY(mtlsMode(r, value.child("mode"), mode));
    if (!out.port_modes.emplace(port, mode).second) {
      return r.error(key, "duplicate port " + std::to_string(port));
    }
  }
  return Status::Ok();
}

}  // namespace meshlet::file_source_internal
