#include "agent/policy/authz.h"

#include <algorithm>
#include <cctype>

namespace meshlet {
namespace {

bool anyPattern(const std::vector<StringPattern>& ps, std::string_view v) {
  return std::any_of(ps.begin(), ps.end(), [v](const StringPattern& p) { return p.matches(v); });
}

bool anyCidr(const std::vector<Cidr>& cs, const IpAddr& ip) {
  return std::any_of(cs.begin(), cs.end(), [&ip](const Cidr& c) { return c.contains(ip); });
}

bool anyPort(const std::vector<int>& ps, int port) {
  return std::find(ps.begin(), ps.end(), port) != ps.end();
}

// The namespace segment of "td/ns/NS/sa/SA" ("" when there is none).
std::string principalNamespace(std::string_view principal) {
  size_t ns = principal.find("/ns/");
  if (ns == std::string_view::npos) return "";
  size_t start = ns + 4;
  size_t end = principal.find('/', start);
  return std::string(principal.substr(start, end == std::string_view::npos ? end : end - start));
}

// A positive list over an attribute that may be absent: absent never matches. A negative list:
// true unless the (present) attribute matches one of them (Istio's NOT semantics, so
// notPrincipals: ["*"] selects plaintext peers).
bool positive(const std::vector<StringPattern>& ps, const std::string& v) {
  return ps.empty() || (!v.empty() && anyPattern(ps, v));
}
bool negative(const std::vector<StringPattern>& ps, const std::string& v) {
  return ps.empty() || v.empty() || !anyPattern(ps, v);
}

bool sourceMatches(const AuthzSource& src, const L4Connection& c, const std::string& ns) {
  return positive(src.principals, c.source_principal) &&
         negative(src.not_principals, c.source_principal) && positive(src.namespaces, ns) &&
         negative(src.not_namespaces, ns) &&
         (src.ip_blocks.empty() || anyCidr(src.ip_blocks, c.source_ip)) &&
         (src.not_ip_blocks.empty() || !anyCidr(src.not_ip_blocks, c.source_ip)) &&
         // No proxy in front at L4: the remote address is the peer's.
         (src.remote_ip_blocks.empty() || anyCidr(src.remote_ip_blocks, c.source_ip)) &&
         (src.not_remote_ip_blocks.empty() || !anyCidr(src.not_remote_ip_blocks, c.source_ip));
}

bool sourceHasL7(const AuthzSource& src) {
  return !src.request_principals.empty() || !src.not_request_principals.empty();
}

bool operationMatches(const AuthzOperation& op, const L4Connection& c) {
  return (op.ports.empty() || anyPort(op.ports, c.destination_port)) &&
         (op.not_ports.empty() || !anyPort(op.not_ports, c.destination_port));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// The HTTP parts of an operation (its L4 parts are operationMatches'). Hosts compare without
// case, as Istio does.
bool operationMatchesHttp(const AuthzOperation& op, const HttpRequestAttrs& h) {
  std::string host = lower(h.host);
  auto hostIn = [&](const std::vector<StringPattern>& ps) {
    return std::any_of(ps.begin(), ps.end(), [&](const StringPattern& p) {
      StringPattern q{p.kind, lower(p.value)};
      return q.matches(host);
    });
  };
  std::string method(h.method), path(h.path);
  return (op.hosts.empty() || hostIn(op.hosts)) &&
         (op.not_hosts.empty() || !hostIn(op.not_hosts)) && positive(op.methods, method) &&
         negative(op.not_methods, method) && positive(op.paths, path) &&
         negative(op.not_paths, path);
}

// An L7 `when` condition on a request (request.headers; the JWT and SNI keys are absent).
bool conditionMatchesHttp(const AuthzCondition& w, const HttpRequestAttrs& h) {
  std::string value;
  if (w.key == AuthzCondition::Key::kRequestHeader && h.header) {
    value = h.header(w.header).value_or("");
  }
  return positive(w.values, value) && negative(w.not_values, value);
}

bool operationHasL7(const AuthzOperation& op) {
  return !op.hosts.empty() || !op.not_hosts.empty() || !op.methods.empty() ||
         !op.not_methods.empty() || !op.paths.empty() || !op.not_paths.empty();
}

using Key = AuthzCondition::Key;

bool conditionIsL7(const AuthzCondition& w) {
  switch (w.key) {
    case Key::kSourceIp:
    case Key::kRemoteIp:
    case Key::kSourceNamespace:
    case Key::kSourcePrincipal:
    case Key::kDestinationIp:
    case Key::kDestinationPort:
      return false;
    default:
      return true;  // request.*, connection.sni
  }
}

bool conditionMatches(const AuthzCondition& w, const L4Connection& c, const std::string& ns) {
  switch (w.key) {
    case Key::kSourceIp:
    case Key::kRemoteIp:
    case Key::kDestinationIp: {
      const IpAddr& ip = w.key == Key::kDestinationIp ? c.destination_ip : c.source_ip;
      return (w.cidr_values.empty() || anyCidr(w.cidr_values, ip)) &&
             (w.not_cidr_values.empty() || !anyCidr(w.not_cidr_values, ip));
    }
    case Key::kDestinationPort:
      return (w.port_values.empty() || anyPort(w.port_values, c.destination_port)) &&
             (w.not_port_values.empty() || !anyPort(w.not_port_values, c.destination_port));
    case Key::kSourceNamespace:
      return positive(w.values, ns) && negative(w.not_values, ns);
    case Key::kSourcePrincipal:
      return positive(w.values, c.source_principal) && negative(w.not_values, c.source_principal);
    default:
      return true;  // L7: handled by the caller (see ruleMatches)
  }
}

// With `http`, every attribute is evaluated. Without (L4), `ignore_l7` judges the rule on its
// L4 parts (DENY); else a rule with L7 parts never matches.
bool ruleMatches(const AuthzRule& rule, const L4Connection& c, const std::string& ns,
                 bool ignore_l7, const HttpRequestAttrs* http) {
  auto from_ok = [&] {
    if (rule.from.empty()) return true;
    return std::any_of(rule.from.begin(), rule.from.end(), [&](const AuthzSource& src) {
      if (http) {
        // No JWT: the request principal is absent.
        return sourceMatches(src, c, ns) && positive(src.request_principals, "") &&
               negative(src.not_request_principals, "");
      }
      return (ignore_l7 || !sourceHasL7(src)) && sourceMatches(src, c, ns);
    });
  };
  auto to_ok = [&] {
    if (rule.to.empty()) return true;
    return std::any_of(rule.to.begin(), rule.to.end(), [&](const AuthzOperation& op) {
      if (http) return operationMatches(op, c) && operationMatchesHttp(op, *http);
      return (ignore_l7 || !operationHasL7(op)) && operationMatches(op, c);
    });
  };
  auto when_ok = [&] {
    return std::all_of(rule.when.begin(), rule.when.end(), [&](const AuthzCondition& w) {
      if (conditionIsL7(w)) return http ? conditionMatchesHttp(w, *http) : ignore_l7;
      return conditionMatches(w, c, ns);
    });
  };
  return from_ok() && to_ok() && when_ok();
}

bool policyMatches(const AuthorizationPolicy& p, const L4Connection& c, const std::string& ns,
                   const HttpRequestAttrs* http = nullptr, bool l7_decided = false) {
  bool ignore_l7 = l7_decided ? p.action != AuthzAction::kDeny : p.action == AuthzAction::kDeny;
  return std::any_of(p.rules.begin(), p.rules.end(),
                     [&](const AuthzRule& r) { return ruleMatches(r, c, ns, ignore_l7, http); });
}

std::string nameOf(const AuthorizationPolicy& p) { return p.meta.ns + "/" + p.meta.name; }

bool selects(const Labels& selector, const Labels& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

std::vector<const AuthorizationPolicy*> applicablePolicies(const Snapshot& s, const std::string& ns,
                                                           const Labels& labels,
                                                           std::string_view root_namespace) {
  std::vector<const AuthorizationPolicy*> out;
  for (const auto& p : s.authorization_policies) {
    bool in_scope = p.meta.ns == root_namespace || p.meta.ns == ns;
    if (!in_scope) continue;
    if (p.selector && !selects(*p.selector, labels)) continue;
    out.push_back(&p);
  }
  std::sort(out.begin(), out.end(), [](const AuthorizationPolicy* a, const AuthorizationPolicy* b) {
    return std::tie(a->meta.ns, a->meta.name) < std::tie(b->meta.ns, b->meta.name);
  });
  return out;
}

namespace {
AuthzDecision authorize(const Snapshot& s, const L4Connection& c, const HttpRequestAttrs* http,
                        bool l7_decided, std::string_view root_namespace);
}  // namespace

AuthzDecision authorizeL4(const Snapshot& s, const L4Connection& c,
                          std::string_view root_namespace) {
  return authorize(s, c, nullptr, false, root_namespace);
}

AuthzDecision authorizeL7(const Snapshot& s, const L4Connection& c, const HttpRequestAttrs& http,
                          std::string_view root_namespace) {
  return authorize(s, c, &http, false, root_namespace);
}

AuthzDecision authorizeL4AfterL7(const Snapshot& s, const L4Connection& c,
                                 std::string_view root_namespace) {
  return authorize(s, c, nullptr, true, root_namespace);
}

namespace {
AuthzDecision authorize(const Snapshot& s, const L4Connection& c, const HttpRequestAttrs* http,
                        bool l7_decided, std::string_view root_namespace) {
  AuthzDecision d;
  const std::string ns = principalNamespace(c.source_principal);
  auto policies =
      applicablePolicies(s, c.destination_namespace, c.destination_labels, root_namespace);
  for (const auto* p : policies) {
    if (p->action == AuthzAction::kAudit && policyMatches(*p, c, ns, http, l7_decided)) {
      d.audited.push_back(nameOf(*p));
    }
  }
  for (const auto* p : policies) {
    if (p->action == AuthzAction::kDeny && policyMatches(*p, c, ns, http, l7_decided)) {
      d.allowed = false;
      d.reason = AuthzDecision::Reason::kDenyMatched;
      d.policy = nameOf(*p);
      return d;
    }
  }
  bool any_allow = false;
  for (const auto* p : policies) {
    if (p->action != AuthzAction::kAllow) continue;
    any_allow = true;
    if (policyMatches(*p, c, ns, http, l7_decided)) {
      d.reason = AuthzDecision::Reason::kAllowMatched;
      d.policy = nameOf(*p);
      return d;
    }
  }
  if (any_allow) {
    d.allowed = false;
    d.reason = AuthzDecision::Reason::kNoAllowMatched;
  }
  return d;
}
}  // namespace

MtlsDecision effectiveMtls(const Snapshot& s, const std::string& ns, const Labels& labels, int port,
                           std::string_view root_namespace) {
  const PeerAuthentication* workload = nullptr;
  const PeerAuthentication* namespace_wide = nullptr;
  const PeerAuthentication* mesh = nullptr;
  auto first = [](const PeerAuthentication*& slot, const PeerAuthentication& p) {
    if (!slot || std::tie(p.meta.ns, p.meta.name) < std::tie(slot->meta.ns, slot->meta.name)) {
      slot = &p;
    }
  };
  for (const auto& p : s.peer_authentications) {
    if (p.selector) {
      // A workload policy applies in its own namespace (in the root namespace: to none but
      // the root namespace's workloads, as in Istio).
      if (p.meta.ns == ns && selects(*p.selector, labels)) first(workload, p);
    } else if (p.meta.ns == root_namespace) {
      first(mesh, p);
    } else if (p.meta.ns == ns) {
      first(namespace_wide, p);
    }
  }
  auto name = [](const PeerAuthentication* p) { return p->meta.ns + "/" + p->meta.name; };
  if (workload) {
    auto it = workload->port_modes.find(port);
    if (it != workload->port_modes.end() && it->second != MtlsMode::kUnset) {
      return {it->second, name(workload)};
    }
    if (workload->mode != MtlsMode::kUnset) return {workload->mode, name(workload)};
  }
  if (namespace_wide && namespace_wide->mode != MtlsMode::kUnset) {
    return {namespace_wide->mode, name(namespace_wide)};
  }
  if (mesh && mesh->mode != MtlsMode::kUnset) return {mesh->mode, name(mesh)};
  return {};
}

std::string describe(const AuthzDecision& d) {
  switch (d.reason) {
    case AuthzDecision::Reason::kAllowMatched:
      return "allowed by " + d.policy;
    case AuthzDecision::Reason::kDenyMatched:
      return "denied by " + d.policy;
    case AuthzDecision::Reason::kNoAllowMatched:
      return "denied: no ALLOW policy matched";
    case AuthzDecision::Reason::kNoPolicy:
      break;
  }
  return "allowed";
}

}  // namespace meshlet
