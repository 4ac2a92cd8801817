// `/v1/routes` and `/v1/routes/explain`: the L7 routing tables the mesh proxy runs, as rows for
// `meshlet routes`, and which route a given request would take (docs/ADMIN_API.md).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>
#include <tuple>

#include "agent/admin/views.h"
#include "agent/l7/routes.h"

namespace meshlet {
namespace {

using l7::L7Cluster;
using l7::L7Config;
using l7::L7Route;
using l7::L7Service;

// "web.shop": how the CLI names a service port's host.
std::string serviceName(const L7Service& s) { return s.name + "." + s.ns; }

// 250 -> "250ms", 2000 -> "2s".
std::string durationText(int64_t ms) {
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// 100 -> "100%", 12.5 -> "12.5%".
std::string percentText(double p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", p);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s + "%";
}

std::string joined(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// A destination as people read it: "web.shop.svc.cluster.local|v1", with ":port" when it is not
// the routed port.
std::string clusterLabel(const L7Config& cfg, uint32_t index, int routed_port) {
  if (index >= cfg.clusters.size()) return "?";
  const L7Cluster& c = cfg.clusters[index];
  std::string out = c.host;
  if (c.port != routed_port) out += ":" + std::to_string(c.port);
  if (!c.subset.empty()) out += "|" + c.subset;
  return out;
}

size_t endpointCount(const L7Config& cfg, uint32_t index) {
  return index < cfg.clusters.size() ? cfg.clusters[index].endpoints.size() : 0;
}

const char* retryOnName(RetryOn r) {
  switch (r) {
    case RetryOn::k5xx:
      return "5xx";
    case RetryOn::kGatewayError:
      return "gateway-error";
    case RetryOn::kConnectFailure:
      return "connect-failure";
    case RetryOn::kReset:
      return "reset";
    case RetryOn::kRetriable4xx:
      return "retriable-4xx";
    case RetryOn::kRefusedStream:
      return "refused-stream";
    case RetryOn::kRetriableStatusCodes:
      return "retriable-status-codes";
  }
  return "?";
}

// "request set x-a, remove x-b; response add x-c" ("" when there are no rules).
std::string headerRulesText(const HeaderRules& h) {
  auto side = [](const char* name, const HeaderOperations& ops) -> std::string {
    std::vector<std::string> parts;
    auto names = [](const std::map<std::string, std::string>& m) {
      std::vector<std::string> out;
      for (const auto& [k, v] : m) out.push_back(k);
      return joined(out, " ");
    };
    if (!ops.set.empty()) parts.push_back("set " + names(ops.set));
    if (!ops.add.empty()) parts.push_back("add " + names(ops.add));
    if (!ops.remove.empty()) parts.push_back("remove " + joined(ops.remove, " "));
    return parts.empty() ? "" : std::string(name) + " " + joined(parts, ", ");
  };
  std::vector<std::string> parts;
  if (std::string r = side("request", h.request); !r.empty()) parts.push_back(r);
  if (std::string r = side("response", h.response); !r.empty()) parts.push_back(r);
  return joined(parts, "; ");
}

// The route's action: "route A 80%, B 20%", "redirect ...", then rewrite, timeout, retries,
// fault, mirrors and header rules, "; "-separated.
std::string actionText(const L7Config& cfg, const L7Service& svc, const L7Route& r) {
  std::vector<std::string> parts;
  const HttpRoute* spec = r.spec;
  if (spec && spec->redirect) {
    const HttpRedirect& rd = *spec->redirect;
    std::string target;
    if (!rd.scheme.empty()) target += rd.scheme + "://";
    target += rd.authority;
    if (rd.port) target += ":" + std::to_string(rd.port);
    target += rd.uri.empty() ? "(same path)" : rd.uri;
    parts.push_back("redirect " + target + " " + std::to_string(rd.redirect_code));
  } else if (r.clusters.empty()) {
    parts.push_back("route (no destination)");
  } else {
    std::vector<std::string> dests;
    for (const auto& c : r.clusters) {
      dests.push_back(clusterLabel(cfg, c.cluster, svc.port) + " " + std::to_string(c.weight) +
                      "%");
    }
    parts.push_back("route " + joined(dests, ", "));
  }
  if (spec && spec->rewrite) {
    const HttpRewrite& rw = *spec->rewrite;
    if (!rw.uri.empty()) parts.push_back("rewrite uri " + rw.uri);
    if (rw.uri_regex) {
      parts.push_back("rewrite uri regex " + rw.uri_regex->first + " -> " + rw.uri_regex->second);
    }
    if (!rw.authority.empty()) parts.push_back("rewrite authority " + rw.authority);
  }
  if (spec && spec->timeout_ms) {
    parts.push_back(*spec->timeout_ms ? "timeout " + durationText(*spec->timeout_ms)
                                      : std::string("timeout none"));
  }
  if (spec && spec->retries) {
    const HttpRetry& rt = *spec->retries;
    if (rt.attempts == 0) {
      parts.push_back("retries off");
    } else {
      std::string text = "retries " + std::to_string(rt.attempts);
      std::vector<std::string> on;
      for (RetryOn o : rt.retry_on) on.push_back(retryOnName(o));
      for (int code : rt.retriable_status_codes) on.push_back(std::to_string(code));
      if (!on.empty()) text += " on " + joined(on, ",");
      if (rt.per_try_timeout_ms) text += " per try " + durationText(*rt.per_try_timeout_ms);
      parts.push_back(text);
    }
  }
  if (spec && spec->fault) {
    if (spec->fault->delay) {
      parts.push_back("fault delay " + durationText(spec->fault->delay->fixed_delay_ms) + " " +
                      percentText(spec->fault->delay->percentage));
    }
    if (spec->fault->abort) {
      parts.push_back("fault abort " + std::to_string(spec->fault->abort->http_status) + " " +
                      percentText(spec->fault->abort->percentage));
    }
  }
  for (const auto& m : r.mirrors) {
    parts.push_back("mirror " + clusterLabel(cfg, m.cluster, svc.port) + " " +
                    percentText(m.percentage));
  }
  if (spec) {
    if (std::string h = headerRulesText(spec->headers); !h.empty()) {
      parts.push_back("headers " + h);
    }
  }
  return joined(parts, "; ");
}

// The match list: entries separated by " | " (any one matches); "any" when empty.
std::string matchText(const L7Route& r) {
  if (r.matches.empty()) return "any";
  std::vector<std::string> entries;
  for (const auto& m : r.matches) entries.push_back(l7::describeMatch(m));
  return joined(entries, " | ");
}

// The L7 services, one per (namespace, name, port) (a dual-stack service has one svc_id per
// family, with the same routes), in that order.
std::vector<const L7Service*> sortedServices(const L7Config& cfg) {
  std::map<std::tuple<std::string, std::string, int>, const L7Service*> by_name;
  for (const auto& [id, s] : cfg.services)
    by_name.emplace(std::make_tuple(s.ns, s.name, s.port), &s);
  std::vector<const L7Service*> out;
  for (const auto& [key, s] : by_name) out.push_back(s);
  return out;
}

std::string lowered(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trimmed(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

struct ParsedUrl {
  std::string host;       // as written, without brackets
  std::string authority;  // host[:port] as written
  int port = 80;
  std::string path = "/";
  std::string query;
};

Result<ParsedUrl> parseUrl(const std::string& url) {
  const std::string usage =
      "URL \"" + url + "\": want http://HOST[:PORT]/path?query (HOST a service or cluster IP)";
  std::string rest = url;
  if (const size_t scheme = rest.find("://"); scheme != std::string::npos) {
    if (lowered(rest.substr(0, scheme)) != "http") {
      return Error(usage + "; only http is proxied on the L7 path");
    }
    rest = rest.substr(scheme + 3);
  }
  if (const size_t hash = rest.find('#'); hash != std::string::npos) rest.resize(hash);
  ParsedUrl out;
  const size_t end = rest.find_first_of("/?");
  out.authority = rest.substr(0, end);
  if (end != std::string::npos) {
    std::string target = rest.substr(end);
    const size_t q = target.find('?');
    if (q != std::string::npos) {
      out.query = target.substr(q + 1);
      target.resize(q);
    }
    out.path = target.empty() ? "/" : target;
  }
  std::string port_text;
  if (!out.authority.empty() && out.authority[0] == '[') {
    const size_t close = out.authority.find(']');
    if (close == std::string::npos) return Error(usage);
    out.host = out.authority.substr(1, close - 1);
    if (close + 1 < out.authority.size()) {
      if (out.authority[close + 1] != ':') return Error(usage);
      port_text = out.authority.substr(close + 2);
      if (port_text.empty()) return Error(usage);
    }
  } else {
    const size_t colon = out.authority.rfind(':');
    out.host = out.authority.substr(0, colon);
    if (colon != std::string::npos) {
      port_text = out.authority.substr(colon + 1);
      if (port_text.empty()) return Error(usage);
    }
  }
  if (out.host.empty() || out.host.find_first_of(" \t@") != std::string::npos) {
    return Error(usage);
  }
  if (!port_text.empty()) {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c));
        })) {
      return Error(usage);
    }
    out.port = std::stoi(port_text);
    if (out.port < 1 || out.port > 65535) return Error(usage);
  }
  return out;
}

// Why the service port is not on the L7 path (for the error when it is not found).
std::string notL7(const std::string& ns, const std::string& name, int port) {
  return "service " + ns + "/" + name + " port " + std::to_string(port) +
         " is not on the L7 path: its connections are balanced in the kernel, without routes";
}

// The L7 service the request to `url` reaches.
Result<const L7Service*> findService(const AgentView& v, const ParsedUrl& url,
                                     const std::string& source_ns) {
  const L7Config& cfg = *v.l7;
  const auto by_host = [&](const std::string& fqdn) -> const L7Service* {
    for (const auto& [id, s] : cfg.services) {
      if (s.host == fqdn && s.port == url.port) return &s;
    }
    return nullptr;
  };
  if (auto ip = IpAddr::parse(url.host)) {
    if (v.desired) {
      for (const auto& [id, si] : v.desired->service_info) {
        if (si.cluster_ip != *ip || si.port != url.port || si.protocol != Protocol::kTCP) continue;
        auto it = cfg.services.find(id);
        if (it != cfg.services.end()) return &it->second;
        return Error(notL7(si.ns.str(), si.name.str(), url.port));
      }
    }
    return Error("no service has cluster IP " + url.host + " port " + std::to_string(url.port));
  }
  std::string host = lowered(url.host);
  if (!host.empty() && host.back() == '.') host.pop_back();
  std::string fqdn;
  if (host.find('.') == std::string::npos) {
    // A bare name resolves in the client's namespace, as cluster DNS does; without --source,
    // it must be unambiguous.
    std::set<std::string> namespaces;
    if (!source_ns.empty()) {
      namespaces.insert(source_ns);
    } else if (v.snapshot) {
      for (const Service& s : v.snapshot->services) {
        if (s.meta.name == host) namespaces.insert(s.meta.ns);
      }
    }
    if (namespaces.empty()) return Error("no service named " + host);
    if (namespaces.size() > 1) {
      std::vector<std::string> names;
      for (const std::string& ns : namespaces) names.push_back(host + "." + ns);
      return Error("service name " + host + " is ambiguous (" + joined(names, ", ") +
                   "): write NAME.NAMESPACE, or give --source");
    }
    fqdn = l7::serviceFqdn(host, *namespaces.begin());
  } else {
    fqdn = l7::qualifyHost(host, "default");
  }
  if (const L7Service* s = by_host(fqdn)) return s;
  // Not on the L7 path: say whether the service or its port exists at all.
  if (v.snapshot) {
    for (const Service& s : v.snapshot->services) {
      if (l7::serviceFqdn(s.meta.name, s.meta.ns) != fqdn) continue;
      for (const ServicePort& p : s.ports) {
        if (p.port == url.port && p.protocol == Protocol::kTCP) {
          return Error(notL7(s.meta.ns, s.meta.name, url.port));
        }
      }
      return Error("service " + s.meta.ns + "/" + s.meta.name + " has no TCP port " +
                   std::to_string(url.port));
    }
  }
  return Error("no service " + fqdn +
               " (HOST: NAME, NAME.NAMESPACE, "
               "NAME.NAMESPACE.svc.cluster.local or a cluster IP)");
}

// Why route `r` did not take the request: its entry's first failing condition, or each entry's
// as "match[i]: ...; match[j]: ...".
std::string whyNot(const L7Route& r, const l7::RequestAttrs& attrs) {
  if (r.matches.size() == 1) return l7::explainMatch(r.matches[0], attrs);
  std::vector<std::string> entries;
  for (size_t i = 0; i < r.matches.size(); ++i) {
    entries.push_back("match[" + std::to_string(i) + "]: " + l7::explainMatch(r.matches[i], attrs));
  }
  return joined(entries, "; ");
}

}  // namespace

