#pragma once
// Outlier detection for L4 services (DestinationRule trafficPolicy.outlierDetection on a port
// that stays on the kernel path): the kernel records each balanced connect that never
// established (refused, reset during the handshake, timed out) in meshlet_conns_v1; the agent
// turns those records into per-backend outcomes, this state machine decides ejections, and
// translation leaves ejected backends out of their service's slots as it does not-ready ones.
//
// Pure: no kernel, no clock (callers pass steady milliseconds), so the rules are unit-tested.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/datapath/datapath.h"
#include "agent/state/istio.h"
#include "agent/translate/translate.h"

namespace meshlet {

// outlierDetection with Istio's defaults filled in.
struct OutlierPolicy {
  int consecutive_5xx = 5;      // 0: off
  int consecutive_gateway = 0;  // 0: off
  int64_t interval_ms = 10000;
  int64_t base_ejection_ms = 30000;
  int max_ejection_percent = 10;
  int min_health_percent = 0;
  // Envoy's max_ejection_time default (Istio does not expose it): the longest an ejection
  // lasts however often the backend was ejected (never below base_ejection_ms).
  static constexpr int64_t kMaxEjectionMs = 300000;
};
OutlierPolicy outlierPolicy(const OutlierDetection& od);

// One backend's state, as the CLI shows it.
struct OutlierBackendState {
  uint32_t svc_id = 0;
  uint32_t backend_id = 0;
  int consecutive_errors = 0;    // connect failures since the last success or ejection
  int ejections = 0;             // the multiplier of the next ejection time minus one
  int64_t ejected_until_ms = 0;  // steady ms; > now while ejected
};

class OutlierTracker {
 public:
  // The services that have outlier detection (DesiredDatapath::outlier) and their backends:
  // state of backends that are gone (or whose id now names another address) is dropped.
  // Call after every translation.
  void configure(const DesiredDatapath& d, int64_t now_ms);

  // The outcome of one connect to a backend (failed: never established). Ignored for
  // services without outlier detection and for backends ejected now (connects started before
  // the ejection). May eject the backend.
  void record(uint32_t svc_id, uint32_t backend_id, bool failed, int64_t now_ms);

  // Ends ejections whose time is up; a backend back in service for a whole interval without
  // being ejected again has its ejection count lowered by one (Envoy's back-off decay).
  void tick(int64_t now_ms);

  // Backends to leave out of their service's slots now: ejected, unless the service's share
  // of non-ejected ready backends is below minHealthPercent (then none is left out).
  const std::set<BackendIdKey>& ejected() const { return effective_; }
  // Services whose set of ejected backends changed since the last call (and clears it).
  std::set<uint32_t> takeChanged();
  // Reports these services as changed again (their new slots could not be written).
  void retry(const std::set<uint32_t>& svc_ids) { changed_.insert(svc_ids.begin(), svc_ids.end()); }

  // Ejections so far per service (counter), and what every tracked backend looks like.
  const std::map<uint32_t, uint64_t>& ejectionsTotal() const { return ejections_total_; }
  std::vector<OutlierBackendState> states() const;
  // Lines worth logging since the last call (ejections and returns).
  std::vector<std::string> takeLog();

 private:
  struct Backend {
    BackendIdKey key;
    bool ready = false;
    int consecutive_5xx = 0;
    int consecutive_gateway = 0;
    int ejections = 0;
    int64_t ejected_until_ms = 0;
    int64_t decay_from_ms = 0;  // when the ejection count last went up or down
    std::string name;           // "ip:port", for logs
  };
  struct Service {
    OutlierPolicy policy;
    std::string name;                      // "ns/name:port", for logs
    std::map<uint32_t, Backend> backends;  // by backend id
  };
  void recompute();

  std::map<uint32_t, Service> services_;  // by svc id; only services with outlier detection
  std::set<BackendIdKey> effective_;
  std::set<uint32_t> changed_;
  std::map<uint32_t, uint64_t> ejections_total_;
  std::vector<std::string> log_;
};

// The outcomes the kernel recorded since the last pass, oldest first: each connect of a
// service with outlier detection counts once (a failure when its record says FAILED, a success
// when an established connection first appears). `seen` carries the established connections
// already counted from one pass to the next.
struct ConnOutcome {
  uint32_t svc_id = 0;
  uint32_t backend_id = 0;
  bool failed = false;
  uint64_t at_ns = 0;  // CLOCK_MONOTONIC
};
using SeenConns = std::map<meshlet_sock_key, uint64_t, BytesLess<meshlet_sock_key>>;
std::vector<ConnOutcome> connOutcomes(const std::vector<ConnEntry>& conns, const DesiredDatapath& d,
                                      SeenConns& seen);

}  // namespace meshlet
