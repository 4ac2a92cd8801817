#include "agent/l7/routes.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

namespace meshlet::l7 {
namespace {

constexpr std::string_view kClusterDomain = ".svc.cluster.local";

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

bool sameIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// A VirtualService or DestinationRule host (already qualified) naming `fqdn`: equal, "*", or a
// "*.suffix" wildcard whose suffix ends the FQDN.
bool hostMatches(std::string_view pattern, std::string_view fqdn) {
  if (pattern == "*") return true;
  if (!pattern.empty() && pattern[0] == '*') {
    std::string_view suffix = pattern.substr(1);
    return fqdn.size() > suffix.size() && fqdn.substr(fqdn.size() - suffix.size()) == suffix;
  }
  return pattern == fqdn;
}

std::string metaName(const ObjectMeta& m) { return m.ns + "/" + m.name; }

bool metaLess(const ObjectMeta& a, const ObjectMeta& b) {
  return std::tie(a.ns, a.name) < std::tie(b.ns, b.name);
}

// Istio's protocol selection (ConvertProtocol): appProtocol when set, else the port name; the
// part before the first '-' names the protocol ("grpc-web" whole), case-insensitive. kUnknown
// is what Istio would sniff; kOpaque a protocol declared not to be HTTP.
enum class HttpProto : uint8_t { kUnknown, kHttp, kHttp2, kOpaque };

HttpProto protocolOfName(std::string_view text) {
  const std::string name = toLower(text);
  if (name == "kubernetes.io/h2c") return HttpProto::kHttp2;
  if (name.rfind("grpc-web", 0) == 0) return HttpProto::kHttp;
  const std::string prefix = name.substr(0, name.find('-'));
  if (prefix == "http") return HttpProto::kHttp;
  if (prefix == "http2" || prefix == "grpc") return HttpProto::kHttp2;
  for (const char* opaque : {"tcp", "udp", "tls", "https", "mongo", "mysql", "redis"}) {
    if (prefix == opaque) return HttpProto::kOpaque;
  }
  return HttpProto::kUnknown;
}

HttpProto protocolOf(const ServicePort& p) {
  if (p.protocol != Protocol::kTCP) return HttpProto::kOpaque;
  return protocolOfName(p.app_protocol.empty() ? p.name : p.app_protocol);
}

bool isHttp(HttpProto p) { return p == HttpProto::kHttp || p == HttpProto::kHttp2; }

// A route that can match a request on service port `port`: no match list, or an entry that
// selects no port or this one.
bool routeServesPort(const HttpRoute& r, int port) {
  if (r.match.empty()) return true;
  for (const HttpMatch& m : r.match) {
    if (m.port == 0 || m.port == port) return true;
  }
  return false;
}

// Settings only an HTTP-aware proxy can apply.
template <typename Policy>
bool setsHttp(const Policy& p) {
  if (p.load_balancer &&
      (p.load_balancer->policy == LbPolicy::kLeastRequest ||
       p.load_balancer->policy == LbPolicy::kConsistentHash || p.load_balancer->consistent_hash)) {
    return true;
  }
  if (p.connection_pool) {
    const ConnectionPoolSettings& c = *p.connection_pool;
    if (c.http1_max_pending_requests || c.http2_max_requests || c.max_requests_per_connection ||
        c.max_retries || c.idle_timeout_ms) {
      return true;
    }
  }
  return p.outlier_detection.has_value();
}

// The DestinationRule that configures `fqdn`: an exact host before a wildcard; then one in the
// service's namespace, then the root namespace, then any other; ties by namespace/name.
const DestinationRule* findDestinationRule(const Snapshot& s, const std::string& fqdn,
                                           const std::string& svc_ns) {
  const DestinationRule* best = nullptr;
  std::tuple<int, int, std::string, std::string> best_rank;
  for (const DestinationRule& dr : s.destination_rules) {
    const std::string host = qualifyHost(dr.host, dr.meta.ns);
    if (!hostMatches(host, fqdn)) continue;
    const int scope = dr.meta.ns == svc_ns ? 0 : dr.meta.ns == kIstioRootNamespace ? 1 : 2;
    auto rank = std::make_tuple(host == fqdn ? 0 : 1, scope, dr.meta.ns, dr.meta.name);
    if (!best || rank < best_rank) {
      best = &dr;
      best_rank = std::move(rank);
    }
  }
  return best;
}

template <typename Policy>
void applyGroups(const Policy& p, L7Cluster& c) {
  if (p.load_balancer) c.lb = *p.load_balancer;
  if (p.connection_pool) c.pool = *p.connection_pool;
  if (p.outlier_detection) c.outlier = *p.outlier_detection;
}

// A traffic policy, then its settings for `port`, each field group replacing what came before.
void applyTrafficPolicy(const TrafficPolicy& tp, int port, L7Cluster& c) {
  applyGroups(tp, c);
  for (const PortTrafficPolicy& pl : tp.port_level_settings) {
    if (pl.port == port) applyGroups(pl, c);
  }
}

bool labelsInclude(const Labels& have, const Labels& want) {
  for (const auto& [key, value] : want) {
    auto it = have.find(key);
    if (it == have.end() || it->second != value) return false;
  }
  return true;
}

// The first value of `name` in a query string ("a=1&b&c=3"; "b" has the value "").
bool queryParam(std::string_view query, std::string_view name, std::string_view* value) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    *value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    return true;
  }
  return false;
}

