#pragma once
// The only module that touches libbpf for the running datapath: loads the skeleton (reusing
// pinned maps), attaches or adopts the programs, diff-applies desired map contents and reads
// the kernel's counters.
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/status.h"
#include "agent/translate/translate.h"
#include "meshlet/maps.h"

struct meshlet_bpf;  // the generated skeleton
struct bpf_link;

namespace meshlet {

struct DatapathOptions {
  std::string bpffs_dir = "/sys/fs/bpf/meshlet";
  std::string cgroup_path;  // cgroup v2 directory the programs attach at
};

struct MapUsage {
  std::string name;
  uint64_t entries = 0;
  uint64_t capacity = 0;
};

struct ConnEntry {
  meshlet_sock_key key{};
  meshlet_conn_value value{};
};

// The key of the other side of a connection (both ends on this node).
inline meshlet_sock_key peerKey(const meshlet_sock_key& k) {
  meshlet_sock_key p{};
  std::memcpy(p.local, k.remote, sizeof(p.local));
  std::memcpy(p.remote, k.local, sizeof(p.remote));
  p.lport = k.rport;
  p.rport = k.lport;
  p.family = k.family;
  return p;
}

struct SvcCounters {
  uint64_t connects = 0;
  uint64_t no_backend = 0;
  uint64_t failed_connects = 0;
  uint64_t udp_msgs = 0;
};

class Datapath {
 public:
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  // Loads the programs, reusing the maps pinned under bpffs_dir (so the previous agent's state
  // stays in force), then attaches them at the cgroup, or atomically swaps the programs of
  // the links a previous agent pinned (no gap without programs). Pins what it creates.
  static Result<std::unique_ptr<Datapath>> open(const DatapathOptions& opts);

  // Removes every link and map pinned under bpffs_dir, detaching the programs.
  static Status uninstall(const DatapathOptions& opts);

  // Makes the maps hold exactly `desired`: writes new and changed entries, then deletes stale
  // ones, in an order under which a concurrent connect() always finds a consistent service.
  // Checks capacities first: a desired state that does not fit is refused whole. On success
  // the datapath keeps `desired` as its mirror of the maps (shared, not copied).
  Status apply(std::shared_ptr<const DesiredDatapath> desired);
  // The same for a state the caller does not keep (tests): applies a copy.
  Status apply(const DesiredDatapath& desired) {
    return apply(std::make_shared<const DesiredDatapath>(desired));
  }

  // Live and closed connections. Closed entries should be collected with eraseConns.
  Result<std::vector<ConnEntry>> readConns() const;
  void eraseConns(std::vector<meshlet_sock_key> keys);
  // Same-node verdicts that refused connects, with the kernel's count for each.
  std::vector<std::pair<meshlet_authz_key, uint64_t>> authzDenials() const;
  // A duplicate of the tunnel map's fd, for the proxy thread (takeTunnelOrigin).
  Result<int> tunnelMapFd() const;
  // A duplicate of the inbound capture sockhash's fd (pod IP -> the agent's 15006 listener).
  Result<int> inboundMapFd() const;

  // Inbound capture: the sk_lookup program attached to an enrolled pod's netns, pinned as
  // links/sk_lookup-<cookie> so it survives agent restarts (an adopted one gets the new program).
  Status attachInbound(uint64_t netns_cookie, const std::string& netns_path);
  void detachInbound(uint64_t netns_cookie);
  std::vector<uint64_t> inboundAttached() const;
  // Kernel counters per service id (summed over CPUs).
  SvcCounters svcCounters(uint32_t svc_id) const;
  // Map-wide counters (enum meshlet_global_counter), summed over CPUs.
  std::vector<uint64_t> globalCounters() const;
  // Entries and capacity of every map: the agent-written maps from the mirror, the
  // kernel-written ones as last counted by refreshKernelCounts() (cheap to call often).
  std::vector<MapUsage> mapUsage() const;
  // Walks the kernel-written maps (origins, UDP reverse, sockhash, connections) to count them.
  void refreshKernelCounts();

  bool adopted() const { return adopted_; }
  // What the agent last wrote (or, right after open, what the maps held).
  const DesiredDatapath& applied() const { return *applied_; }
  uint64_t mapUpdateErrors() const { return map_update_errors_; }
  // The map the last failed apply() was about ("" when none failed).
  const std::string& lastFailedMap() const { return failed_map_; }

 private:
  Datapath() = default;
  Status attach(const DatapathOptions& opts);
  // What the maps hold now, read back from the kernel.
  DesiredDatapath readMaps() const;
  // Takes the maps from `have` to `want` in an order under which a concurrent connect() always
  // finds a consistent service. Stops at the first failed write (naming its map in `failed`)
  // unless `best_effort`, as a rollback is.
  Status writeDiff(const DesiredDatapath& want, const DesiredDatapath& have, bool best_effort,
                   std::string& failed);

  struct ::meshlet_bpf* skel_ = nullptr;
  std::vector<::bpf_link*> links_;
  std::string links_dir_;
  std::map<uint64_t, ::bpf_link*> inbound_links_;  // by netns cookie
  bool adopted_ = false;
  uint64_t map_update_errors_ = 0;
  std::string failed_map_;
  std::map<std::string, uint64_t> kernel_counts_;  // by map name, see refreshKernelCounts()
  // Mirror of what the maps hold: the last applied desired state, or what open() read.
  std::shared_ptr<const DesiredDatapath> applied_ = std::make_shared<const DesiredDatapath>();
};

// The origin of a tunnel-path connection the outbound listener accepted: the pod's netns
// cookie, the app socket's port (the accepted socket's peer port) and the loopback family.
// Removes the entry. nullopt when the kernel recorded none.
std::optional<meshlet_origin> takeTunnelOrigin(int tunnel_map_fd, uint64_t netns_cookie,
                                               uint16_t port, uint8_t family);

// Inbound capture (meshlet_inbound_v1, fd from Datapath::inboundMapFd): connections to `ip`
// from outside this node's mesh go to `listen_fd` (the agent's 15006 listener in that pod).
Status setInboundListener(int inbound_map_fd, const IpAddr& ip, int listen_fd);
void clearInboundListener(int inbound_map_fd, const IpAddr& ip);

// The cgroup v2 mount point of this machine ("/sys/fs/cgroup" or "/sys/fs/cgroup/unified").
Result<std::string> detectCgroup2Root();

// The netns cookie of the network namespace at `path` (SO_NETNS_COOKIE of a socket made in it).
Result<uint64_t> netnsCookie(const std::string& path);
// The same for an open network namespace file descriptor (e.g. one the CNI plugin passed).
Result<uint64_t> netnsCookieFromFd(int nsfd, const std::string& what);

// True when the kernel lets cgroup sock_addr programs set the call's return value.
bool kernelHasSetRetval();

}  // namespace meshlet
