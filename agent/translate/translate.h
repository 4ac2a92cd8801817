#pragma once
// Translation: a pure function from a cluster snapshot to the desired contents of the BPF maps
// plus the metadata the agent needs to explain them (CLI, metrics). No kernel, no sockets.
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "agent/common/flat_map.h"
#include "agent/state/types.h"
#include "meshlet/maps.h"

namespace meshlet {

// Orders plain C structs by their bytes so they can key std::map.
template <typename T>
struct BytesLess {
  bool operator()(const T& a, const T& b) const { return std::memcmp(&a, &b, sizeof(T)) < 0; }
};

// The hottest keys (100 000s of backends) compare as two integers instead of through memcmp.
template <>
struct BytesLess<meshlet_backend_key> {
  bool operator()(const meshlet_backend_key& a, const meshlet_backend_key& b) const {
    return a.svc_id != b.svc_id ? a.svc_id < b.svc_id : a.slot < b.slot;
  }
};

template <>
struct BytesLess<meshlet_authz_key> {
  bool operator()(const meshlet_authz_key& a, const meshlet_authz_key& b) const {
    return std::tie(a.src_pod, a.dst_pod, a.port) < std::tie(b.src_pod, b.dst_pod, b.port);
  }
};

template <>
struct BytesLess<meshlet_maglev_key> {
  bool operator()(const meshlet_maglev_key& a, const meshlet_maglev_key& b) const {
    return a.svc_id != b.svc_id ? a.svc_id < b.svc_id : a.bucket < b.bucket;
  }
};

// A pod this agent enrolls: on this node, labelled into the mesh, with a known netns cookie.
struct PodInfo {
  uint32_t pod_id = 0;
  std::string ns;
  std::string name;
  std::string workload;         // app.kubernetes.io/name, app label, or the pod name
  std::string service_account;
  std::vector<IpAddr> ips;
  std::string netns;            // path
  uint64_t netns_cookie = 0;    // 0 when it could not be read (then not in the pods map)
  std::string enrolled_by = "file";
};

// One service port on one cluster IP family; 10 000s of them. Its svc_id is its key in
// DesiredDatapath::service_info, not kept a second time here (56 bytes, not 64).
struct ServiceInfo {
  Name ns;
  Name name;
  Name port_name;
  const char* lb = "random";  // "random", "round-robin", "client-ip"
  int port = 0;
  IpAddr cluster_ip;
  Protocol protocol = Protocol::kTCP;
  bool prefer_close = false;
  bool l7 = false;  // takes the L7 path: the agent proxies its HTTP (l7::l7Reason)
};

// 36 bytes, one per endpoint of every service (100 000s): names are indexes into
// DesiredDatapath::names, read with DesiredDatapath::name(). A backend with a slot is also an
// entry of the backends map (DesiredDatapath::backends()). Its backend id is its key in
// DesiredDatapath::backend_info, not kept a second time here (4 bytes per endpoint).
struct BackendInfo {
  uint32_t svc_id = 0;
  IpAddr addr;
  bool ready : 1 = false;
  bool serving : 1 = false;
  bool terminating : 1 = false;
  bool local : 1 = false;
  bool tunnel : 1 = false;  // an enrolled pod on another node: reached through HBONE
  // Ready but left out of the slots by L4 outlier detection (TranslateInput::ejected); still
  // slotted when every ready backend of its service is ejected (panic).
  bool ejected : 1 = false;
  uint16_t port = 0;
  uint32_t node = MESHLET_NO_ID;  // the endpoint's nodeName
  uint32_t pod = MESHLET_NO_ID;   // namespace/name of the target pod, when known
  uint32_t slot = MESHLET_NO_ID;  // slot in the backends map, MESHLET_NO_ID when not ready
};
static_assert(sizeof(BackendInfo) <= 36, "one per endpoint: keep it small");

// The backends map's value for backend `backend_id`, which has a slot.
meshlet_backend_value backendValue(uint32_t backend_id, const BackendInfo& b);

using BackendEntries =
    FlatMap<meshlet_backend_key, meshlet_backend_value, BytesLess<meshlet_backend_key>>;

// An enrolled pod on another node, by IP: where the tunnel goes and whom it must reach.
struct RemotePodInfo {
  std::string ns;
  std::string name;
  std::string service_account;
  std::string node_name;
};

// Everything the datapath should contain for one snapshot.
struct DesiredDatapath {
  FlatMap<meshlet_svc_key, meshlet_svc_value, BytesLess<meshlet_svc_key>> services;
  // The backends map is not kept beside backend_info, which holds every entry of it (the
  // backends with a slot): backends() builds it when it is needed.
  std::map<meshlet_maglev_key, uint32_t, BytesLess<meshlet_maglev_key>> maglev;
  std::map<uint64_t, meshlet_pod_value> pods;  // netns cookie -> pod
  std::map<meshlet_ip_key, meshlet_ip_value, BytesLess<meshlet_ip_key>> local_ips;
  std::map<meshlet_ip_key, meshlet_remote_value, BytesLess<meshlet_ip_key>> remote_ips;
  std::map<meshlet_authz_key, meshlet_authz_value, BytesLess<meshlet_authz_key>> authz;

  // Explanations, indexed by id.
  FlatMap<uint32_t, ServiceInfo> service_info;  // by svc_id
  FlatMap<uint32_t, BackendInfo> backend_info;  // by backend_id
  // Entries of the backends map that backend_info cannot reproduce byte for byte: only in a
  // state read back from the kernel (setBackends), e.g. a backend id in two slots after a
  // change failed half-way. Empty in a translation's output.
  std::vector<std::pair<meshlet_backend_key, meshlet_backend_value>> stray_backends;
  std::map<uint32_t, PodInfo> pod_info;          // by pod_id
  std::map<IpAddr, RemotePodInfo> remote_pods;   // the pods behind remote_ips
  std::map<uint32_t, std::string> authz_policies;  // meshlet_authz_value.policy -> "ns/name"
  // svc_id -> the DestinationRule outlierDetection in force, for TCP ports on the kernel path
  // (not L7) that have one: their backends' connect failures can eject them.
  std::map<uint32_t, OutlierDetection> outlier;
  std::vector<std::string> names;  // node and pod names of backend_info, each once

