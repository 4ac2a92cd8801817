#include "agent/translate/translate.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/l7/routes.h"
#include "agent/policy/authz.h"
#include "agent/translate/ids.h"

namespace meshlet {

std::string serviceIdKey(const std::string& ns, const std::string& name, const IpAddr& cluster_ip,
                         int port, Protocol protocol) {
  return ns + "/" + name + "/" + cluster_ip.toString() + "/" + std::to_string(port) + "/" +
         (protocol == Protocol::kUDP ? "UDP" : "TCP");
}

BackendIdKey backendIdKey(uint32_t svc_id, const IpAddr& addr, int port) {
  return BackendIdKey{svc_id, addr, static_cast<uint16_t>(port)};
}

std::string BackendIdKey::toString() const {
  return std::to_string(svc_id) + "/" + addr.toString() + "/" + std::to_string(port);
}

std::string podIdKey(const std::string& ns, const std::string& name) { return ns + "/" + name; }
namespace {


uint8_t afOf(const IpAddr& ip) { return ip.isV4() ? MESHLET_AF_INET : MESHLET_AF_INET6; }



std::string workloadOf(const Pod& pod) {
  for (const char* label : {"app.kubernetes.io/name", "app"}) {
    auto it = pod.meta.labels.find(label);
    if (it != pod.meta.labels.end() && !it->second.empty()) return it->second;
  }
  return pod.meta.name;
}

template <typename T>
bool byNsName(const T* a, const T* b) {
  return std::tie(a->meta.ns, a->meta.name) < std::tie(b->meta.ns, b->meta.name);
}

// ---- pods ----

meshlet_ip_key ipKey(const IpAddr& ip) {
  meshlet_ip_key k{};
  auto w = ip.words();
  std::copy(w.begin(), w.end(), k.addr);
  k.family = afOf(ip);
  return k;
}

void translatePods(const TranslateInput& in, const IdTable& previous, TranslateOutput& out) {
  const Snapshot& s = *in.snapshot;
  std::vector<const Pod*> local;
  for (const Pod& pod : s.pods) {
    if (pod.node_name == in.node_name && !in.node_name.empty() && podEnrolled(s, pod)) {
      local.push_back(&pod);
    }
  }
  std::sort(local.begin(), local.end(), byNsName<Pod>);

  std::vector<std::string> keys;
  for (const Pod* pod : local) keys.push_back(podIdKey(pod->meta.ns, pod->meta.name));
  out.ids.pod = assignIds(keys, previous.pod, {IdPolicy::Kind::kMaxPlusOne, 1, MESHLET_NO_ID});

  DesiredDatapath& d = out.desired;
  for (const Pod* pod : local) {
    const std::string key = podIdKey(pod->meta.ns, pod->meta.name);
    auto id_it = out.ids.pod.find(key);
    if (id_it == out.ids.pod.end()) continue;  // duplicate pod name or ids exhausted
    if (d.pod_info.count(id_it->second) != 0) continue;
    PodInfo info;
    info.pod_id = id_it->second;
    info.ns = pod->meta.ns;
    info.name = pod->meta.name;
    info.workload = workloadOf(*pod);
    info.service_account = pod->service_account;
    info.ips = pod->pod_ips;
    info.netns = pod->netns;
    info.enrolled_by = pod->enrolled_by;
    auto cookie_it = in.netns_cookies.find(key);
    info.netns_cookie = cookie_it == in.netns_cookies.end() ? 0 : cookie_it->second;

    if (info.netns_cookie != 0 && d.pods.count(info.netns_cookie) == 0) {
      meshlet_pod_value v{};
      v.pod_id = info.pod_id;
      v.affinity_hash = pod->pod_ips.empty() ? 0 : affinityHash(pod->pod_ips.front());
      d.pods.emplace(info.netns_cookie, v);
    }
    for (const IpAddr& ip : pod->pod_ips) {
      meshlet_ip_key k = ipKey(ip);
      meshlet_ip_value v{};
      v.pod_id = info.pod_id;
      d.local_ips.emplace(k, v);  // an IP claimed twice stays with the first pod (ns/name order)
    }
    d.pod_info.emplace(info.pod_id, std::move(info));
  }

  // Enrolled pods on other nodes: connections to them take the HBONE tunnel. An IP that any
  // pod of this node holds (in the mesh or not) is local, whatever a stale remote pod says.
  std::set<IpAddr> on_this_node;
  for (const Pod& pod : s.pods) {
    if (!in.node_name.empty() && pod.node_name == in.node_name) {
      on_this_node.insert(pod.pod_ips.begin(), pod.pod_ips.end());
    }
  }
  std::vector<const Pod*> remote;
  std::map<std::string, uint32_t> node_ids;
  for (const Pod& pod : s.pods) {
    if (pod.node_name.empty() || pod.node_name == in.node_name || !podEnrolled(s, pod)) continue;
    remote.push_back(&pod);
    node_ids.emplace(pod.node_name, 0);
  }
  std::sort(remote.begin(), remote.end(), byNsName<Pod>);
  uint32_t next_node = 1;
  for (auto& [name, id] : node_ids) id = next_node++;
  for (const Pod* pod : remote) {
    for (const IpAddr& ip : pod->pod_ips) {
      meshlet_ip_key k = ipKey(ip);
      if (on_this_node.count(ip) != 0 || d.remote_pods.count(ip) != 0) continue;
      meshlet_remote_value v{};
      v.node_id = node_ids.at(pod->node_name);
      d.remote_ips.emplace(k, v);
      d.remote_pods.emplace(
          ip, RemotePodInfo{pod->meta.ns, pod->meta.name, pod->service_account, pod->node_name});
    }
  }
}

// ---- same-node L4 authorization ----

// Ports whose verdict may differ from the rest: those the policies name (to.operation.ports,
// notPorts, when destination.port). Every other port is decided like port 0.
std::set<int> namedPorts(const std::vector<const AuthorizationPolicy*>& policies) {
  std::set<int> ports;
  for (const AuthorizationPolicy* p : policies) {
    for (const AuthzRule& r : p->rules) {
      for (const AuthzOperation& op : r.to) {
        ports.insert(op.ports.begin(), op.ports.end());
        ports.insert(op.not_ports.begin(), op.not_ports.end());
      }
      for (const AuthzCondition& c : r.when) {
        ports.insert(c.port_values.begin(), c.port_values.end());
        ports.insert(c.not_port_values.begin(), c.not_port_values.end());
      }
    }
  }
  return ports;
}

// For every enrolled pod of this node that AuthorizationPolicies govern, the verdict for each
// enrolled source pod of this node (its principal is its service account's, its address its
// first IP of the destination's family), per named port plus port 0 for the rest.
void translateAuthz(const TranslateInput& in, const IdTable& previous, TranslateOutput& out) {
  const Snapshot& s = *in.snapshot;
  DesiredDatapath& d = out.desired;
  std::vector<std::string> names;
  for (const AuthorizationPolicy& p : s.authorization_policies) {
    names.push_back(p.meta.ns + "/" + p.meta.name);
  }
  std::sort(names.begin(), names.end());
  out.ids.authz_policy = assignIds(names, previous.authz_policy,
                                   {IdPolicy::Kind::kMaxPlusOne, 0, MESHLET_MAX_AUTHZ_POLICIES});
  const std::map<std::string, uint32_t>& policy_index = out.ids.authz_policy;
  for (const auto& [name, index] : policy_index) d.authz_policies.emplace(index, name);
  auto firstIp = [](const PodInfo& p, bool v4) -> std::optional<IpAddr> {
    for (const IpAddr& ip : p.ips) {
      if (ip.isV4() == v4) return ip;
    }
    return std::nullopt;
  };
  for (const auto& [dst_id, dst] : d.pod_info) {
    const Pod* pod = findPod(s, dst.ns, dst.name);
    if (!pod || dst.ips.empty()) continue;
    auto policies = applicablePolicies(s, dst.ns, pod->meta.labels);
    if (policies.empty()) continue;
    for (const IpAddr& ip : dst.ips) {
      auto it = d.local_ips.find(ipKey(ip));
      if (it != d.local_ips.end() && it->second.pod_id == dst_id) {
        it->second.flags |= MESHLET_IP_AUTHZ;
      }
    }
    std::set<int> ports = namedPorts(policies);
    ports.insert(0);
    L4Connection c;
    c.destination_ip = dst.ips.front();
    c.destination_namespace = dst.ns;
    c.destination_labels = pod->meta.labels;
    for (const auto& [src_id, src] : d.pod_info) {
      c.source_principal = in.trust_domain + "/ns/" + src.ns + "/sa/" + src.service_account;
      c.source_ip = firstIp(src, c.destination_ip.isV4()).value_or(IpAddr{});
      meshlet_authz_value rest{};
      for (int port : ports) {
        c.destination_port = port;
        AuthzDecision dec = authorizeL4(s, c);
        meshlet_authz_value v{};
        v.allow = dec.allowed ? 1 : 0;
        auto pi = policy_index.find(dec.policy);
        v.policy = pi == policy_index.end() ? MESHLET_NO_ID : pi->second;
        if (port != 0 && v.allow == rest.allow && v.policy == rest.policy) continue;
        if (port == 0) rest = v;
        meshlet_authz_key k{};
        k.src_pod = src_id;
        k.dst_pod = dst_id;
        k.port = static_cast<uint16_t>(port);
        d.authz.emplace(k, v);
      }
    }
  }
}

// ---- services ----

// One service port on one cluster IP: one entry in the services map.
struct Frontend {
  const Service* svc = nullptr;
  const ServicePort* port = nullptr;
  IpAddr ip;
  meshlet_svc_key key{};
  std::string id_key;
};

// One endpoint address of a frontend, after de-duplication.
struct Candidate {
  IpAddr addr;
  int port = 0;
  const Endpoint* ep = nullptr;
};

// Every slice, in (namespace, service, slice name) order: a service's slices are one range.
using SliceIndex = std::vector<const EndpointSlice*>;

bool bySliceService(const EndpointSlice* a, const EndpointSlice* b) {
  return std::tie(a->meta.ns, a->service_name, a->meta.name) <
         std::tie(b->meta.ns, b->service_name, b->meta.name);
}

SliceIndex indexSlices(const Snapshot& s) {
  SliceIndex index;
  index.reserve(s.endpoint_slices.size());
  for (const EndpointSlice& slice : s.endpoint_slices) index.push_back(&slice);
  std::stable_sort(index.begin(), index.end(), bySliceService);
  return index;
}

// The slices of service ns/name, in slice name order.
std::pair<SliceIndex::const_iterator, SliceIndex::const_iterator> slicesOf(const SliceIndex& index,
                                                                           const Name& ns,
                                                                           const Name& name) {
  struct Less {
    const Name& ns;
    const Name& name;
    bool operator()(const EndpointSlice* a, int) const {
      return std::tie(a->meta.ns, a->service_name) < std::tie(ns, name);
    }
    bool operator()(int, const EndpointSlice* b) const {
      return std::tie(ns, name) < std::tie(b->meta.ns, b->service_name);
    }
  };
  return std::equal_range(index.begin(), index.end(), 0, Less{ns, name});
}

std::vector<Frontend> collectFrontends(const Snapshot& s) {
  std::vector<const Service*> services;
  for (const Service& svc : s.services) services.push_back(&svc);
  std::stable_sort(services.begin(), services.end(), byNsName<Service>);

  std::vector<Frontend> all;
  for (const Service* svc : services) {
    for (const IpAddr& ip : svc->cluster_ips) {
      for (const ServicePort& port : svc->ports) {
        if (port.port <= 0 || port.port > 65535) continue;
        Frontend f;
        f.svc = svc;
        f.port = &port;
        f.ip = ip;
        auto w = ip.words();
        std::copy(w.begin(), w.end(), f.key.addr);
        f.key.port = static_cast<uint16_t>(port.port);
        f.key.proto = static_cast<uint8_t>(port.protocol);
        f.key.family = afOf(ip);
        f.id_key = serviceIdKey(svc->meta.ns, svc->meta.name, ip, port.port, port.protocol);
        all.push_back(std::move(f));
      }
    }
  }
  // Two services claiming the same VIP:port/proto: the first in (ns, name) order wins; then
  // the same service port twice is kept once. Sorting positions: no set of 10 000s of nodes.
  std::vector<uint8_t> dropped(all.size(), 0);
  std::vector<uint32_t> order(all.size());
  auto dropLaterCopies = [&](auto less) {
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return less(all[a], all[b]); });
    const Frontend* kept = nullptr;
    for (uint32_t i : order) {
      if (dropped[i]) continue;
      if (kept && !less(*kept, all[i])) {
        dropped[i] = 1;
      } else {
        kept = &all[i];
      }
    }
  };
  dropLaterCopies([](const Frontend& a, const Frontend& b) {
    return BytesLess<meshlet_svc_key>()(a.key, b.key);
  });
  dropLaterCopies([](const Frontend& a, const Frontend& b) { return a.id_key < b.id_key; });
  std::vector<Frontend> out;
  out.reserve(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    if (!dropped[i]) out.push_back(std::move(all[i]));
  }
  return out;
}

