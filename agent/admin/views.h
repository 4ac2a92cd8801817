#pragma once
// What the admin API shows: pure functions from the agent's current view to the JSON arrays
// of docs/ADMIN_API.md (field names = the CLI's table headers in snake_case).
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/datapath/datapath.h"
#include "agent/identity/workload_certs.h"
#include "agent/l7/routes.h"
#include "agent/proxy/mesh_proxy.h"
#include "agent/sources/kube_status.h"
#include "agent/state/types.h"
#include "agent/translate/translate.h"

namespace meshlet {

struct AgentStatusInfo {
  std::string node_name;
  std::string config_dir;
  std::string cgroup;
  std::string bpffs;
  uint64_t generation = 0;
  bool config_ok = false;
  std::string last_error;
  std::string last_error_time;
  double last_sync_ms = 0;            // the whole sync, of which:
  double last_sync_translate_ms = 0;  // snapshot -> desired maps
  double last_sync_maps_ms = 0;       // writing the maps
  bool adopted = false;
  int metrics_port = 0;
  int64_t started_unix = 0;
  std::string source = "file";  // "file" or "kube"
  KubeSourceStatus kube;        // when source is "kube"
};

// Workload identity as the agent's loop last saw it (the SVIDs are shared, immutable).
struct IdentityView {
  std::string trust_domain;
  std::string ca_dir;
  std::string ca_error;  // why the CA could not be (re)loaded; empty when fine
  bool has_ca = false;
  std::vector<tls::CertInfo> roots;
  std::map<std::string, std::shared_ptr<const tls::Svid>> svids;  // by SPIFFE id
  std::map<std::string, std::string> issue_errors;                // SPIFFE id -> last error
};

// One consistent picture, replaced whole by the agent's loop and read by the admin thread.
// L4 outlier detection's state of one backend (by backend id), for `meshlet endpoints`.
struct OutlierView {
  int64_t ejected_until_unix_ms = 0;  // 0: not ejected
  int ejections = 0;                  // multiplier of the next ejection time minus one
  int consecutive_errors = 0;         // connect failures since the last success
};

struct AgentView {
  SnapshotPtr snapshot;  // the last good configuration (may be null before the first)
  std::shared_ptr<const DesiredDatapath> desired;
  AgentStatusInfo status;
  std::vector<MapUsage> maps;
  uint64_t spliced_connections = 0;
  std::shared_ptr<const IdentityView> identity;
  std::shared_ptr<const proxy::ProxyReport> proxy;  // the mesh proxy (tunnelled connections)
  // The L7 routing tables the mesh proxy runs (the very object it was handed); null until the
  // proxy has a configuration.
  std::shared_ptr<const l7::L7Config> l7;
  // Backends of services with L4 outlier detection that failed, or were ejected, lately; null
  // or missing: healthy.
  std::shared_ptr<const std::map<uint32_t, OutlierView>> outliers;
};

using Json = nlohmann::ordered_json;

Json statusJson(const AgentView& v, int64_t now_unix);
Json workloadsJson(const AgentView& v);
// Istio security policies in the configuration, and for each enrolled pod of this node the
// mTLS mode in force and the AuthorizationPolicies that apply to it.
Json policiesJson(const AgentView& v);
Json servicesJson(const AgentView& v);
// filter: "" for all, or "namespace/name". now_unix_ms: for how long an ejected backend stays
// out (column "health").
Json endpointsJson(const AgentView& v, const std::string& filter, int64_t now_unix_ms = 0);
// The kernel's connections (now_ns: CLOCK_MONOTONIC, the clock of its timestamps), then the
// ones the mesh proxy tunnels (path "tunnel"; now_unix for their age).
Json connectionsJson(const AgentView& v, const std::vector<ConnEntry>& conns, uint64_t now_ns,
                     int64_t now_unix = 0);

// One row per enrolled pod of this node: its identity and certificate (never the key).
Json certsJson(const AgentView& v, int64_t now_unix);

// The compiled L7 routes (routes_view.cc): one row (kind "route") per route of each L7 service
// port, services by namespace, name and port, routes in matching order; then one row (kind
// "warning", with only `message`) per L7 configuration warning. filter: "" for all, or
// "namespace/name" (its routes, and the warnings that name it or its VirtualServices).
Json routesJson(const AgentView& v, const std::string& filter);

// `meshlet routes --explain`: which route the proxy would pick for a request.
struct RouteQuery {
  std::string method;                // as sent, e.g. "GET"
  std::string url;                   // http://HOST[:PORT]/path?query; HOST a service or its IP
  std::vector<std::string> headers;  // "Name: value"; Host sets the authority
  std::string source;                // "namespace/pod" (sourceLabels, sourceNamespace) or ""
};
// One object: the service, the route taken (or "no route: 404 NR"), the match entry that
// matched, the action and its destinations, and why each earlier route did not match. An error
// is a usage error (bad URL or header, unknown service, port not on the L7 path, unknown pod).
Result<Json> explainRouteJson(const AgentView& v, const RouteQuery& q);
// The admin answer (HTTP code, JSON body) for /v1/routes (query: `service`) and
// /v1/routes/explain (query: `method`, `url`, `headers` ("Name: value" lines joined by "\n"),
// `source`): 503 before the proxy has an L7 configuration, 404 for a filter naming no L7
// service, 400 for an explain usage error.
std::pair<int, Json> routesAnswer(const AgentView& v, const std::string& path,
                                  const std::map<std::string, std::string>& query);

// "spliced", "balanced", "tunnel" or "passthrough" (enum meshlet_path).
const char* pathName(uint8_t path);

}  // namespace meshlet