  // names[index], "" for MESHLET_NO_ID.
  const std::string& name(uint32_t index) const;

  // The contents of the backends map: (svc_id, slot) -> backend, for every backend with a slot.
  BackendEntries backends() const;
  // backends().size(), without building it.
  size_t backendCount() const;
  // Makes backends() return exactly `entries` (a backends map read back from the kernel, or
  // written by a test): each entry becomes a ready backend of backend_info, or a stray one.
  void setBackends(const BackendEntries& entries);
};

// A backend of one service port, as its id is assigned: (svc_id, address, port).
struct BackendIdKey {
  uint32_t svc_id = 0;
  IpAddr addr;
  uint16_t port = 0;

  // Service, then address (numeric), then port: the order the translator produces a
  // service's endpoints in, so its list of keys comes out sorted.
  bool operator<(const BackendIdKey& o) const {
    if (svc_id != o.svc_id) return svc_id < o.svc_id;
    if (addr != o.addr) return addr < o.addr;
    return port < o.port;
  }
  bool operator==(const BackendIdKey& o) const {
    return svc_id == o.svc_id && addr == o.addr && port == o.port;
  }
  // "svc_id/ip/port", for logs and tests.
  std::string toString() const;
};

// Ids must stay stable across snapshots (round-robin state and stats are per id), so the
// translator carries an assignment table from one call to the next.
struct IdTable {
  std::map<std::string, uint32_t> svc;      // "ns/name/clusterIP/port/proto" -> svc_id
  FlatMap<BackendIdKey, uint32_t> backend;
  // slot[backend_id]: the slot its service gave it, MESHLET_NO_ID for none (ids are dense, so
  // a vector). A ready backend keeps its slot from one call to the next while the slot stays in
  // its group's range (local or remote), so a backend joining or leaving rewrites one or two
  // entries of the backends map, not every entry after it.
  std::vector<uint32_t> slot;
  uint32_t slotOf(uint32_t backend_id) const {
    return backend_id < slot.size() ? slot[backend_id] : MESHLET_NO_ID;
  }
  std::map<std::string, uint32_t> pod;      // "ns/name" -> pod_id
  // "ns/name" -> AuthorizationPolicy index: stable, so the kernel's record of a denial keeps
  // naming the policy that made it while others come and go.
  std::map<std::string, uint32_t> authz_policy;
};

// The name of an AuthorizationPolicy index, "" when unknown (MESHLET_NO_ID or gone).
std::string authzPolicyName(const DesiredDatapath& d, uint32_t index);

struct TranslateInput {
  const Snapshot* snapshot = nullptr;
  std::string node_name;
  std::string trust_domain = "cluster.local";  // for the principals of same-node pairs
  // netns cookie per pod ("ns/name"), read by the agent from the pod's netns; pods without a
  // cookie are still explained (pod_info) but not written to the pods map.
  std::map<std::string, uint64_t> netns_cookies;
  // Backends outlier detection ejected (OutlierTracker::ejected()): left out of their service's
  // slots like not-ready ones, unless that leaves the service no ready backend. Only services
  // in DesiredDatapath::outlier are affected. Null: none.
  const std::set<BackendIdKey>* ejected = nullptr;
};

struct TranslateOutput {
  DesiredDatapath desired;
  IdTable ids;  // pass to the next call
};

// The keys of IdTable, the one definition of their format.
std::string serviceIdKey(const std::string& ns, const std::string& name, const IpAddr& cluster_ip,
                         int port, Protocol protocol);
BackendIdKey backendIdKey(uint32_t svc_id, const IpAddr& addr, int port);
std::string podIdKey(const std::string& ns, const std::string& name);

// Pure: same input, same output.
TranslateOutput translate(const TranslateInput& in, const IdTable& previous);

// After outlier detection changed which backends of the services `svc_ids` are ejected: gives
// those services' ready backends their slots again in `d` (a translation's output) exactly as
// translate() with the same `ejected` would, touching only their backends, Maglev and service
// entries (a backend keeps its slot when it can, so the datapath rewrites one or two slots).
// `ids.slot` follows.
void reslotServices(DesiredDatapath& d, IdTable& ids, const std::set<uint32_t>& svc_ids,
                    const std::set<BackendIdKey>& ejected);

// True when the pod, or its namespace, carries istio.io/dataplane-mode=meshlet.
bool podEnrolled(const Snapshot& s, const Pod& pod);

// The Maglev lookup table for n backends: MESHLET_MAGLEV_SIZE entries, each a slot in [0, n).
// Backends are identified by a stable string (e.g. "ip:port") so the table barely changes when
// one backend joins or leaves.
std::vector<uint32_t> maglevTable(const std::vector<std::string>& backend_names);

// The name a ready backend is known by in maglevTable(): "ip:port", "[ip6]:port" for IPv6.
std::string maglevBackendName(const IpAddr& addr, int port);

// The affinity hash the kernel uses for a client pod: a stable hash of its primary IP.
uint32_t affinityHash(const IpAddr& ip);

// The bucket the kernel picks for an affinity hash: hash % MESHLET_MAGLEV_SIZE.
inline uint32_t maglevBucket(uint32_t affinity_hash) { return affinity_hash % MESHLET_MAGLEV_SIZE; }

}  // namespace meshlet