// The endpoints behind one frontend: slices of the service in its namespace with the cluster IP's
// address family, backend port from the slice port named like the service port (same protocol).
// The same address:port in two slices is kept once, preferring a ready copy.
std::vector<Candidate> collectCandidates(const Frontend& f, const SliceIndex& slices) {
  std::vector<Candidate> all;
  auto [first, last] = slicesOf(slices, f.svc->meta.ns, f.svc->meta.name);
  for (auto it = first; it != last; ++it) {
    const EndpointSlice* slice = *it;
    if (slice->address_type != f.ip.family) continue;
    int backend_port = 0;
    for (const EndpointPort& p : slice->ports) {
      if (p.name == f.port->name && p.protocol == f.port->protocol) {
        backend_port = p.port;
        break;
      }
    }
    if (backend_port <= 0 || backend_port > 65535) continue;
    for (const Endpoint& ep : slice->endpoints) {
      if (ep.address.family == f.ip.family) all.push_back(Candidate{ep.address, backend_port, &ep});
    }
  }
  // Deterministic order (also the order new backend ids are handed out in); of copies of one
  // address:port the first ready one stays, else the first.
  std::stable_sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.addr, a.port) < std::tie(b.addr, b.port);
  });
  std::vector<Candidate> out;
  out.reserve(all.size());
  for (const Candidate& c : all) {
    if (!out.empty() && out.back().addr == c.addr && out.back().port == c.port) {
      if (!out.back().ep->ready && c.ep->ready) out.back().ep = c.ep;
      continue;
    }
    out.push_back(c);
  }
  return out;
}

