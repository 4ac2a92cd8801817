#pragma once
// The Kubernetes source's object store: the last accepted version of every watched object,
// keyed by resource and namespace/name, each held as a one-object Snapshot fragment parsed by
// the file source's parsers (parseObjectNode). Watch threads write it; the agent's loop thread
// takes a whole Snapshot from it when something changed. Cheap per event: an upsert or erase
// in a map; the O(objects) snapshot build happens at most once per take, however many events
// arrived in between.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/common/status.h"
#include "agent/sources/yaml_doc.h"
#include "agent/state/types.h"

namespace meshlet {

// One watched resource type.
struct KubeResource {
  std::string plural;                 // URL segment: "services"
  std::string group;                  // "" for the core group
  std::vector<std::string> versions;  // preferred first: {"v1", "v1beta1"}
  std::string kind;                   // "Service"
  bool optional = false;              // a CRD: not installed (404) is not an error

  // "services", "virtualservices.networking.istio.io"
  std::string name() const { return group.empty() ? plural : plural + "." + group; }
  // "v1", "discovery.k8s.io/v1"
  std::string apiVersion(const std::string& version) const {
    return group.empty() ? version : group + "/" + version;
  }
  // "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"
  std::string path(const std::string& version) const {
    return (group.empty() ? "/api/" : "/apis/" + group + "/") + version + "/" + plural;
  }
};

// What the agent watches: Namespaces, Services, EndpointSlices, Pods and the Istio resources.
const std::vector<KubeResource>& kubeResources();

// "namespace/name" (or "name" for a cluster-scoped object) from an object's metadata; empty
// when it has no name.
std::string kubeObjectKey(const YamlNode& object);

// Parses one API object into a one-object fragment. Items of a list carry no apiVersion/kind:
// `api_version` and the resource's kind are the defaults.
Result<std::shared_ptr<const Snapshot>> parseKubeObject(const YamlNode& object,
                                                        const KubeResource& res,
                                                        const std::string& api_version,
                                                        const std::string& where);

class KubeStore {
 public:
  using Fragment = std::shared_ptr<const Snapshot>;

  explicit KubeStore(size_t resources);

  void upsert(size_t res, const std::string& key, Fragment f);
  void erase(size_t res, const std::string& key);
  // A full list of `res`: `objects` replaces what was there, except the keys in `keep`
  // (objects that failed validation: their previous version, if any, stays).
  void replace(size_t res, std::map<std::string, Fragment> objects,
               const std::set<std::string>& keep);
  // `res` is known to be complete (listed, or not installed: then `replace` it with nothing).
  void markSynced(size_t res);
  bool has(size_t res, const std::string& key) const;
  size_t size(size_t res) const;
  bool allSynced() const;

  // The whole store as one Snapshot when it changed since the last take and every resource
  // has synced once; else null. Services whose cluster IP is already taken by another
  // (a transient state the API server passes through, or a rejected update) are left out with
  // a logged error rather than refusing the whole snapshot, so one object cannot freeze the
  // state; `dropped` lists them.
  std::shared_ptr<Snapshot> take(std::vector<std::string>* dropped = nullptr);

 private:
  mutable std::mutex mu_;
  std::vector<std::map<std::string, Fragment>> objects_;
  std::vector<bool> synced_;
  bool dirty_ = true;
};

}  // namespace meshlet
