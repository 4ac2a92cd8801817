#pragma once
// Typed cluster objects: what every source (file, kube, cni) produces, and the
// immutable snapshot the rest of the agent reads.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/boxed.h"
#include "agent/common/ip.h"
#include "agent/common/name.h"
#include "agent/state/istio.h"
#include "agent/state/meta.h"
#include "agent/state/rate_limit.h"
#include "agent/state/shared_list.h"

namespace meshlet {

struct Namespace {
  ObjectMeta meta;
};

enum class Protocol : uint8_t { kTCP = 6, kUDP = 17 };

// targetPort is a number or a named container port.
struct TargetPort {
  int number = 0;  // 0 when named
  Name name;       // empty when numeric
};

// Names interned: 10 000s of Services share a few port names and protocols.
struct ServicePort {
  Name name;
  Protocol protocol = Protocol::kTCP;
  int port = 0;
  TargetPort target_port;  // defaults to port
  Name app_protocol;
};

enum class SessionAffinity : uint8_t { kNone, kClientIP };

struct Service {
  ObjectMeta meta;
  std::vector<IpAddr> cluster_ips;  // empty for headless (clusterIP: None)
  std::vector<ServicePort> ports;
  std::optional<Labels> selector;  // nullopt: no selector (endpoints managed elsewhere)
  SessionAffinity session_affinity = SessionAffinity::kNone;
  bool prefer_close = false;  // spec.trafficDistribution: PreferClose
  // meshlet.io/lb-policy annotation: "random" (default) or "round-robin".
  bool round_robin = false;
  // meshlet.io/local-rate-limit annotation (agent/state/rate_limit.h): L7 requests only.
  Boxed<LocalRateLimit> rate_limit;
};

struct EndpointPort {
  Name name;  // interned, as ServicePort's
  Protocol protocol = Protocol::kTCP;
  int port = 0;
};

// 40 bytes: a Service can have 100 000s of endpoints.
struct Endpoint {
  // addresses[0]. Kubernetes gives the addresses after the first no meaning ("clients may
  // choose to only use the first element", kube-proxy does); they are validated, not kept.
  IpAddr address;
  bool ready = true;        // conditions.ready (absent = true, as Kubernetes says)
  bool serving = true;      // conditions.serving
  bool terminating = false; // conditions.terminating
  Name node_name;
  Name target_pod;  // targetRef.name when kind Pod
};

struct EndpointSlice {
  ObjectMeta meta;
  // Label kubernetes.io/service-name, which is not also kept in meta.labels.
  Name service_name;  // interned: shared with the service's ServiceInfo::name
  IpFamily address_type = IpFamily::kV4;
  std::vector<EndpointPort> ports;
  std::vector<Endpoint> endpoints;
};

struct ContainerPort {
  std::string name;
  int container_port = 0;
  Protocol protocol = Protocol::kTCP;
};

struct Pod {
  ObjectMeta meta;
  std::string node_name;  // spec.nodeName
  std::string service_account = "default";
  std::vector<ContainerPort> ports;
  std::vector<IpAddr> pod_ips;  // status.podIPs (or podIP)
  bool ready = false;           // status.conditions Ready=True
  std::string phase;
  std::string netns;            // annotation meshlet.io/netns, or CNI_NETNS
  std::string enrolled_by = "file";  // "file" (YAML) or "cni" (the CNI plugin told us)
};

// One immutable view of the cluster. Sources build it; everyone else reads it. Copies share
// each kind's list until they write to it (SharedList).
struct Snapshot {
  uint64_t generation = 0;
  SharedList<Namespace> namespaces;
  SharedList<Service> services;
  SharedList<EndpointSlice> endpoint_slices;
  SharedList<Pod> pods;
  // Istio resources (agent/state/istio.h).
  SharedList<AuthorizationPolicy> authorization_policies;
  SharedList<PeerAuthentication> peer_authentications;
  SharedList<VirtualService> virtual_services;
  SharedList<DestinationRule> destination_rules;
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

// Calls fn(to_list, from_list) for every kind's object list of two snapshots (from may be
// const). Code that handles every kind alike goes through here, so a new kind is added once.
template <typename From, typename Fn>
void forEachKindList(Snapshot& to, From& from, Fn fn) {
  fn(to.namespaces, from.namespaces);
  fn(to.services, from.services);
  fn(to.endpoint_slices, from.endpoint_slices);
  fn(to.pods, from.pods);
  fn(to.authorization_policies, from.authorization_policies);
  fn(to.peer_authentications, from.peer_authentications);
  fn(to.virtual_services, from.virtual_services);
  fn(to.destination_rules, from.destination_rules);
}

inline const Pod* findPod(const Snapshot& s, const std::string& ns, const std::string& name) {
  for (const auto& p : s.pods) {
    if (p.meta.ns == ns && p.meta.name == name) return &p;
  }
  return nullptr;
}

inline constexpr const char* kDataplaneModeLabel = "istio.io/dataplane-mode";
inline constexpr const char* kDataplaneModeMeshlet = "meshlet";
inline constexpr const char* kNetnsAnnotation = "meshlet.io/netns";
inline constexpr const char* kLbPolicyAnnotation = "meshlet.io/lb-policy";

}  // namespace meshlet