uint8_t lbAlgo(const Service& svc) {
  if (svc.session_affinity == SessionAffinity::kClientIP) return MESHLET_LB_MAGLEV;
  if (svc.round_robin) return MESHLET_LB_ROUND_ROBIN;
  return MESHLET_LB_RANDOM;
}

const char* lbName(uint8_t algo) {
  switch (algo) {
    case MESHLET_LB_MAGLEV:
      return "client-ip";
    case MESHLET_LB_ROUND_ROBIN:
      return "round-robin";
    default:
      return "random";
  }
}

// An entry of DesiredDatapath::backend_info: (backend id, its explanation).
using BackendEntry = std::pair<uint32_t, BackendInfo>;

// The backends of one service that get slots, local and remote apart, in the order of `all`:
// the ready ones not ejected; when every ready one is ejected, every ready one (panic).
void pickSlotted(const std::vector<BackendEntry*>& all, std::vector<BackendEntry*>& local,
                 std::vector<BackendEntry*>& remote) {
  const bool any_healthy = std::any_of(all.begin(), all.end(), [](const BackendEntry* b) {
    return b->second.ready && !b->second.ejected;
  });
  for (BackendEntry* b : all) {
    if (!b->second.ready || (b->second.ejected && any_healthy)) continue;
    (b->second.local ? local : remote).push_back(b);
  }
}

