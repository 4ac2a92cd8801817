#pragma once
// The CNI source: pods the CNI plugin enrolled (ADD) and not yet forgotten (DEL), persisted under
// the state directory so a restarted agent restores them. Pure merge into the file snapshot.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/common/ip.h"
#include "agent/common/status.h"
#include "agent/state/types.h"

namespace meshlet {

struct CniPod {
  std::string ns;
  std::string name;
  std::string uid;
  std::string container_id;
  std::string netns;  // CNI_NETNS
  std::vector<IpAddr> ips;
  uint64_t netns_cookie = 0;
};

class CniStore {
 public:
  // state_file: e.g. /var/run/meshlet/state/cni-pods.json ("" = not persisted).
  explicit CniStore(std::string state_file = "") : file_(std::move(state_file)) {}

  // Reads the state file (missing file = empty store). Malformed content is an error.
  Status load();
  // Writes the state file atomically.
  Status save() const;

  const std::map<std::string, CniPod>& pods() const { return pods_; }  // by "ns/name"
  void put(const CniPod& p) { pods_[p.ns + "/" + p.name] = p; }
  // Removes the pod with this container id (or, if none has it, ns/name); true if one went.
  bool remove(const std::string& container_id, const std::string& ns, const std::string& name);
  const CniPod* find(const std::string& ns, const std::string& name) const;
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::map<std::string, CniPod> pods_;
};

// The file snapshot plus the CNI pods: a pod known from YAML gets the CNI's netns, IPs (when the
// YAML has none) and this node; a pod only the CNI knows is added with what the CNI said (no
// labels: it is in the mesh when its namespace is). Pure.
Snapshot mergeCniPods(const Snapshot& file, const std::map<std::string, CniPod>& cni,
                      const std::string& node_name);

}  // namespace meshlet