Json routesJson(const AgentView& v, const std::string& filter) {
  Json out = Json::array();
  if (!v.l7) return out;
  const L7Config& cfg = *v.l7;
  std::set<std::string> mentions;  // with a filter: what a warning must name to be shown
  for (const L7Service* s : sortedServices(cfg)) {
    if (!filter.empty() && s->ns + "/" + s->name != filter) continue;
    if (!filter.empty()) {
      mentions.insert("service " + filter + " ");
      mentions.insert("service " + filter + ":");
      mentions.insert(s->host);
    }
    for (const L7Route& r : s->routes) {
      if (!filter.empty() && !r.virtual_service.empty()) {
        mentions.insert("VirtualService " + r.virtual_service + " ");
      }
      Json endpoints = Json::array();
      for (const auto& c : r.clusters) endpoints.push_back(endpointCount(cfg, c.cluster));
      out.push_back({{"kind", "route"},
                     {"service", serviceName(*s)},
                     {"port", s->port},
                     {"l7_reason", s->reason},
                     {"route", r.name},
                     {"virtual_service", r.virtual_service},
                     {"match", matchText(r)},
                     {"endpoints", endpoints},
                     {"action", actionText(cfg, *s, r)}});
    }
  }
  for (const std::string& w : cfg.warnings) {
    if (!filter.empty() && std::none_of(mentions.begin(), mentions.end(), [&](const auto& m) {
          return w.find(m) != std::string::npos;
        })) {
      continue;
    }
    out.push_back({{"kind", "warning"}, {"message", w}});
  }
  return out;
}