// Gives one service's slotted backends their slots (BackendInfo::slot: the backends map's
// entries) and writes its Maglev entries; returns the service value's (count, local_count). count
// is 16 bits: beyond that many ready backends the rest get no slot. Local backends take slots [0,
// local_count), remote ones the rest; each keeps its previous slot (prev_slot(backend_id)) when
// that is still in its range and free, the others fill the free slots in the order given ((addr,
// port)).
template <typename PrevSlot>
std::pair<uint16_t, uint16_t> slotService(
    uint32_t svc_id, uint8_t algo, const std::vector<BackendEntry*>& local_ready,
    const std::vector<BackendEntry*>& remote_ready, PrevSlot prev_slot,
    const std::map<IpAddr, RemotePodInfo>& remote_pods, std::vector<uint32_t>& slot_of,
    std::map<meshlet_maglev_key, uint32_t, BytesLess<meshlet_maglev_key>>& maglev) {
  constexpr size_t kMaxSlots = std::numeric_limits<uint16_t>::max();
  const size_t local_count = std::min(local_ready.size(), kMaxSlots);
  const size_t remote_count = std::min(remote_ready.size(), kMaxSlots - local_count);
  std::vector<BackendEntry*> slots(local_count + remote_count, nullptr);
  auto fill = [&](const std::vector<BackendEntry*>& group, size_t first, size_t n) {
    std::vector<BackendEntry*> waiting;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t prev = prev_slot(group[i]->first);
      if (prev != MESHLET_NO_ID && prev >= first && prev < first + n && !slots[prev]) {
        slots[prev] = group[i];
      } else {
        waiting.push_back(group[i]);
      }
    }
    size_t next = first;
    for (BackendEntry* b : waiting) {
      while (slots[next]) ++next;
      slots[next] = b;
    }
  };
  fill(local_ready, 0, local_count);
  fill(remote_ready, local_count, remote_count);

  std::vector<std::string> names;  // Maglev only
  for (uint32_t slot = 0; slot < slots.size(); ++slot) {
    auto& [backend_id, bi] = *slots[slot];
    bi.slot = slot;
    bi.tunnel = !bi.local && remote_pods.count(bi.addr) != 0;
    if (backend_id < slot_of.size()) slot_of[backend_id] = slot;
    if (algo == MESHLET_LB_MAGLEV) names.push_back(maglevBackendName(bi.addr, bi.port));
  }
  if (algo == MESHLET_LB_MAGLEV) {
    std::vector<uint32_t> table = maglevTable(names);
    for (uint32_t bucket = 0; bucket < table.size(); ++bucket) {
      meshlet_maglev_key mk{};
      mk.svc_id = svc_id;
      mk.bucket = bucket;
      maglev.emplace(mk, table[bucket]);
    }
  }
  return {static_cast<uint16_t>(slots.size()), static_cast<uint16_t>(local_count)};
}