const char* kindName(StringMatch::Kind k) {
  switch (k) {
    case StringMatch::Kind::kExact:
      return "exact";
    case StringMatch::Kind::kPrefix:
      return "prefix";
    case StringMatch::Kind::kRegex:
      return "regex";
    case StringMatch::Kind::kPresent:
      return "present";
  }
  return "?";
}

L7StringMatcher compileString(const StringMatch& m, bool ignore_case, const std::string& where,
                              std::string* error) {
  L7StringMatcher out;
  out.kind = m.kind;
  out.value = m.value;
  out.ignore_case =
      ignore_case && (m.kind == StringMatch::Kind::kExact || m.kind == StringMatch::Kind::kPrefix);
  if (m.kind == StringMatch::Kind::kRegex) {
    try {
      out.regex = std::make_shared<const std::regex>(m.value, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      if (error && error->empty()) {
        *error = where + " " + kindName(m.kind) + " \"" + m.value + "\" does not compile (" +
                 e.what() + "): it matches nothing";
      }
    }
  }
  return out;
}

std::vector<L7NamedMatcher> compileNamed(const std::map<std::string, StringMatch>& in,
                                         const std::string& where, std::string* error) {
  std::vector<L7NamedMatcher> out;
  for (const auto& [name, m] : in) {
    out.push_back(L7NamedMatcher{name, compileString(m, false, where + "[" + name + "]", error)});
  }
  return out;
}

bool matchOne(const L7Match& m, const RequestAttrs& req) {
  if (m.port != 0 && m.port != req.port) return false;
  if (!m.source_namespace.empty() && m.source_namespace != req.source_namespace) return false;
  if (!m.source_labels.empty() &&
      (!req.source_labels || !labelsInclude(*req.source_labels, m.source_labels))) {
    return false;
  }
  if (m.uri && !m.uri->matches(req.path)) return false;
  if (m.scheme && !m.scheme->matches("http")) return false;
  if (m.method && !m.method->matches(req.method)) return false;
  if (m.authority && !m.authority->matches(req.authority)) return false;
  auto header = [&](const std::string& name) -> const std::string* {
    return req.headers ? req.headers->get(name) : nullptr;
  };
  for (const L7NamedMatcher& h : m.headers) {
    const std::string* v = header(h.name);
    if (!v || !h.match.matches(*v)) return false;
  }
  for (const L7NamedMatcher& h : m.without_headers) {
    const std::string* v = header(h.name);
    if (v && h.match.matches(*v)) return false;
  }
  for (const L7NamedMatcher& q : m.query_params) {
    std::string_view v;
    if (!queryParam(req.query, q.name, &v) || !q.match.matches(v)) return false;
  }
  return true;
}

// compileL7's working state: indexes over the snapshot and the datapath, built once.
class Compiler {
 public:
  Compiler(const Snapshot& s, const DesiredDatapath& d, L7Config& out) : s_(s), d_(d), out_(out) {
    for (const Service& svc : s.services)
      by_fqdn_.emplace(serviceFqdn(svc.meta.name, svc.meta.ns), &svc);
    for (const auto& [id, si] : d.service_info) {
      if (si.protocol == Protocol::kTCP) ids_[{si.ns.str(), si.name.str(), si.port}].push_back(id);
    }
    for (const auto& [id, bi] : d.backend_info) {
      if (bi.ready) ready_[bi.svc_id].push_back(&bi);
    }
    for (const Pod& p : s.pods) pods_.emplace(p.meta.ns + "/" + p.meta.name, &p);
    for (const VirtualService& vs : s.virtual_services) {
      if (!vs.http.empty()) virtual_services_.push_back(&vs);
    }
    std::sort(virtual_services_.begin(), virtual_services_.end(),
              [](const VirtualService* a, const VirtualService* b) {
                return metaLess(a->meta, b->meta);
              });
  }

  void compileService(uint32_t svc_id, const ServiceInfo& si) {
    auto svc_it = by_fqdn_.find(serviceFqdn(si.name.str(), si.ns.str()));
    const Service* svc = svc_it == by_fqdn_.end() ? nullptr : svc_it->second;
    const ServicePort* port = svc ? findPort(*svc, si.port) : nullptr;
    if (!port) {
      warn("service " + si.ns.str() + "/" + si.name.str() + " port " + std::to_string(si.port) +
           ": not in the snapshot; no L7 routes");
      return;
    }
    L7Service& out = out_.services[svc_id];
    out.host = svc_it->first;
    out.ns = svc->meta.ns;
    out.name = svc->meta.name;
    out.port = si.port;
    out.reason = l7Reason(s_, *svc, *port);
    out.rate_limit = svc->rate_limit;

    std::vector<const VirtualService*> naming;
    for (const VirtualService* vs : virtual_services_) {
      for (const std::string& h : vs->hosts) {
        if (hostMatches(qualifyHost(h, vs->meta.ns), out.host)) {
          naming.push_back(vs);
          break;
        }
      }
    }
    if (naming.size() > 1) {
      std::string list;
      for (const VirtualService* vs : naming) {
        list += (list.empty() ? "" : ", ") + metaName(vs->meta);
      }
      warn("service " + metaName(svc->meta) + ": VirtualServices " + list +
           " all name it; their http routes are concatenated in that order (Istio merges "
           "VirtualServices only for gateways)");
    }
    for (const VirtualService* vs : naming) {
      for (size_t i = 0; i < vs->http.size(); ++i) {
        out.routes.push_back(compileRoute(*vs, static_cast<int>(i), *svc, si.port));
      }
    }
    if (naming.empty()) {
      L7Route r;
      r.name = "default";
      const std::string ctx = "service " + metaName(svc->meta) + " port " + std::to_string(si.port);
      r.clusters.push_back(L7WeightedCluster{cluster(out.host, si.port, "", ctx), 100, nullptr});
      out.routes.push_back(std::move(r));
    }
  }

 private:
  static const ServicePort* findPort(const Service& svc, int number) {
    for (const ServicePort& p : svc.ports) {
      if (p.port == number && p.protocol == Protocol::kTCP) return &p;
    }
    return nullptr;
  }

  void warn(std::string w) {
    if (warned_.insert(w).second) out_.warnings.push_back(std::move(w));
  }

  L7Route compileRoute(const VirtualService& vs, int index, const Service& routed, int port) {
    const HttpRoute& spec = vs.http[index];
    L7Route r;
    r.virtual_service = metaName(vs.meta);
    r.index = index;
    r.name =
        spec.name.empty() ? r.virtual_service + "/http[" + std::to_string(index) + "]" : spec.name;
    r.spec = &spec;
    if (auto rl = vs.route_rate_limits.find(spec.name); rl != vs.route_rate_limits.end()) {
      r.rate_limit = rl->second;
    }
    const std::string ctx =
        "VirtualService " + r.virtual_service + " http[" + std::to_string(index) + "]";
    auto compiled = matches_.find(&spec);
    if (compiled == matches_.end()) {
      std::vector<L7Match> ms;
      for (size_t j = 0; j < spec.match.size(); ++j) {
        std::string error;
        ms.push_back(compileMatch(spec.match[j], &error));
        if (!error.empty()) warn(ctx + " match[" + std::to_string(j) + "]: " + error);
      }
      compiled = matches_.emplace(&spec, std::move(ms)).first;
    }
    r.matches = compiled->second;
    for (const HttpRouteDestination& d : spec.route) {
      const uint32_t c = destination(d.destination, vs.meta.ns, routed, port, ctx);
      r.clusters.push_back(L7WeightedCluster{c, d.weight, &d.headers});
    }
    for (const HttpMirror& m : spec.mirrors) {
      const uint32_t c = destination(m.destination, vs.meta.ns, routed, port, ctx + " mirror");
      r.mirrors.push_back(L7Mirror{c, m.percentage});
    }
    return r;
  }

  // The cluster a route destination names, from the VirtualService of namespace `ns` routing
  // `routed`'s port `port`. The port: the destination's, else the routed port when the target
  // is the routed service or has that port, else the target's only port.
  uint32_t destination(const RouteDestinationTarget& t, const std::string& ns,
                       const Service& routed, int port, const std::string& ctx) {
    const std::string host = qualifyHost(t.host, ns);
    auto it = by_fqdn_.find(host);
    int number = t.port;
    if (number == 0) {
      if (it == by_fqdn_.end() || it->second == &routed || findPort(*it->second, port)) {
        number = port;
      } else if (it->second->ports.size() == 1) {
        number = it->second->ports[0].port;
      }
    }
    return cluster(host, number, t.subset, ctx);
  }

  // The cluster (host, port, subset), made on first use. Problems are warned for every route
  // that names it, with the route's context `ctx`.
  uint32_t cluster(const std::string& host, int port, const std::string& subset,
                   const std::string& ctx) {
    auto key = std::make_tuple(host, port, subset);
    auto found = clusters_.find(key);
    if (found == clusters_.end()) {
      std::string problem;
      out_.clusters.push_back(makeCluster(host, port, subset, &problem));
      found = clusters_.emplace(key, static_cast<uint32_t>(out_.clusters.size() - 1)).first;
      problems_.push_back(std::move(problem));
    }
    const std::string& problem = problems_[found->second];
    if (!problem.empty()) {
      warn(ctx + ": destination " + host + (subset.empty() ? "" : " subset " + subset) + ": " +
           problem + " (requests to it get 503)");
    }
    return found->second;
  }

  L7Cluster makeCluster(const std::string& host, int port, const std::string& subset,
                        std::string* problem) {
    L7Cluster c;
    c.name = "outbound|" + std::to_string(port) + "|" + subset + "|" + host;
    c.host = host;
    c.port = port;
    c.subset = subset;
    auto it = by_fqdn_.find(host);
    if (it == by_fqdn_.end()) {
      *problem = "no service has this host";
      return c;
    }
    const Service& svc = *it->second;
    c.service_ns = svc.meta.ns;
    c.service_name = svc.meta.name;
    const ServicePort* sp = port ? findPort(svc, port) : nullptr;
    if (!sp) {
      *problem = port ? "service " + metaName(svc.meta) + " has no TCP port " + std::to_string(port)
                      : "service " + metaName(svc.meta) +
                            " has several ports and none is the routed one: set the "
                            "destination port";
      return c;
    }
    c.http2 = protocolOf(*sp) == HttpProto::kHttp2;

    const DestinationRule* dr = findDestinationRule(s_, host, svc.meta.ns);
    const Subset* sub = nullptr;
    if (dr) {
      c.destination_rule = metaName(dr->meta);
      if (dr->traffic_policy) applyTrafficPolicy(*dr->traffic_policy, port, c);
      for (const Subset& candidate : dr->subsets) {
        if (candidate.name == subset) sub = &candidate;
      }
    }
    if (!subset.empty() && !sub) {
      *problem = dr ? "DestinationRule " + c.destination_rule + " does not define it"
                    : "no DestinationRule defines it";
      return c;
    }
    if (sub && sub->traffic_policy) applyTrafficPolicy(*sub->traffic_policy, port, c);

    auto ids = ids_.find({svc.meta.ns, svc.meta.name, port});
    if (ids == ids_.end()) {
      *problem = "service " + metaName(svc.meta) + " port " + std::to_string(port) +
                 " has no cluster IP in the datapath";
      return c;
    }
    for (uint32_t id : ids->second) {
      auto backends = ready_.find(id);
      if (backends == ready_.end()) continue;
      for (const BackendInfo* bi : backends->second) {
        L7Endpoint e;
        e.ip = bi->addr;
        e.port = bi->port;
        e.pod = d_.name(bi->pod);
        e.node = d_.name(bi->node);
        e.tunnel = bi->tunnel;
        e.key = endpointString(e.ip, e.port);
        auto pod = pods_.find(e.pod);
        if (pod != pods_.end()) e.labels = pod->second->meta.labels;
        if (sub && !labelsInclude(e.labels, sub->labels)) continue;
        c.endpoints.push_back(std::move(e));
      }
    }
    auto byAddr = [](const L7Endpoint& a, const L7Endpoint& b) {
      return std::tie(a.ip, a.port) < std::tie(b.ip, b.port);
    };
    std::stable_sort(c.endpoints.begin(), c.endpoints.end(), byAddr);
    c.endpoints.erase(std::unique(c.endpoints.begin(), c.endpoints.end(),
                                  [](const L7Endpoint& a, const L7Endpoint& b) {
                                    return a.ip == b.ip && a.port == b.port;
                                  }),
                      c.endpoints.end());
    return c;
  }

  const Snapshot& s_;
  const DesiredDatapath& d_;
  L7Config& out_;
  std::map<std::string, const Service*> by_fqdn_;
  std::map<std::tuple<std::string, std::string, int>, std::vector<uint32_t>> ids_;  // TCP ports
  std::map<uint32_t, std::vector<const BackendInfo*>> ready_;                       // by svc_id
  std::map<std::string, const Pod*> pods_;                                          // by "ns/name"
  std::vector<const VirtualService*> virtual_services_;  // with http routes, by ns/name
  std::map<std::tuple<std::string, int, std::string>, uint32_t> clusters_;
  std::vector<std::string> problems_;  // by cluster index, "" when none
  std::map<const HttpRoute*, std::vector<L7Match>> matches_;
  std::set<std::string> warned_;
};

}  // namespace

