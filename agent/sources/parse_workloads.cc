// Parsers for discovery.k8s.io/v1 EndpointSlice and v1 Pod.
#include <set>
#include <string>
#include <vector>

#include "agent/sources/k8s_objects.h"

namespace meshlet::file_source_internal {
namespace {

std::string familyName(IpFamily f) { return f == IpFamily::kV4 ? "IPv4" : "IPv6"; }

Status parseEndpointPorts(const Reader& r, const Field& ports, EndpointSlice& out) {
  MESHLET_SOURCES_TRY(r.expectSeq(ports, false));
  for (size_t i = 0; i < ports.size(); ++i) {
    Field p = ports.element(i);
    MESHLET_SOURCES_TRY(r.expectMap(p, true));
    EndpointPort ep;
    MESHLET_SOURCES_TRY(r.string(p.child("name"), ep.name, false));
    if (!ep.name.empty()) {
      if (std::string why = checkDns1123Label(ep.name); !why.empty()) {
        return r.error(p.child("name"), quote(ep.name) + " is not a valid port name: " + why);
      }
    }
    MESHLET_SOURCES_TRY(r.protocol(p.child("protocol"), ep.protocol));
    // Kubernetes allows a port-less entry meaning "all ports"; meshlet cannot load-balance
    // that, so it is refused rather than silently ignored.
    MESHLET_SOURCES_TRY(r.port(p.child("port"), ep.port, true));
    for (size_t j = 0; j < out.ports.size(); ++j) {
      if (out.ports[j].name == ep.name) {
        return r.error(p.child("name"), "duplicate port name " + quote(ep.name) + " (also ports[" +
                                            std::to_string(j) + "])");
      }
    }
    out.ports.push_back(std::move(ep));
  }
  return Status::Ok();
}

Status parseEndpoint(const Reader& r, const Field& e, IpFamily family, Endpoint& out) {
  MESHLET_SOURCES_TRY(r.expectMap(e, true));
  Field addresses = e.child("addresses");
  MESHLET_SOURCES_TRY(r.expectSeq(addresses, true));
  if (addresses.size() == 0) return r.error(addresses, "must have at least one address");
  if (addresses.size() > 100) return r.error(addresses, "must have at most 100 addresses");
  for (size_t i = 0; i < addresses.size(); ++i) {
    Field a = addresses.element(i);
    IpAddr ip;
    MESHLET_SOURCES_TRY(r.ip(a, ip));
    if (ip.family != family) {
      return r.error(a, quote(a.scalar()) + " is an " + familyName(ip.family) +
                            " address but addressType is " + familyName(family));
    }
    if (i == 0) out.address = ip;
  }

  // Kubernetes: ready absent means ready; serving absent means the same as ready; terminating
  // absent means not terminating.
  Field conditions = e.child("conditions");
  MESHLET_SOURCES_TRY(r.expectMap(conditions, false));
  out.ready = true;
  MESHLET_SOURCES_TRY(r.boolean(conditions.child("ready"), out.ready));
  out.serving = out.ready;
  MESHLET_SOURCES_TRY(r.boolean(conditions.child("serving"), out.serving));
  out.terminating = false;
  MESHLET_SOURCES_TRY(r.boolean(conditions.child("terminating"), out.terminating));

  std::string node;
  MESHLET_SOURCES_TRY(r.string(e.child("nodeName"), node, false));
  out.node_name = node;
  Field target = e.child("targetRef");
  MESHLET_SOURCES_TRY(r.expectMap(target, false));
  std::string kind;
  std::string name;
  MESHLET_SOURCES_TRY(r.string(target.child("kind"), kind, false));
  MESHLET_SOURCES_TRY(r.string(target.child("name"), name, false));
  if (kind == "Pod") out.target_pod = name;
  return Status::Ok();
}

Status parseContainers(const Reader& r, const Field& containers, Pod& out) {
  MESHLET_SOURCES_TRY(r.expectSeq(containers, false));
  for (size_t c = 0; c < containers.size(); ++c) {
    Field container = containers.element(c);
    MESHLET_SOURCES_TRY(r.expectMap(container, true));
    Field ports = container.child("ports");
    MESHLET_SOURCES_TRY(r.expectSeq(ports, false));
    std::set<std::string> names;
    for (size_t i = 0; i < ports.size(); ++i) {
      Field p = ports.element(i);
      MESHLET_SOURCES_TRY(r.expectMap(p, true));
      ContainerPort cp;
      MESHLET_SOURCES_TRY(r.string(p.child("name"), cp.name, false));
      if (!cp.name.empty()) {
        if (std::string why = checkIanaSvcName(cp.name); !why.empty()) {
          return r.error(p.child("name"), quote(cp.name) + " is not a valid port name: " + why);
        }
        if (!names.insert(cp.name).second) {
          return r.error(p.child("name"), "duplicate port name " + quote(cp.name));
        }
      }
      MESHLET_SOURCES_TRY(r.port(p.child("containerPort"), cp.container_port, true));
      MESHLET_SOURCES_TRY(r.protocol(p.child("protocol"), cp.protocol));
      out.ports.push_back(std::move(cp));
    }
  }
  return Status::Ok();
}

Status parsePodStatus(const Reader& r, const Field& status, Pod& out) {
  MESHLET_SOURCES_TRY(r.expectMap(status, false));
  Field pod_ip = status.child("podIP");
  Field pod_ips = status.child("podIPs");
  MESHLET_SOURCES_TRY(r.expectSeq(pod_ips, false));
  for (size_t i = 0; i < pod_ips.size(); ++i) {
    Field entry = pod_ips.element(i);
    MESHLET_SOURCES_TRY(r.expectMap(entry, true));
    IpAddr ip;
    MESHLET_SOURCES_TRY(r.ip(entry.child("ip"), ip));
    if (!out.pod_ips.empty() && out.pod_ips[0].family == ip.family) {
      return r.error(entry.child("ip"), "at most one address per IP family");
    }
    if (out.pod_ips.size() == 2) return r.error(pod_ips, "at most two addresses");
    out.pod_ips.push_back(ip);
  }
  if (pod_ip.present()) {
    IpAddr ip;
    MESHLET_SOURCES_TRY(r.ip(pod_ip, ip));
    if (out.pod_ips.empty()) {
      out.pod_ips.push_back(ip);
    } else if (out.pod_ips[0] != ip) {
      return r.error(pod_ip, quote(pod_ip.scalar()) + " must match status.podIPs[0].ip");
    }
  }

  Field phase = status.child("phase");
  MESHLET_SOURCES_TRY(r.string(phase, out.phase, false));
  static const std::set<std::string> kPhases = {"",          "Pending", "Running",
                                                "Succeeded", "Failed",  "Unknown"};
  if (!kPhases.count(out.phase)) {
    return r.error(phase, quote(out.phase) +
                              " is not a valid phase (Pending, Running, Succeeded, Failed or "
                              "Unknown)");
  }

  Field conditions = status.child("conditions");
  MESHLET_SOURCES_TRY(r.expectSeq(conditions, false));
  for (size_t i = 0; i < conditions.size(); ++i) {
    Field cond = conditions.element(i);
    MESHLET_SOURCES_TRY(r.expectMap(cond, true));
    std::string type;
    std::string value;
    MESHLET_SOURCES_TRY(r.string(cond.child("type"), type, true));
    MESHLET_SOURCES_TRY(r.string(cond.child("status"), value, true));
    if (type == "Ready") out.ready = value == "True";
  }
  return Status::Ok();
}

}  // namespace

Status parseEndpointSlice(const Reader& r, const Field& root, const Origin& origin,
                          EndpointSlice& out) {
  MESHLET_SOURCES_TRY(parseMeta(r, root, true, checkDns1123Subdomain, origin, out.meta));

  auto service = out.meta.labels.find(kServiceNameLabel);
  std::string label_path = std::string("metadata.labels[") + quote(kServiceNameLabel) + "]";
  if (service == out.meta.labels.end() || service->second.empty()) {
    return r.error(label_path, "required label is missing (the name of the slice's Service)");
  }
  if (std::string why = checkDns1035Label(service->second); !why.empty()) {
    return r.error(label_path, quote(service->second) + " is not a valid Service name: " + why);
  }
  // Kept once, as service_name (100 000s of slices would each hold the label twice).
  out.service_name = service->second;
  out.meta.labels.erase(kServiceNameLabel);

  Field address_type = root.child("addressType");
  std::string type;
  MESHLET_SOURCES_TRY(r.string(address_type, type, true));
  if (type == "IPv4") {
    out.address_type = IpFamily::kV4;
  } else if (type == "IPv6") {
    out.address_type = IpFamily::kV6;
  } else if (type == "FQDN") {
    return r.error(address_type, "addressType FQDN is not supported (IPv4 or IPv6)");
  } else {
    return r.error(address_type, quote(type) + " is not a valid addressType (IPv4 or IPv6)");
  }

  MESHLET_SOURCES_TRY(parseEndpointPorts(r, root.child("ports"), out));

  Field endpoints = root.child("endpoints");
  MESHLET_SOURCES_TRY(r.expectSeq(endpoints, false));
  out.endpoints.reserve(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i) {
    Endpoint e;
    MESHLET_SOURCES_TRY(parseEndpoint(r, endpoints.element(i), out.address_type, e));
    out.endpoints.push_back(std::move(e));
  }
  return Status::Ok();
}

Status parsePod(const Reader& r, const Field& root, const Origin& origin, Pod& out) {
  MESHLET_SOURCES_TRY(parseMeta(r, root, true, checkDns1123Subdomain, origin, out.meta));

  Field spec = root.child("spec");
  MESHLET_SOURCES_TRY(r.expectMap(spec, false));
  MESHLET_SOURCES_TRY(r.string(spec.child("nodeName"), out.node_name, false));
  // serviceAccount is the deprecated spelling; serviceAccountName wins when both are set.
  std::string account;
  MESHLET_SOURCES_TRY(r.string(spec.child("serviceAccount"), account, false));
  Field account_field = spec.child("serviceAccountName");
  MESHLET_SOURCES_TRY(r.string(account_field, account, false));
  out.service_account = account.empty() ? "default" : account;
  if (std::string why = checkDns1123Subdomain(out.service_account); !why.empty()) {
    return r.error(account_field,
                   quote(out.service_account) + " is not a valid service account name: " + why);
  }
  MESHLET_SOURCES_TRY(parseContainers(r, spec.child("containers"), out));

  MESHLET_SOURCES_TRY(parsePodStatus(r, root.child("status"), out));

  auto netns = out.meta.annotations.find(kNetnsAnnotation);
  if (netns != out.meta.annotations.end()) {
    if (netns->second.empty() || netns->second.front() != '/') {
      return r.error(std::string("metadata.annotations[") + quote(kNetnsAnnotation) + "]",
                     quote(netns->second) + " must be an absolute path");
    }
    out.netns = netns->second;
  }
  return Status::Ok();
}

}  // namespace meshlet::file_source_internal