void translateServices(const TranslateInput& in, const IdTable& previous, TranslateOutput& out) {
  const Snapshot& s = *in.snapshot;
  std::vector<Frontend> frontends = collectFrontends(s);

  std::vector<std::string> svc_keys;
  for (const Frontend& f : frontends) svc_keys.push_back(f.id_key);
  out.ids.svc =
      assignIds(svc_keys, previous.svc, {IdPolicy::Kind::kLowestFree, 0, MESHLET_MAX_SERVICES});

  // Frontends that got an id, with their endpoints.
  struct Resolved {
    const Frontend* f;
    uint32_t svc_id;
    std::vector<Candidate> candidates;
  };
  std::vector<Resolved> resolved;
  const SliceIndex slices = indexSlices(s);
  for (const Frontend& f : frontends) {
    auto id_it = out.ids.svc.find(f.id_key);
    if (id_it == out.ids.svc.end()) continue;  // service ids exhausted
    resolved.push_back(Resolved{&f, id_it->second, collectCandidates(f, slices)});
  }
  // In service id order, each service's candidates in (address, port) order: the backend keys
  // come out sorted, so ids are assigned without sorting and read back with one walk.
  std::sort(resolved.begin(), resolved.end(),
            [](const Resolved& a, const Resolved& b) { return a.svc_id < b.svc_id; });
  std::vector<BackendIdKey> backend_keys;
  size_t total = 0;
  for (const Resolved& r : resolved) total += r.candidates.size();
  backend_keys.reserve(total);
  for (const Resolved& r : resolved) {
    for (const Candidate& c : r.candidates) {
      backend_keys.push_back(backendIdKey(r.svc_id, c.addr, c.port));
    }
  }
  out.ids.backend = assignIds(backend_keys, previous.backend,
                              {IdPolicy::Kind::kLowestFree, 0, MESHLET_MAX_BACKENDS});
  auto next_id = out.ids.backend.begin();  // walks along with backend_keys
  uint32_t id_end = 0;
  for (const auto& [key, id] : out.ids.backend) id_end = std::max(id_end, id + 1);
  out.ids.slot.assign(id_end, MESHLET_NO_ID);

  DesiredDatapath& d = out.desired;
  std::vector<BackendEntry> infos;
  infos.reserve(backend_keys.size());
  std::unordered_map<std::string, uint32_t> name_index;
  auto intern = [&](const std::string& name) {
    auto [it, added] = name_index.emplace(name, static_cast<uint32_t>(d.names.size()));
    if (added) d.names.push_back(name);
    return it->second;
  };
  decltype(d.services)::container_type services;  // in id order: sorted once at the end
  services.reserve(resolved.size());
  std::vector<std::pair<uint32_t, ServiceInfo>> service_info;  // in id order, like `resolved`
  service_info.reserve(resolved.size());
  for (const auto& [f, svc_id, candidates] : resolved) {
    const uint8_t algo = lbAlgo(*f->svc);

    ServiceInfo si;
    si.ns = f->svc->meta.ns;
    si.name = f->svc->meta.name;
    si.port_name = f->port->name;
    si.cluster_ip = f->ip;
    si.port = f->port->port;
    si.protocol = f->port->protocol;
    si.lb = lbName(algo);
    si.prefer_close = f->svc->prefer_close;
    si.l7 = f->port->protocol == Protocol::kTCP && !l7::l7Reason(s, *f->svc, *f->port).empty();
    const bool l7_path = si.l7;
    service_info.emplace_back(svc_id, std::move(si));

    // Every endpoint is explained; the ready ones (less those outlier detection ejected) get
    // slots below. Candidates are already in (addr, port) order.
    const bool outlier = f->port->protocol == Protocol::kTCP && !l7_path;
    if (outlier) {
      if (auto od = l7::l4OutlierDetection(s, *f->svc, *f->port)) d.outlier.emplace(svc_id, *od);
    }
    const bool ejections = in.ejected && !in.ejected->empty() && d.outlier.count(svc_id) != 0;
    const size_t first_info = infos.size();
    for (const Candidate& c : candidates) {
      const BackendIdKey key = backendIdKey(svc_id, c.addr, c.port);
      while (next_id != out.ids.backend.end() && next_id->first < key) ++next_id;
      if (next_id == out.ids.backend.end() || key < next_id->first) continue;  // ids exhausted
      BackendInfo bi;
      bi.svc_id = svc_id;
      bi.addr = c.addr;
      bi.port = c.port;
      bi.ready = c.ep->ready;
      bi.serving = c.ep->serving;
      bi.terminating = c.ep->terminating;
      if (!c.ep->node_name.empty()) bi.node = intern(c.ep->node_name);
      bi.local = !in.node_name.empty() && c.ep->node_name == in.node_name;
      if (!c.ep->target_pod.empty()) {
        bi.pod = intern(f->svc->meta.ns + "/" + c.ep->target_pod.str());
      }
      bi.ejected = ejections && bi.ready && in.ejected->count(key) != 0;
      infos.emplace_back(next_id->second, std::move(bi));
    }
    // `infos` was reserved for every backend: these pointers stay valid.
    std::vector<BackendEntry*> members;
    for (size_t i = first_info; i < infos.size(); ++i) members.push_back(&infos[i]);
    std::vector<BackendEntry*> local_ready;
    std::vector<BackendEntry*> remote_ready;
    pickSlotted(members, local_ready, remote_ready);
    auto [count, local_count] = slotService(
        svc_id, algo, local_ready, remote_ready,
        [&previous](uint32_t id) { return previous.slotOf(id); }, d.remote_pods, out.ids.slot,
        d.maglev);

    meshlet_svc_value v{};
    v.svc_id = svc_id;
    v.count = count;
    v.local_count = local_count;
    v.lb_algo = algo;
    v.flags =
        (f->svc->prefer_close ? MESHLET_SVC_PREFER_CLOSE : 0) | (l7_path ? MESHLET_SVC_L7 : 0);
    services.emplace_back(f->key, v);
  }
  d.services = decltype(d.services)(std::move(services));
  d.service_info = decltype(d.service_info)(std::move(service_info));
  d.backend_info = decltype(d.backend_info)(std::move(infos));
}

}  // namespace

