#pragma once
// File source (the embedded default): a directory of multi-document Kubernetes YAML
// (v1 Service, discovery.k8s.io/v1 EndpointSlice, v1 Pod, v1 Namespace, and the Istio
// AuthorizationPolicy, PeerAuthentication, VirtualService, DestinationRule), as
// `kubectl get -o yaml` prints them (also `kind: List` with `items`).
#include <functional>
#include <string>
#include <vector>

#include "agent/common/status.h"
#include "agent/state/types.h"

namespace meshlet {

// Parses one YAML text (all its documents) into `out`. `file` is used in error messages. An
// error names file, document, object (Kind namespace/name) and field, e.g.
//   "svc.yaml (document 2): Service default/web: spec.ports[0].port: 70000 is out of range 1-65535"
Status parseYaml(const std::string& text, const std::string& file, Snapshot& out);

// Cross-object validation of a whole snapshot (duplicate cluster IPs, duplicate names,
// references), run after every file parsed. Returns the first error.
Status validateSnapshot(const Snapshot& s);

// Reads every *.yaml / *.yml / *.json file of `dir` (not recursive, sorted by name) into one
// snapshot; any error rejects the whole directory.
// With synthesize = false the caller runs synthesizeEndpointSlices itself (after merging pods
// from other sources, whose IPs the YAML does not know).
Result<Snapshot> loadDirectory(const std::string& dir, bool synthesize = true);

// Endpoints for a Service with a selector and no EndpointSlice: synthesized from the matching
// Pods like the Kubernetes endpoints controller (ready = pod Ready condition; named targetPort
// resolved through the pod's container ports). Appended to s.endpoint_slices.
void synthesizeEndpointSlices(Snapshot& s);

}  // namespace meshlet
