#pragma once
// The agent's userspace data path for traffic between nodes. For every enrolled pod on this
// node it listens inside the pod's network namespace:
//   127.0.0.1:15001 and [::1]:15001  the kernel rewrites tunnel-path connects here; the
//                                   original destination comes from meshlet_tunnel_v1
//   <pod IP>:15008                   HBONE from other nodes' agents (HTTP/2 CONNECT over mTLS)
// Outbound, each app connection becomes a CONNECT stream on a pooled HBONE link, dialled from
// the pod's netns with the pod's SVID, to the destination pod's 15008; the link must present
// the destination workload's identity. Inbound, the client's SPIFFE identity is checked against
// the AuthorizationPolicies of the destination, then the stream is delivered to the app.
//
// It runs on a thread of its own with an epoll loop; the agent hands it configuration with
// update() and reads counters and live connections with report().
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/ip.h"
#include "agent/common/status.h"
#include "agent/l7/http_proxy.h"
#include "agent/l7/routes.h"
#include "agent/state/types.h"
#include "agent/tls/ca.h"
#include "agent/translate/translate.h"

namespace meshlet::proxy {

// An enrolled pod on this node, as the proxy serves it.
struct ProxyPod {
  std::string ns;
  std::string name;
  std::string spiffe_id;
  Labels labels;
  std::vector<IpAddr> ips;
  std::string netns;  // path
  uint64_t netns_cookie = 0;
  // Plaintext inbound from outside this node's mesh is steered to the agent (sk_lookup) to
  // apply PeerAuthentication and AuthorizationPolicy; false lets it reach the app directly.
  bool capture_inbound = false;
};

struct ProxyConfig {
  std::string trust_domain = "cluster.local";
  std::vector<ProxyPod> pods;                      // this node's enrolled pods with a netns
  std::map<IpAddr, RemotePodInfo> remote_pods;     // enrolled pods on other nodes, by IP
  std::shared_ptr<const Snapshot> snapshot;        // for AuthorizationPolicy
  std::shared_ptr<const DesiredDatapath> desired;  // service names by id
  std::map<std::string, std::shared_ptr<const tls::Svid>> svids;  // by SPIFFE id
  std::string roots_pem;                                          // every trusted root
  std::shared_ptr<const l7::L7Config> l7;  // routes of the services on the L7 path
};

// One tunnelled connection, as `meshlet connections` shows it.
struct TunnelConn {
  uint64_t id = 0;  // unique in this agent's life
  bool inbound = false;
  std::string path = "tunnel";  // "tunnel" (HBONE), "captured" (plaintext inbound), "l7"
  std::string pod;              // "ns/name" on this node
  std::string peer_pod;         // "ns/name" of the pod at the other end, when known
  std::string service;          // "name.ns.svc.cluster.local" the client dialled, when known
  std::string local_id;         // this pod's SPIFFE id
  std::string peer;             // outbound: destination "ip:port"; inbound: source "ip"
  std::string destination;      // "ip:port" the app dialled (outbound) or is served on (inbound)
  std::string peer_id;          // SPIFFE id the other side proved
  std::string policy;           // inbound: "allowed by ns/name", "allowed" ...
  std::string policy_name;      // inbound: the deciding AuthorizationPolicy "ns/name", if any
  uint64_t bytes_sent = 0;      // towards the peer
  uint64_t bytes_received = 0;
  int64_t start_unix = 0;
};

struct ProxyReport {
  // Counters since the agent started.
  uint64_t outbound_opened = 0, outbound_closed = 0, outbound_failed = 0;
  uint64_t inbound_opened = 0, inbound_closed = 0;
  uint64_t links_opened = 0, links_closed = 0;
  uint64_t no_origin = 0;                  // accepted on 15001 with no kernel record (dropped)
  std::map<std::string, uint64_t> denied;  // by deciding policy ("" = no ALLOW matched ...)
  uint64_t plaintext_rejected = 0;         // plaintext to a STRICT port
  uint64_t captured_opened = 0;            // plaintext inbound checked and passed on
  uint64_t l7_opened = 0, l7_closed = 0;   // app connections on the L7 path
  uint64_t l7_requests = 0;                // HTTP requests they carried
  std::vector<TunnelConn> live;
  std::vector<std::string> listener_errors;  // "ns/name: why"
  size_t pooled_links = 0;
  // Pods served in full: their listeners are open and their certificate is loaded.
  size_t ready_pods = 0;
};

// Telemetry hooks, called on the proxy's thread (the callee must be thread-safe). The snapshot
// is the configuration the decision was made with.
struct TunnelEvents {
  std::function<void(const TunnelConn&, const Snapshot*)> opened;
  std::function<void(const TunnelConn&, uint64_t sent, uint64_t received)> bytes;  // deltas
  std::function<void(const TunnelConn&)> closed;
  std::function<void(const TunnelConn&, const Snapshot*)> denied;  // .policy says by whom
  // Plaintext refused because the port's mTLS mode is STRICT (.policy_name: the deciding
  // PeerAuthentication).
  std::function<void(const TunnelConn&, const Snapshot*)> rejected;
  // One HTTP request of an L7-path connection, when it ends.
  std::function<void(const l7::RequestRecord&, const Snapshot*)> request;
};

class MeshProxy {
 public:
  // Takes over `tunnel_map_fd` (Datapath::tunnelMapFd()) and `inbound_map_fd`
  // (Datapath::inboundMapFd()).
  static Result<std::unique_ptr<MeshProxy>> start(int tunnel_map_fd, int inbound_map_fd,
                                                  TunnelEvents events = {});
  ~MeshProxy();  // stops the thread, closes every listener and connection
  MeshProxy(const MeshProxy&) = delete;
  MeshProxy& operator=(const MeshProxy&) = delete;

  // Any thread: the configuration to serve from now on (applied within ~50 ms).
  void update(std::shared_ptr<const ProxyConfig> cfg);
  ProxyReport report() const;

 private:
  MeshProxy() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshlet::proxy