bool podEnrolled(const Snapshot& s, const Pod& pod) {
  auto it = pod.meta.labels.find(kDataplaneModeLabel);
  if (it != pod.meta.labels.end()) return it->second == kDataplaneModeMeshlet;
  for (const Namespace& ns : s.namespaces) {
    if (ns.meta.name != pod.meta.ns) continue;
    auto ns_it = ns.meta.labels.find(kDataplaneModeLabel);
    return ns_it != ns.meta.labels.end() && ns_it->second == kDataplaneModeMeshlet;
  }
  return false;
}

std::string maglevBackendName(const IpAddr& addr, int port) {
  if (addr.isV4()) return addr.toString() + ":" + std::to_string(port);
  return "[" + addr.toString() + "]:" + std::to_string(port);
}

const std::string& DesiredDatapath::name(uint32_t index) const {
  static const std::string kNone;
  return index < names.size() ? names[index] : kNone;
}

meshlet_backend_value backendValue(uint32_t backend_id, const BackendInfo& b) {
  meshlet_backend_value v{};
  auto w = b.addr.words();
  std::copy(w.begin(), w.end(), v.addr);
  v.port = b.port;
  v.family = afOf(b.addr);
  v.flags = b.local ? MESHLET_BACKEND_LOCAL : b.tunnel ? MESHLET_BACKEND_TUNNEL : 0;
  v.backend_id = backend_id;
  return v;
}