Result<Json> explainRouteJson(const AgentView& v, const RouteQuery& q) {
  if (q.method.empty()) return Error("no METHOD given");
  auto url = parseUrl(q.url);
  if (!url) return url.error();
  l7::HeaderList headers;
  std::string authority = url->authority;
  for (const std::string& line : q.headers) {
    const size_t colon = line.find(':');
    std::string name = colon == std::string::npos ? "" : trimmed(line.substr(0, colon));
    if (name.empty() || name.find_first_of(" \t") != std::string::npos) {
      return Error("header \"" + line + "\": want 'Name: value'");
    }
    std::string value = trimmed(line.substr(colon + 1));
    if (lowered(name) == "host") authority = value;
    headers.add(lowered(name), value);
  }
  const Pod* source = nullptr;
  if (!q.source.empty()) {
    std::string key = q.source.find('/') == std::string::npos ? "default/" + q.source : q.source;
    if (v.snapshot) {
      for (const Pod& p : v.snapshot->pods) {
        if (p.meta.ns + "/" + p.meta.name == key) source = &p;
      }
    }
    if (!source) return Error("no pod " + key + " (--source NAMESPACE/POD)");
  }
  if (!v.l7) return Error("no L7 configuration yet: the mesh proxy has none");
  auto svc = findService(v, *url, source ? source->meta.ns : "");
  if (!svc) return svc.error();
  const L7Service& s = **svc;
  const L7Config& cfg = *v.l7;

  l7::RequestAttrs attrs;
  attrs.method = q.method;
  attrs.path = url->path;
  attrs.query = url->query;
  attrs.authority = authority;
  attrs.headers = &headers;
  attrs.port = s.port;
  if (source) {
    attrs.source_labels = &source->meta.labels;
    attrs.source_namespace = source->meta.ns;
  }
  int index = -1;
  const L7Route* route = l7::matchRoute(s, attrs, &index);

  Json not_matched = Json::array();
  for (const L7Route& r : s.routes) {
    if (&r == route) break;
    not_matched.push_back(
        {{"route", r.name}, {"virtual_service", r.virtual_service}, {"why", whyNot(r, attrs)}});
  }
  Json destinations = Json::array();
  if (route && !(route->spec && route->spec->redirect)) {
    for (const auto& c : route->clusters) {
      std::vector<std::string> addresses;
      if (c.cluster < cfg.clusters.size()) {
        for (const auto& e : cfg.clusters[c.cluster].endpoints) {
          addresses.push_back(endpointString(e.ip, e.port));
        }
      }
      destinations.push_back({{"destination", clusterLabel(cfg, c.cluster, s.port)},
                              {"weight", c.weight},
                              {"endpoints", addresses.size()},
                              {"addresses", joined(addresses, ",")}});
    }
  }
  std::string match;
  if (route) match = index >= 0 ? l7::describeMatch(route->matches[index]) : "any";
  return Json{{"request", q.method + " " + q.url},
              {"service", serviceName(s)},
              {"port", s.port},
              {"l7_reason", s.reason},
              {"source", source ? source->meta.ns + "/" + source->meta.name : ""},
              {"result", route ? "matched" : "no route: 404 NR"},
              {"route", route ? route->name : ""},
              {"virtual_service", route ? route->virtual_service : ""},
              {"match_index", index},
              {"match", match},
              {"action", route ? actionText(cfg, s, *route) : "404 (no route)"},
              {"destinations", destinations},
              {"not_matched", not_matched}};
}

