// The Kubernetes source's object store and the snapshot built from it.
#include "agent/sources/kube_store.h"

#include <exception>
#include <utility>

#include "agent/common/log.h"
#include "agent/sources/objects.h"

namespace meshlet {
namespace {

// Appends a fragment's objects (every kind) to `to`.
void appendFragment(Snapshot& to, const Snapshot& from) {
  forEachKindList(to, from, [](auto& list, const auto& more) {
    auto& dst = list.mut();
    dst.insert(dst.end(), more.begin(), more.end());
  });
}

std::string scalarAt(const YamlNode& n, const char* a, const char* b) {
  return std::string(n.get(a).get(b).scalar());
}

}  // namespace

const std::vector<KubeResource>& kubeResources() {
  static const std::vector<KubeResource> kResources = {
      {"namespaces", "", {"v1"}, "Namespace", false},
      {"services", "", {"v1"}, "Service", false},
      {"endpointslices", "discovery.k8s.io", {"v1"}, "EndpointSlice", false},
      {"pods", "", {"v1"}, "Pod", false},
      {"virtualservices", "networking.istio.io", {"v1", "v1beta1"}, "VirtualService", true},
      {"destinationrules", "networking.istio.io", {"v1", "v1beta1"}, "DestinationRule", true},
      {"authorizationpolicies",
       "security.istio.io",
       {"v1", "v1beta1"},
       "AuthorizationPolicy",
       true},
      {"peerauthentications", "security.istio.io", {"v1", "v1beta1"}, "PeerAuthentication", true},
  };
  return kResources;
}

std::string kubeObjectKey(const YamlNode& object) {
  std::string name = scalarAt(object, "metadata", "name");
  if (name.empty()) return "";
  std::string ns = scalarAt(object, "metadata", "namespace");
  return ns.empty() ? name : ns + "/" + name;
}

Result<std::shared_ptr<const Snapshot>> parseKubeObject(const YamlNode& object,
                                                        const KubeResource& res,
                                                        const std::string& api_version,
                                                        const std::string& where) {
  auto s = std::make_shared<Snapshot>();
  Status st;
  try {
    st = parseObjectNode(object, where, *s, api_version, res.kind);
  } catch (const std::exception& e) {  // not expected: the parsers do not throw
    st = Error(where + ": " + e.what());
  }
  if (!st) return st.error();
  return std::shared_ptr<const Snapshot>(std::move(s));
}

KubeStore::KubeStore(size_t resources) : objects_(resources), synced_(resources, false) {}

void KubeStore::upsert(size_t res, const std::string& key, Fragment f) {
  std::lock_guard<std::mutex> lock(mu_);
  objects_[res][key] = std::move(f);
  dirty_ = true;
}

void KubeStore::erase(size_t res, const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (objects_[res].erase(key)) dirty_ = true;
}

void KubeStore::replace(size_t res, std::map<std::string, Fragment> objects,
                        const std::set<std::string>& keep) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& current = objects_[res];
  for (const std::string& k : keep) {
    auto it = current.find(k);
    if (it != current.end()) objects.emplace(k, it->second);
  }
  current = std::move(objects);
  dirty_ = true;
}

void KubeStore::markSynced(size_t res) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!synced_[res]) dirty_ = true;
  synced_[res] = true;
}

bool KubeStore::has(size_t res, const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_[res].count(key) > 0;
}

size_t KubeStore::size(size_t res) const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_[res].size();
}

bool KubeStore::allSynced() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (bool s : synced_) {
    if (!s) return false;
  }
  return true;
}

std::shared_ptr<Snapshot> KubeStore::take(std::vector<std::string>* dropped) {
  std::vector<Fragment> fragments;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!dirty_) return nullptr;
    for (bool s : synced_) {
      if (!s) return nullptr;
    }
    dirty_ = false;
    // Only pointers are copied under the lock; the objects are shared and immutable.
    for (const auto& by_key : objects_) {
      for (const auto& [key, f] : by_key) fragments.push_back(f);
    }
  }
  auto out = std::make_shared<Snapshot>();
  for (const Fragment& f : fragments) appendFragment(*out, *f);

  // One cluster IP, one Service (first by namespace/name wins).
  std::map<IpAddr, std::string> owner;
  std::vector<Service> services;
  services.reserve(out->services.size());
  for (Service& s : out->services.mut()) {
    std::string name = s.meta.ns + "/" + s.meta.name;
    std::string clash;
    for (const IpAddr& ip : s.cluster_ips) {
      auto it = owner.find(ip);
      if (it != owner.end()) {
        clash = ip.toString() + " is already the cluster IP of Service " + it->second;
        break;
      }
    }
    if (!clash.empty()) {
      if (dropped) dropped->push_back("Service " + name + ": spec.clusterIPs: " + clash);
      continue;
    }
    for (const IpAddr& ip : s.cluster_ips) owner.emplace(ip, name);
    services.push_back(std::move(s));
  }
  out->services = std::move(services);
  return out;
}

}  // namespace meshlet