BackendEntries DesiredDatapath::backends() const {
  using Entry = BackendEntries::value_type;
  // Built on every apply (twice: the state wanted and the one in force), so each entry goes
  // straight to its place: bucketed by service id (below MESHLET_MAX_SERVICES, but in a corrupt
  // map read back), then each service's few put in slot order, stably: of two entries with one
  // key the first is kept, as the FlatMap constructor does. No sort of 100 000s of entries and
  // no second copy of them.
  auto forEach = [this](auto fn) {
    for (const auto& [id, b] : backend_info) {
      if (b.slot != MESHLET_NO_ID)
        fn(Entry{meshlet_backend_key{b.svc_id, b.slot}, backendValue(id, b)});
    }
    for (const Entry& e : stray_backends) fn(e);
  };
  std::vector<uint32_t> start(MESHLET_MAX_SERVICES + 1, 0);
  bool bounded = true;
  forEach([&](const Entry& e) {
    if (e.first.svc_id < MESHLET_MAX_SERVICES) {
      ++start[e.first.svc_id + 1];
    } else {
      bounded = false;
    }
  });
  if (!bounded) {
    BackendEntries::container_type entries;
    forEach([&](const Entry& e) { entries.push_back(e); });
    return BackendEntries(std::move(entries));  // sorts
  }
  for (size_t i = 1; i < start.size(); ++i) start[i] += start[i - 1];
  BackendEntries::container_type sorted(start.back());
  std::vector<uint32_t> next(start.begin(), start.end() - 1);
  forEach([&](const Entry& e) { sorted[next[e.first.svc_id]++] = e; });
  auto bySlot = [](const Entry& a, const Entry& b) { return a.first.slot < b.first.slot; };
  for (size_t svc = 0; svc < MESHLET_MAX_SERVICES; ++svc) {
    auto first = sorted.begin() + start[svc];
    auto last = sorted.begin() + start[svc + 1];
    if (!std::is_sorted(first, last, bySlot)) std::stable_sort(first, last, bySlot);
  }
  return BackendEntries(std::move(sorted));  // in order now: taken as it is
}

