#pragma once
// What the Kubernetes source tells `meshlet status`: plain values, copied into the agent's
// published view (agent/admin/views.h).
#include <cstdint>
#include <string>
#include <vector>

namespace meshlet {

struct KubeResourceStatus {
  std::string resource;     // "services", "virtualservices.networking.istio.io", ...
  std::string api_version;  // the version being watched ("v1", "v1beta1"); empty before
  // "syncing" (never listed yet), "synced", "not installed" (a CRD that is not served),
  // "forbidden" (an optional kind RBAC does not let the agent read), "error"
  std::string state;
  std::string error;  // the last error of this resource, when state is "error"
  uint64_t objects = 0;
  uint64_t rejected = 0;  // objects refused by validation (their previous version stays)
};

struct KubeSourceStatus {
  std::string origin;  // "in-cluster" or "kubeconfig PATH (context NAME)"
  std::string server;  // https://host:port
  bool connected = false;
  bool synced = false;  // every resource listed (or found not installed) at least once
  std::string last_error;
  std::string since;  // RFC 3339: when `connected` last changed
  std::vector<KubeResourceStatus> resources;
};

}  // namespace meshlet
