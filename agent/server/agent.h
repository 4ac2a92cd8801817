#pragma once
// The node agent: sources -> cluster state -> translation -> datapath, plus the admin API and
// metrics. One loop thread does the config and datapath work; the admin server and the
// metrics exposer have threads of their own and only read a published AgentView.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "agent/admin/cni_server.h"
#include "agent/admin/health_server.h"
#include "agent/admin/server.h"
#include "agent/admin/views.h"
#include "agent/config/flags.h"
#include "agent/datapath/datapath.h"
#include "agent/identity/workload_certs.h"
#include "agent/outlier/outlier.h"
#include "agent/proxy/mesh_proxy.h"
#include "agent/sources/cni_store.h"
#include "agent/sources/kube_source.h"
#include "agent/telemetry/access_log.h"
#include "agent/telemetry/metrics.h"
#include "agent/translate/translate.h"

namespace meshlet {

class Agent {
 public:
  explicit Agent(AgentFlags flags);
  ~Agent();

  // Sets everything up and runs until stop() (or SIGTERM/SIGINT via the caller). Returns the
  // process exit code.
  int run();
  void stop() { stop_ = true; }

 private:
  Status setUp();
  void pollConfig();
  void resolveCookies(const Snapshot& s, bool retry_failed);
  // The file snapshot merged with the CNI pods (and `extra`), endpoints synthesized.
  SnapshotPtr buildSnapshot(const Snapshot& file, const CniPod* extra = nullptr) const;
  Status applySnapshot(SnapshotPtr snap, bool seed_ids);
  // CNI: queue a request for the loop thread and wait for its answer (called by CniServer).
  cni::Response submitCni(const cni::Request& req, int netns_fd);
  void drainCni();
  cni::Response handleCni(const cni::Request& req, int netns_fd);
  cni::Response cniAdd(const cni::Request& req, int netns_fd);
  cni::Response cniDel(const cni::Request& req);
  cni::Response cniCheck(const cni::Request& req);
  void restoreCniPods();
  void reconcileCniPods();
  // Identity (agent_identity.cc): reload the CA when its files change, issue and renew the
  // SVIDs of this node's enrolled pods.
  void reconcileIdentities();
  // The mesh proxy (agent_proxy.cc): in-pod listeners and HBONE tunnels.
  Status startProxy();
  void updateProxy();
  void reconcileInboundCapture(const proxy::ProxyConfig& cfg);
  // L4 outlier detection: feeds the kernel's connect outcomes (`conns`, null: only expire
  // ejections) to the tracker and rewrites the slots of services whose ejections changed.
  void updateOutliers(const std::vector<ConnEntry>* conns);
  void publish();
  void recordError(const std::string& message);
  AdminResponse handle(const AdminRequest& req);

  AgentFlags flags_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<Datapath> dp_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<CniServer> cni_server_;
  std::unique_ptr<HealthServer> health_;  // readiness: ready once a generation is applied
  Metrics metrics_;
  std::unique_ptr<AccessLog> access_log_;

  // Loop-thread state.
  std::string config_signature_;
  std::unique_ptr<KubeSource> kube_;  // the source when --kubeconfig / in-cluster, else null
  std::shared_ptr<const Snapshot> file_good_;  // last good source snapshot (unmerged)
  SnapshotPtr good_;  // last good snapshot as applied (file + CNI pods)
  CniStore cni_;
  std::shared_ptr<const DesiredDatapath> desired_;
  IdTable ids_;
  std::map<std::string, uint64_t> cookies_;       // "ns/name" -> netns cookie
  std::map<std::string, std::string> cookie_src_; // "ns/name" -> "path:inode" it was read from
  std::map<std::string, std::string> cookie_err_; // "ns/name" -> last error logged
  AgentStatusInfo status_;
  uint64_t collections_ = 0;  // metrics passes; per-service kernel counters every 5th
  // When the last sync ended, and whether the heap was trimmed since (see run()).
  std::chrono::steady_clock::time_point last_sync_end_{};
  bool trimmed_since_sync_ = true;
  std::unique_ptr<WorkloadCerts> certs_;
  std::string ca_logged_;                              // last CA message logged
  std::map<std::string, std::string> issue_errors_;    // SPIFFE id -> last issuance error
  std::shared_ptr<const IdentityView> identity_view_;  // rebuilt by reconcileIdentities
  std::unique_ptr<proxy::MeshProxy> proxy_;
  const void* proxy_inputs_[3] = {};  // desired_, good_, identity_view_ last sent to the proxy
  std::set<std::string> l7_warned_;   // L7 configuration warnings already logged
  std::shared_ptr<const l7::L7Config> l7_;  // the routes last handed to the proxy (for the view)
  std::map<std::string, std::string> inbound_errors_;  // pod -> last sk_lookup attach error
  OutlierTracker outliers_;
  SeenConns outlier_seen_;  // established connections already counted as successes
  std::shared_ptr<const std::map<uint32_t, OutlierView>> outlier_view_;  // for publish()

  // Published for the admin thread.
  std::mutex view_mu_;
  std::shared_ptr<const AgentView> view_;

  // CNI requests waiting for the loop thread.
  struct PendingCni {
    const cni::Request* req;
    int netns_fd;
    cni::Response resp;
    bool done = false;
  };
  std::mutex cni_mu_;
  std::condition_variable cni_cv_;
  std::deque<PendingCni*> cni_queue_;
};

}  // namespace meshlet