std::string serviceFqdn(std::string_view name, std::string_view ns) {
  std::string out(name);
  out += '.';
  out += ns;
  out += kClusterDomain;
  return out;
}

std::string qualifyHost(std::string_view host, std::string_view ns) {
  if (host.empty() || host[0] == '*') return std::string(host);
  const auto dots = std::count(host.begin(), host.end(), '.');
  if (dots == 0) return serviceFqdn(host, ns);
  if (dots == 1) return std::string(host) + std::string(kClusterDomain);  // "name.ns"
  if (host.size() > 4 && host.substr(host.size() - 4) == ".svc") {
    return std::string(host) + ".cluster.local";  // "name.ns.svc"
  }
  return std::string(host);
}

std::string l7Reason(const Snapshot& s, const Service& svc, const ServicePort& port) {
  // A port declared to carry another protocol (or UDP) stays L4 whatever routes name it: Istio
  // applies http routes and HTTP settings only to HTTP ports (declared or sniffed).
  const HttpProto proto = protocolOf(port);
  if (proto == HttpProto::kOpaque) return "";
  const std::string fqdn = serviceFqdn(svc.meta.name, svc.meta.ns);

  const VirtualService* vs = nullptr;
  for (const VirtualService& v : s.virtual_services) {
    if (vs && !metaLess(v.meta, vs->meta)) continue;
    if (std::none_of(v.http.begin(), v.http.end(),
                     [&](const HttpRoute& r) { return routeServesPort(r, port.port); })) {
      continue;
    }
    for (const std::string& h : v.hosts) {
      if (hostMatches(qualifyHost(h, v.meta.ns), fqdn)) {
        vs = &v;
        break;
      }
    }
  }
  if (vs) return "VirtualService " + metaName(vs->meta);

  if (const DestinationRule* dr = findDestinationRule(s, fqdn, svc.meta.ns);
      dr && dr->traffic_policy) {
    bool http = setsHttp(*dr->traffic_policy);
    for (const PortTrafficPolicy& pl : dr->traffic_policy->port_level_settings) {
      if (pl.port == port.port && setsHttp(pl)) http = true;
    }
    if (http) return "DestinationRule " + metaName(dr->meta);
  }

  if (!isHttp(proto)) return "";
  return port.app_protocol.empty() ? "port name " + port.name : "appProtocol " + port.app_protocol;
}

