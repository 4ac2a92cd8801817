// Parsers for v1 Namespace and v1 Service, and the metadata every kind shares.
#include <set>
#include <string>
#include <vector>

#include "agent/sources/k8s_objects.h"

namespace meshlet::file_source_internal {
namespace {

std::string familyName(IpFamily f) { return f == IpFamily::kV4 ? "IPv4" : "IPv6"; }

std::string protocolName(Protocol p) { return p == Protocol::kUDP ? "UDP" : "TCP"; }

// spec.clusterIP / spec.clusterIPs → cluster_ips. "None" is headless (no cluster IP).
Status parseClusterIps(const Reader& r, const Field& spec, const std::string& type, Service& out,
                       bool& headless) {
  Field ip_field = spec.child("clusterIP");
  Field ips_field = spec.child("clusterIPs");
  std::string cluster_ip;
  MESHLET_SOURCES_TRY(r.string(ip_field, cluster_ip, false));
  MESHLET_SOURCES_TRY(r.expectSeq(ips_field, false));
  std::vector<std::string> texts;
  for (size_t i = 0; i < ips_field.size(); ++i) {
    std::string text;
    MESHLET_SOURCES_TRY(r.string(ips_field.element(i), text, true));
    texts.push_back(text);
  }
  // An ExternalName Service is a DNS alias: it has no cluster IP and no endpoints.
  if (type == "ExternalName") return Status::Ok();
  if (!texts.empty() && !cluster_ip.empty() && texts[0] != cluster_ip) {
    return r.error(ips_field.element(0),
                   quote(texts[0]) + " must match spec.clusterIP " + quote(cluster_ip));
  }
  bool from_list = !texts.empty();
  if (!from_list && !cluster_ip.empty()) texts.push_back(cluster_ip);
  if (texts.empty()) {
    return r.error(ip_field,
                   "required field is missing (the file source has no IP allocator; "
                   "use \"None\" for a headless Service)");
  }
  if (texts[0] == "None") {
    if (texts.size() > 1) {
      return r.error(ips_field, "\"None\" (headless) must be the only entry");
    }
    headless = true;
    return Status::Ok();
  }
  if (texts.size() > 2) return r.error(ips_field, "at most two addresses (one per IP family)");
  for (size_t i = 0; i < texts.size(); ++i) {
    Field f = from_list ? ips_field.element(i) : Field(ip_field);
    IpAddr ip;
    MESHLET_SOURCES_TRY(r.ip(f, ip));
    if (!out.cluster_ips.empty() && out.cluster_ips[0].family == ip.family) {
      return r.error(f, "both addresses are " + familyName(ip.family) +
                            " (at most one address per IP family)");
    }
    out.cluster_ips.push_back(ip);
  }
  return Status::Ok();
}

Status parseTargetPort(const Reader& r, const Field& f, int port, TargetPort& out) {
  out = TargetPort{port, ""};
  if (!f.present()) return Status::Ok();
  if (!f.isScalar()) return r.error(f, "expected a port number or name, got " + f.describe());
  if (f.isQuotedString() || f.scalar().find_first_not_of("+-0123456789") != std::string::npos) {
    // A named port of the selected pods' containers. "" means "same as port", as in Kubernetes.
    if (f.scalar().empty()) return Status::Ok();
    if (std::string why = checkIanaSvcName(f.scalar()); !why.empty()) {
      return r.error(f, quote(f.scalar()) + " is not a valid port name: " + why);
    }
    out = TargetPort{0, f.scalar()};
    return Status::Ok();
  }
  int64_t number = 0;
  MESHLET_SOURCES_TRY(r.integer(f, number, true));
  if (number == 0) return Status::Ok();  // 0 is defaulted to port, as in Kubernetes
  MESHLET_SOURCES_TRY(r.port(f, out.number, true));
  return Status::Ok();
}

Status parseServicePorts(const Reader& r, const Field& ports, Service& out) {
  MESHLET_SOURCES_TRY(r.expectSeq(ports, false));
  for (size_t i = 0; i < ports.size(); ++i) {
    Field p = ports.element(i);
    MESHLET_SOURCES_TRY(r.expectMap(p, true));
    ServicePort sp;
    MESHLET_SOURCES_TRY(r.string(p.child("name"), sp.name, false));
    if (!sp.name.empty()) {
      if (std::string why = checkDns1123Label(sp.name); !why.empty()) {
        return r.error(p.child("name"), quote(sp.name) + " is not a valid port name: " + why);
      }
    } else if (ports.size() > 1) {
      return r.error(p.child("name"), "required when the Service has more than one port");
    }
    MESHLET_SOURCES_TRY(r.protocol(p.child("protocol"), sp.protocol));
    MESHLET_SOURCES_TRY(r.port(p.child("port"), sp.port, true));
    MESHLET_SOURCES_TRY(parseTargetPort(r, p.child("targetPort"), sp.port, sp.target_port));
    MESHLET_SOURCES_TRY(r.string(p.child("appProtocol"), sp.app_protocol, false));
    for (size_t j = 0; j < out.ports.size(); ++j) {
      const ServicePort& other = out.ports[j];
      std::string also = " (also spec.ports[" + std::to_string(j) + "])";
      if (!sp.name.empty() && other.name == sp.name) {
        return r.error(p.child("name"), "duplicate port name " + quote(sp.name) + also);
      }
      if (other.port == sp.port && other.protocol == sp.protocol) {
        return r.error(p, "duplicate port " + std::to_string(sp.port) + "/" +
                              protocolName(sp.protocol) + also);
      }
    }
    out.ports.push_back(std::move(sp));
  }
  return Status::Ok();
}

}  // namespace

Status parseMeta(const Reader& r, const Field& root, bool namespaced, NameCheck check,
                 const Origin& origin, ObjectMeta& out) {
  Field meta = root.child("metadata");
  MESHLET_SOURCES_TRY(r.expectMap(meta, true));
  Field name = meta.child("name");
  MESHLET_SOURCES_TRY(r.string(name, out.name, true));
  if (out.name.empty()) return r.error(name, "must not be empty");
  if (std::string why = check(out.name); !why.empty()) {
    return r.error(name, quote(out.name) + " is not a valid name: " + why);
  }
  if (namespaced) {
    Field ns = meta.child("namespace");
    std::string text;
    MESHLET_SOURCES_TRY(r.string(ns, text, false));
    if (text.empty()) text = "default";
    if (std::string why = checkDns1123Label(text); !why.empty()) {
      return r.error(ns, quote(text) + " is not a valid namespace name: " + why);
    }
    out.ns = text;
  } else {
    out.ns = Name();  // cluster-scoped: a namespace field is ignored, as the API server does
  }
  MESHLET_SOURCES_TRY(r.labels(meta.child("labels"), out.labels));
  MESHLET_SOURCES_TRY(r.annotations(meta.child("annotations"), out.annotations));
  std::string uid;
  MESHLET_SOURCES_TRY(r.string(meta.child("uid"), uid, false));
  out.uid = uid;
  out.origin = origin;
  return Status::Ok();
}

Status parseNamespace(const Reader& r, const Field& root, const Origin& origin, Namespace& out) {
  return parseMeta(r, root, false, checkDns1123Label, origin, out.meta);
}

Status parseService(const Reader& r, const Field& root, const Origin& origin, Service& out) {
  MESHLET_SOURCES_TRY(parseMeta(r, root, true, checkDns1035Label, origin, out.meta));
  Field spec = root.child("spec");
  MESHLET_SOURCES_TRY(r.expectMap(spec, true));

  Field type_field = spec.child("type");
  std::string type = "ClusterIP";
  MESHLET_SOURCES_TRY(r.string(type_field, type, false));
  static const std::set<std::string> kTypes = {"ClusterIP", "NodePort", "LoadBalancer",
                                               "ExternalName"};
  if (!kTypes.count(type)) {
    return r.error(type_field, quote(type) +
                                   " is not a valid type (ClusterIP, NodePort, LoadBalancer or "
                                   "ExternalName)");
  }

  bool headless = false;
  MESHLET_SOURCES_TRY(parseClusterIps(r, spec, type, out, headless));

  Field ports = spec.child("ports");
  MESHLET_SOURCES_TRY(parseServicePorts(r, ports, out));
  if (out.ports.empty() && !headless && type != "ExternalName") {
    return r.error(ports, "required field is missing (only a headless Service may have no port)");
  }

  Labels selector;
  MESHLET_SOURCES_TRY(r.labels(spec.child("selector"), selector));
  // An empty selector selects nothing (the API server stores it as no selector), and an
  // ExternalName Service never has endpoints.
  if (!selector.empty() && type != "ExternalName") out.selector = std::move(selector);

  Field affinity_field = spec.child("sessionAffinity");
  std::string affinity = "None";
  MESHLET_SOURCES_TRY(r.string(affinity_field, affinity, false));
  if (affinity == "None") {
    out.session_affinity = SessionAffinity::kNone;
  } else if (affinity == "ClientIP") {
    out.session_affinity = SessionAffinity::kClientIP;
  } else {
    return r.error(affinity_field, quote(affinity) + " is not supported (None or ClientIP)");
  }

  Field distribution_field = spec.child("trafficDistribution");
  std::string distribution;
  MESHLET_SOURCES_TRY(r.string(distribution_field, distribution, false));
  if (distribution == "PreferClose" || distribution == "PreferSameZone" ||
      distribution == "PreferSameNode") {
    out.prefer_close = true;
  } else if (!distribution.empty()) {
    return r.error(
        distribution_field,
        quote(distribution) + " is not supported (PreferClose, PreferSameZone or PreferSameNode)");
  }

  if (auto rl = out.meta.annotations.find(kRateLimitAnnotation); rl != out.meta.annotations.end()) {
    LocalRateLimit limit;
    std::string why;
    if (!parseLocalRateLimit(rl->second, &limit, &why)) {
      return r.error(std::string("metadata.annotations[") + quote(kRateLimitAnnotation) + "]", why);
    }
    out.rate_limit = limit;
  }
  auto policy = out.meta.annotations.find(kLbPolicyAnnotation);
  if (policy != out.meta.annotations.end()) {
    if (policy->second == "round-robin") {
      out.round_robin = true;
    } else if (policy->second != "random") {
      return r.error(std::string("metadata.annotations[") + quote(kLbPolicyAnnotation) + "]",
                     quote(policy->second) +
                         " is not a valid load-balancing policy (random or "
                         "round-robin)");
    }
  }
  return Status::Ok();
}

}  // namespace meshlet::file_source_internal
