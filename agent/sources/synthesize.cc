// EndpointSlices for selector Services that have none, built from the matching Pods the way the
// Kubernetes EndpointSlice controller does (pkg/controller/endpointslice).
#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/sources/file_source.h"
#include "agent/sources/k8s_objects.h"

namespace meshlet {
namespace {

bool selects(const Labels& selector, const Labels& labels) {
  for (const auto& [key, value] : selector) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

const IpAddr* podIp(const Pod& pod, IpFamily family) {
  for (const IpAddr& ip : pod.pod_ips) {
    if (ip.family == family) return &ip;
  }
  return nullptr;
}

// The pod's number for a Service port (FindPort in Kubernetes): a numeric targetPort as is, a
// named one through the container port with that name and protocol; 0 when the pod has none.
int resolvePort(const ServicePort& sp, const Pod& pod) {
  if (sp.target_port.name.empty()) return sp.target_port.number;
  for (const ContainerPort& cp : pod.ports) {
    if (cp.name == sp.target_port.name && cp.protocol == sp.protocol) return cp.container_port;
  }
  return 0;
}

bool samePorts(const std::vector<EndpointPort>& a, const std::vector<EndpointPort>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](const EndpointPort& x, const EndpointPort& y) {
                                              return x.name == y.name && x.protocol == y.protocol &&
                                                     x.port == y.port;
                                            });
}

std::string familySuffix(IpFamily f) { return f == IpFamily::kV4 ? "ipv4" : "ipv6"; }

// Namespace/name of every EndpointSlice, so a synthesized name never collides with a slice
// from the files (which validateSnapshot has already checked).
using TakenNames = std::set<std::pair<std::string, std::string>>;

EndpointSlice newSlice(const Service& svc, IpFamily family, size_t group, TakenNames& taken) {
  EndpointSlice slice;
  slice.meta.name = svc.meta.name + "-meshlet-" + familySuffix(family);
  if (group > 0) slice.meta.name += "-" + std::to_string(group + 1);
  while (!taken.emplace(svc.meta.ns, slice.meta.name).second) slice.meta.name += "-x";
  slice.meta.ns = svc.meta.ns;
  slice.meta.labels["endpointslice.kubernetes.io/managed-by"] = "meshlet.io/file-source";
  slice.meta.origin.file = "(synthesized)";
  slice.service_name = svc.meta.name;
  slice.address_type = family;
  return slice;
}

// The IP families to build slices for: the Service's cluster IP families, or for a headless
// Service every family its pods have (IPv4 when it has none, for the empty placeholder slice).
std::vector<IpFamily> familiesOf(const Service& svc, const std::vector<const Pod*>& pods) {
  std::set<IpFamily> families;
  for (const IpAddr& ip : svc.cluster_ips) families.insert(ip.family);
  if (families.empty()) {
    for (const Pod* pod : pods) {
      for (const IpAddr& ip : pod->pod_ips) families.insert(ip.family);
    }
  }
  if (families.empty()) families.insert(IpFamily::kV4);
  return {families.begin(), families.end()};
}

// Slices of one Service and one family. Pods are grouped by their resolved ports, as in
// Kubernetes: when every pod resolves every Service port to the same number (the usual case)
// there is one slice, "<service>-meshlet-<family>"; pods whose named targetPort resolves to a
// different number, or that lack the named port (then they are left out for that port only),
// go to further slices "<service>-meshlet-<family>-2", "-3", ... Limitation: Kubernetes caps a
// slice at 100 endpoints and splits beyond; these slices are never split.
void buildSlices(const Service& svc, IpFamily family, const std::vector<const Pod*>& pods,
                 TakenNames& taken, std::vector<EndpointSlice>& out) {
  std::vector<EndpointSlice> groups;
  for (const Pod* pod : pods) {
    const IpAddr* ip = podIp(*pod, family);
    if (!ip) continue;
    std::vector<EndpointPort> ports;
    for (const ServicePort& sp : svc.ports) {
      int number = resolvePort(sp, *pod);
      if (number == 0) continue;
      ports.push_back(EndpointPort{sp.name, sp.protocol, number});
    }
    Endpoint e;
    e.address = *ip;
    // Ready: the pod's Ready condition, for a pod that is running (or whose phase is unknown to
    // a hand-written file). Terminal pods were left out by the caller.
    e.ready = pod->ready && (pod->phase == "Running" || pod->phase.empty());
    e.serving = e.ready;
    e.terminating = false;
    e.node_name = pod->node_name;
    e.target_pod = pod->meta.name;

    EndpointSlice* slice = nullptr;
    for (EndpointSlice& g : groups) {
      if (samePorts(g.ports, ports)) slice = &g;
    }
    if (!slice) {
      groups.push_back(newSlice(svc, family, groups.size(), taken));
      slice = &groups.back();
      slice->ports = std::move(ports);
    }
    slice->endpoints.push_back(std::move(e));
  }
  // A Service without endpoints still gets an (empty) slice, like Kubernetes' placeholder.
  if (groups.empty()) groups.push_back(newSlice(svc, family, 0, taken));
  for (EndpointSlice& g : groups) out.push_back(std::move(g));
}

}  // namespace

void synthesizeEndpointSlices(Snapshot& s) {
  std::set<std::pair<std::string, std::string>> with_slices;  // (namespace, service)
  TakenNames taken;
  for (const EndpointSlice& e : s.endpoint_slices) {
    with_slices.emplace(e.meta.ns, e.service_name);
    taken.emplace(e.meta.ns, e.meta.name);
  }

  std::vector<EndpointSlice> synthesized;
  for (const Service& svc : s.services) {
    if (!svc.selector || svc.selector->empty()) continue;
    if (with_slices.count({svc.meta.ns, svc.meta.name})) continue;
    std::vector<const Pod*> pods;
    for (const Pod& pod : s.pods) {
      if (pod.meta.ns != svc.meta.ns || pod.pod_ips.empty()) continue;
      if (pod.phase == "Succeeded" || pod.phase == "Failed") continue;  // terminal: never again
      if (selects(*svc.selector, pod.meta.labels)) pods.push_back(&pod);
    }
    for (IpFamily family : familiesOf(svc, pods)) {
      buildSlices(svc, family, pods, taken, synthesized);
    }
  }
  for (EndpointSlice& e : synthesized) s.endpoint_slices.push_back(std::move(e));
}

}  // namespace meshlet