std::optional<OutlierDetection> l4OutlierDetection(const Snapshot& s, const Service& svc,
                                                   const ServicePort& port) {
  const DestinationRule* dr =
      findDestinationRule(s, serviceFqdn(svc.meta.name, svc.meta.ns), svc.meta.ns);
  if (!dr || !dr->traffic_policy) return std::nullopt;
  // The whole policy's setting, replaced by the port's own (field groups replace, as in L7).
  std::optional<OutlierDetection> out = dr->traffic_policy->outlier_detection;
  for (const PortTrafficPolicy& pl : dr->traffic_policy->port_level_settings) {
    if (pl.port == port.port && pl.outlier_detection) out = pl.outlier_detection;
  }
  return out;
}

bool L7StringMatcher::matches(std::string_view s) const {
  switch (kind) {
    case StringMatch::Kind::kPresent:
      return true;
    case StringMatch::Kind::kExact:
      return ignore_case ? sameIgnoringCase(s, value) : s == value;
    case StringMatch::Kind::kPrefix:
      return s.size() >= value.size() &&
             (ignore_case ? sameIgnoringCase(s.substr(0, value.size()), value)
                          : s.substr(0, value.size()) == value);
    case StringMatch::Kind::kRegex:
      if (!regex) return false;
      try {
        return std::regex_match(s.begin(), s.end(), *regex);
      } catch (const std::regex_error&) {  // error_complexity / error_stack: no match
        return false;
      }
  }
  return false;
}