size_t DesiredDatapath::backendCount() const {
  size_t n = stray_backends.size();
  for (const auto& [id, b] : backend_info) n += b.slot != MESHLET_NO_ID;
  return n;
}

void DesiredDatapath::setBackends(const BackendEntries& entries) {
  std::vector<BackendEntry> infos;
  stray_backends.clear();
  std::vector<bool> taken(MESHLET_MAX_BACKENDS);  // backend ids already in `infos`
  for (const auto& [k, v] : entries) {
    BackendInfo b;
    b.svc_id = k.svc_id;
    b.addr = IpAddr::fromWords(v.addr, v.family);
    b.port = v.port;
    b.ready = b.serving = true;
    b.local = (v.flags & MESHLET_BACKEND_LOCAL) != 0;
    b.tunnel = !b.local && (v.flags & MESHLET_BACKEND_TUNNEL) != 0;
    b.slot = k.slot;
    const meshlet_backend_value again = backendValue(v.backend_id, b);
    if (std::memcmp(&again, &v, sizeof(v)) == 0 && v.backend_id < taken.size() &&
        !taken[v.backend_id]) {
      taken[v.backend_id] = true;
      infos.emplace_back(v.backend_id, b);
    } else {
      stray_backends.emplace_back(k, v);
    }
  }
  backend_info = decltype(backend_info)(std::move(infos));
}

std::string authzPolicyName(const DesiredDatapath& d, uint32_t index) {
  auto it = d.authz_policies.find(index);
  return it == d.authz_policies.end() ? "" : it->second;
}

void reslotServices(DesiredDatapath& d, IdTable& ids, const std::set<uint32_t>& svc_ids,
                    const std::set<BackendIdKey>& ejected) {
  if (svc_ids.empty()) return;
  // The services' backends, with the slots they hold now.
  std::map<uint32_t, std::vector<BackendEntry*>> members;
  std::unordered_map<uint32_t, uint32_t> had_slot;
  for (BackendEntry& entry : d.backend_info) {
    auto& [id, bi] = entry;
    if (svc_ids.count(bi.svc_id) == 0) continue;
    bi.ejected = bi.ready && d.outlier.count(bi.svc_id) != 0 &&
                 ejected.count(backendIdKey(bi.svc_id, bi.addr, bi.port)) != 0;
    if (bi.slot != MESHLET_NO_ID) had_slot.emplace(id, bi.slot);
    bi.slot = MESHLET_NO_ID;
    if (id < ids.slot.size()) ids.slot[id] = MESHLET_NO_ID;
    members[bi.svc_id].push_back(&entry);
  }
  for (auto& [svc_id, list] : members) {
    std::sort(list.begin(), list.end(), [](const BackendEntry* a, const BackendEntry* b) {
      return std::tie(a->second.addr, a->second.port) < std::tie(b->second.addr, b->second.port);
    });
  }
  auto prev_slot = [&had_slot](uint32_t id) {
    auto it = had_slot.find(id);
    return it == had_slot.end() ? MESHLET_NO_ID : it->second;
  };
  for (auto& [key, v] : d.services) {
    if (svc_ids.count(v.svc_id) == 0) continue;
    for (auto it = d.maglev.lower_bound(meshlet_maglev_key{v.svc_id, 0});
         it != d.maglev.end() && it->first.svc_id == v.svc_id;) {
      it = d.maglev.erase(it);
    }
    std::vector<BackendEntry*> local_ready;
    std::vector<BackendEntry*> remote_ready;
    pickSlotted(members[v.svc_id], local_ready, remote_ready);
    auto [count, local_count] = slotService(v.svc_id, v.lb_algo, local_ready, remote_ready,
                                            prev_slot, d.remote_pods, ids.slot, d.maglev);
    v.count = count;
    v.local_count = local_count;
  }
}

TranslateOutput translate(const TranslateInput& in, const IdTable& previous) {
  TranslateOutput out;
  if (in.snapshot == nullptr) return out;
  translatePods(in, previous, out);
  translateAuthz(in, previous, out);
  translateServices(in, previous, out);
  return out;
}

}  // namespace meshlet
