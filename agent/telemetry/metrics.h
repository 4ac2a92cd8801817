#pragma once
// Prometheus metrics: Istio's standard TCP metrics fed from the kernel's connection table (so
// spliced connections count), and meshlet_* agent metrics. Served by prometheus-cpp.
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "agent/common/status.h"
#include "agent/datapath/datapath.h"
#include "agent/proxy/mesh_proxy.h"
#include "agent/state/types.h"
#include "agent/translate/translate.h"

namespace meshlet {

// The labels Istio puts on istio_tcp_* metrics, for one side of one connection.
struct TcpLabels {
  std::map<std::string, std::string> labels;
};

// Pure: the Istio labels of a connection entry, from this node's explanations and the cluster
// snapshot (for backends' pods on other nodes). `peer` is the entry of the other side when it
// is on this node (it tells a server which service its client dialled).
std::map<std::string, std::string> istioTcpLabels(const ConnEntry& conn, const ConnEntry* peer,
                                                  const DesiredDatapath& info,
                                                  const Snapshot& snapshot);

// Pure: the Istio labels of a connection the mesh proxy carries: tunnelled (mutual TLS, both
// principals) or captured plaintext (connection_security_policy "none").
std::map<std::string, std::string> istioTunnelLabels(const proxy::TunnelConn& conn,
                                                     const Snapshot* snapshot);

// Pure: the Istio labels of one HTTP request the L7 path proxied (reporter "source": the
// client's node agent is the proxy).
std::map<std::string, std::string> istioRequestLabels(const l7::RequestRecord& r,
                                                      const Snapshot* snapshot);

class Metrics {
 public:
  Metrics();
  // Starts serving /metrics on HOST:PORT (PORT 0 picks a free port; see port()).
  Status serve(const std::string& addr);
  int port() const { return port_; }
  // The trust domain of the principals the agent derives (same-node pairs).
  void setTrustDomain(std::string td) { trust_domain_ = std::move(td); }

  // One collection pass over the kernel's connection table: counts opened connections and
  // byte deltas, counts and erases closed ones.
  void collect(Datapath& dp, const DesiredDatapath& info, const Snapshot& snapshot);
  // The same over entries already read (dp.readConns()).
  void collect(Datapath& dp, const std::vector<ConnEntry>& conns, const DesiredDatapath& info,
               const Snapshot& snapshot);
  // L4 outlier detection: ejections so far per service id, and the backends ejected now.
  void setOutliers(const DesiredDatapath& info, const std::map<uint32_t, uint64_t>& ejections,
                   const std::set<BackendIdKey>& ejected);

  // Agent metrics.
  void setConfig(uint64_t generation, bool ok, double sync_seconds);
  void configRejected();
  void mapUpdateError(const std::string& map);
  void setMaps(const std::vector<MapUsage>& usage);
  void setKernelCounters(Datapath& dp, const DesiredDatapath& info, const Snapshot& snapshot);

  // The mesh proxy's tunnelled connections (proxy::TunnelEvents; called on its thread).
  proxy::TunnelEvents tunnelEvents();

 private:
  // The four istio_tcp_* series of one label set.
  struct TcpSeries {
    prometheus::Counter *opened, *closed, *sent, *received;
  };
  struct Seen {  // a kernel connection record collected before
    uint64_t sent = 0;
    uint64_t received = 0;
    TcpSeries series{};
  };

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::string trust_domain_ = "cluster.local";

  prometheus::Family<prometheus::Counter>& tcp_opened_;
  prometheus::Family<prometheus::Counter>& tcp_closed_;
  prometheus::Family<prometheus::Counter>& tcp_sent_;
  prometheus::Family<prometheus::Counter>& tcp_received_;
  prometheus::Family<prometheus::Gauge>& generation_;
  prometheus::Family<prometheus::Gauge>& config_ok_;
  prometheus::Family<prometheus::Gauge>& sync_seconds_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Gauge>& map_entries_;
  prometheus::Family<prometheus::Gauge>& map_capacity_;
  prometheus::Family<prometheus::Counter>& map_errors_;
  prometheus::Family<prometheus::Counter>& spliced_;
  prometheus::Family<prometheus::Counter>& kernel_map_full_;
  prometheus::Family<prometheus::Counter>& svc_connects_;
  prometheus::Family<prometheus::Counter>& svc_refused_;
  prometheus::Family<prometheus::Counter>& svc_failed_;
  prometheus::Family<prometheus::Counter>& outlier_ejections_;
  prometheus::Family<prometheus::Gauge>& outlier_ejected_;
  prometheus::Family<prometheus::Counter>& authz_denied_;
  prometheus::Family<prometheus::Counter>& mtls_rejected_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Histogram>& request_bytes_;
  prometheus::Family<prometheus::Histogram>& response_bytes_;

  std::map<meshlet_sock_key, Seen, BytesLess<meshlet_sock_key>> seen_;  // by connection
  std::vector<uint64_t> last_globals_;
  std::map<uint32_t, SvcCounters> last_svc_;  // by service id
  std::map<uint32_t, uint64_t> last_ejections_;                                // by service id
  std::map<std::map<std::string, std::string>, bool> ejected_series_;          // gauges set so far
  std::map<std::tuple<uint32_t, uint32_t, uint16_t>, uint64_t> last_denials_;  // by verdict

  // A kernel record's series, resolved when it is first collected. Records with the same
  // label inputs (pods, service, path, outcome) share them through a cache valid for one
  // configuration generation: under a high connection rate most records open and close
  // between two collections, and building their labels was most of the agent's CPU.
  TcpSeries kernelSeries(const ConnEntry& c, const ConnEntry* peer, const DesiredDatapath& info,
                         const Snapshot& snapshot);
  std::unordered_map<std::string, TcpSeries> kernel_series_;  // by label inputs
  uint64_t kernel_series_generation_ = 0;

  // A tunnelled connection's four TCP series, resolved once when it opens: its bytes and its
  // close then cost no label work. Connections with the same label inputs (pods, identities,
  // service, path) share them through a cache valid for one configuration generation.
  TcpSeries tunnelSeries(const proxy::TunnelConn& c, const Snapshot* s);
  std::mutex tunnel_mu_;  // the proxy thread's connections
  std::unordered_map<uint64_t, TcpSeries> tunnel_conns_;      // by TunnelConn::id
  std::unordered_map<std::string, TcpSeries> tunnel_series_;  // by label inputs
  uint64_t series_generation_ = 0;

  // The request series of one label set, resolved once per configuration generation.
  struct RequestSeries {
    prometheus::Counter* requests;
    prometheus::Histogram *duration, *request_bytes, *response_bytes;
  };
  void request(const l7::RequestRecord& r, const Snapshot* s);
  std::mutex request_mu_;
  std::unordered_map<std::string, RequestSeries> request_series_;  // by label inputs
  std::string request_key_;  // request()'s lookup key, built in place
  uint64_t request_generation_ = 0;
};

}  // namespace meshlet