L7Match compileMatch(const HttpMatch& m, std::string* error) {
  L7Match out;
  if (m.uri) out.uri = compileString(*m.uri, m.ignore_uri_case, "uri", error);
  if (m.scheme) out.scheme = compileString(*m.scheme, false, "scheme", error);
  if (m.method) out.method = compileString(*m.method, false, "method", error);
  if (m.authority) out.authority = compileString(*m.authority, false, "authority", error);
  out.headers = compileNamed(m.headers, "headers", error);
  out.without_headers = compileNamed(m.without_headers, "withoutHeaders", error);
  out.query_params = compileNamed(m.query_params, "queryParams", error);
  out.port = m.port;
  out.source_labels = m.source_labels;
  out.source_namespace = m.source_namespace;
  return out;
}

std::shared_ptr<const L7Config> compileL7(std::shared_ptr<const Snapshot> snapshot,
                                          const DesiredDatapath& desired) {
  auto out = std::make_shared<L7Config>();
  out->snapshot = std::move(snapshot);
  if (!out->snapshot) return out;
  // The compiler's indexes cover every service and backend: not built when no port is L7.
  if (std::none_of(desired.service_info.begin(), desired.service_info.end(),
                   [](const auto& entry) { return entry.second.l7; })) {
    return out;
  }
  Compiler compiler(*out->snapshot, desired, *out);
  for (const auto& [svc_id, si] : desired.service_info) {
    if (si.l7) compiler.compileService(svc_id, si);
  }
  return out;
}