std::pair<int, Json> routesAnswer(const AgentView& v, const std::string& path,
                                  const std::map<std::string, std::string>& query) {
  auto param = [&](const char* name) {
    auto it = query.find(name);
    return it == query.end() ? std::string() : it->second;
  };
  auto error = [](int code, const std::string& message) {
    return std::make_pair(code, Json{{"error", message}});
  };
  if (!v.l7) return error(503, "no L7 configuration yet: the mesh proxy has none");
  if (path == "/v1/routes/explain") {
    RouteQuery q;
    q.method = param("method");
    q.url = param("url");
    q.source = param("source");
    const std::string headers = param("headers");
    for (size_t start = 0; start < headers.size();) {
      size_t end = headers.find('\n', start);
      if (end == std::string::npos) end = headers.size();
      if (end > start) q.headers.push_back(headers.substr(start, end - start));
      start = end + 1;
    }
    auto out = explainRouteJson(v, q);
    if (!out) return error(400, out.error().message());
    return {200, std::move(*out)};
  }
  std::string filter = param("service");
  if (!filter.empty() && filter.find('/') == std::string::npos) filter = "default/" + filter;
  Json out = routesJson(v, filter);
  if (!filter.empty() && std::none_of(out.begin(), out.end(), [](const Json& row) {
        return row.value("kind", "") == "route";
      })) {
    if (v.snapshot) {
      for (const Service& s : v.snapshot->services) {
        if (s.meta.ns + "/" + s.meta.name != filter) continue;
        return error(404, "service " + filter +
                              " has no port on the L7 path: its connections are balanced in the "
                              "kernel, without routes");
      }
    }
    return error(404, "no service " + filter);
  }
  return {200, std::move(out)};
}

}  // namespace meshlet