const L7Route* matchRoute(const L7Service& svc, const RequestAttrs& req, int* match_index) {
  for (const L7Route& r : svc.routes) {
    if (r.matches.empty()) {
      if (match_index) *match_index = -1;
      return &r;
    }
    for (size_t i = 0; i < r.matches.size(); ++i) {
      if (matchOne(r.matches[i], req)) {
        if (match_index) *match_index = static_cast<int>(i);
        return &r;
      }
    }
  }
  if (match_index) *match_index = -1;
  return nullptr;
}

const L7WeightedCluster* pickCluster(const L7Route& route, uint32_t r) {
  if (route.clusters.empty()) return nullptr;
  uint64_t sum = 0;
  for (const L7WeightedCluster& c : route.clusters)
    sum += static_cast<uint64_t>(std::max(c.weight, 0));
  if (sum == 0) return &route.clusters.front();
  const uint64_t x = static_cast<uint64_t>(r % 100) * sum / 100;  // in [0, sum)
  uint64_t acc = 0;
  for (const L7WeightedCluster& c : route.clusters) {
    acc += static_cast<uint64_t>(std::max(c.weight, 0));
    if (x < acc) return &c;
  }
  return &route.clusters.back();
}

namespace {

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// What a matcher wants: `prefix "/api/"`, `exact "GET"`, `regex "a+"`, `present`; unquoted
// (`prefix /api/`) for describeMatch.
std::string wanted(const L7StringMatcher& m, bool quote = true) {
  if (m.kind == StringMatch::Kind::kPresent) return "present";
  std::string out = std::string(kindName(m.kind)) + " " + (quote ? quoted(m.value) : m.value);
  if (m.ignore_case) out += " (any case)";
  if (m.kind == StringMatch::Kind::kRegex && !m.regex) out += " (does not compile)";
  return out;
}

// `header x-canary=yes`, `header x-v prefix 2.`, `header x-debug present`.
std::string describeNamed(const char* what, const L7NamedMatcher& n) {
  if (n.match.kind == StringMatch::Kind::kExact && !n.match.ignore_case) {
    return std::string(what) + " " + n.name + "=" + n.match.value;
  }
  return std::string(what) + " " + n.name + " " + wanted(n.match, false);
}

std::string labelsText(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

// "" when `value` satisfies `m`, else `<what>: "<value>" is not <wanted>`.
std::string explainString(const char* what, const L7StringMatcher& m, std::string_view value) {
  if (m.matches(value)) return "";
  return std::string(what) + ": " + quoted(value) + " is not " + wanted(m);
}

}  // namespace

std::string explainMatch(const L7Match& m, const RequestAttrs& req) {
  if (m.port != 0 && m.port != req.port) {
    return "port: " + std::to_string(req.port) + " is not " + std::to_string(m.port);
  }
  if (!m.source_namespace.empty() && m.source_namespace != req.source_namespace) {
    if (req.source_namespace.empty()) {
      return "source namespace: unknown (want " + quoted(m.source_namespace) + ")";
    }
    return "source namespace: " + quoted(req.source_namespace) + " is not " +
           quoted(m.source_namespace);
  }
  if (!m.source_labels.empty()) {
    if (!req.source_labels) {
      return "source labels: unknown (want " + labelsText(m.source_labels) + ")";
    }
    for (const auto& [key, value] : m.source_labels) {
      auto it = req.source_labels->find(key);
      if (it == req.source_labels->end()) {
        return "source label " + key + ": absent (want " + quoted(value) + ")";
      }
      if (it->second != value) {
        return "source label " + key + ": " + quoted(it->second) + " is not " + quoted(value);
      }
    }
  }
  if (m.uri) {
    if (std::string why = explainString("uri", *m.uri, req.path); !why.empty()) return why;
  }
  if (m.scheme) {
    if (std::string why = explainString("scheme", *m.scheme, "http"); !why.empty()) return why;
  }
  if (m.method) {
    if (std::string why = explainString("method", *m.method, req.method); !why.empty()) return why;
  }
  if (m.authority) {
    if (std::string why = explainString("authority", *m.authority, req.authority); !why.empty()) {
      return why;
    }
  }
  auto header = [&](const std::string& name) -> const std::string* {
    return req.headers ? req.headers->get(name) : nullptr;
  };
  for (const L7NamedMatcher& h : m.headers) {
    const std::string* v = header(h.name);
    if (!v) return "header " + h.name + ": absent (want " + wanted(h.match) + ")";
    if (!h.match.matches(*v)) {
      return "header " + h.name + ": " + quoted(*v) + " is not " + wanted(h.match);
    }
  }
  for (const L7NamedMatcher& h : m.without_headers) {
    const std::string* v = header(h.name);
    if (!v || !h.match.matches(*v)) continue;
    if (h.match.kind == StringMatch::Kind::kPresent) {
      return "without header " + h.name + ": present";
    }
    return "without header " + h.name + ": " + quoted(*v) + " is " + wanted(h.match);
  }
  for (const L7NamedMatcher& q : m.query_params) {
    std::string_view v;
    if (!queryParam(req.query, q.name, &v)) {
      return "query " + q.name + ": absent (want " + wanted(q.match) + ")";
    }
    if (!q.match.matches(v)) {
      return "query " + q.name + ": " + quoted(v) + " is not " + wanted(q.match);
    }
  }
  return "";
}

std::string describeMatch(const L7Match& m) {
  std::vector<std::string> parts;
  auto field = [&](const char* what, const std::optional<L7StringMatcher>& s) {
    if (s) parts.push_back(std::string(what) + " " + wanted(*s, false));
  };
  field("uri", m.uri);
  field("scheme", m.scheme);
  field("method", m.method);
  field("authority", m.authority);
  for (const L7NamedMatcher& h : m.headers) parts.push_back(describeNamed("header", h));
  for (const L7NamedMatcher& h : m.without_headers) {
    parts.push_back(describeNamed("without header", h));
  }
  for (const L7NamedMatcher& q : m.query_params) parts.push_back(describeNamed("query", q));
  if (m.port) parts.push_back("port " + std::to_string(m.port));
  if (!m.source_labels.empty()) parts.push_back("source labels " + labelsText(m.source_labels));
  if (!m.source_namespace.empty()) parts.push_back("source namespace " + m.source_namespace);
  if (parts.empty()) return "any";
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

}  // namespace meshlet::l7
