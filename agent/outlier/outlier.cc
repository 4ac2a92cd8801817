#include "agent/outlier/outlier.h"

#include <algorithm>

namespace meshlet {

OutlierPolicy outlierPolicy(const OutlierDetection& od) {
  OutlierPolicy p;
  p.consecutive_5xx = od.consecutive_5xx_errors.value_or(p.consecutive_5xx);
  p.consecutive_gateway = od.consecutive_gateway_errors.value_or(p.consecutive_gateway);
  p.interval_ms = od.interval_ms.value_or(p.interval_ms);
  p.base_ejection_ms = od.base_ejection_time_ms.value_or(p.base_ejection_ms);
  p.max_ejection_percent = od.max_ejection_percent.value_or(p.max_ejection_percent);
  p.min_health_percent = od.min_health_percent.value_or(p.min_health_percent);
  return p;
}

namespace {

std::string endpointName(const BackendIdKey& k) {
  return k.addr.isV4() ? k.addr.toString() + ":" + std::to_string(k.port)
                       : "[" + k.addr.toString() + "]:" + std::to_string(k.port);
}

}  // namespace

void OutlierTracker::configure(const DesiredDatapath& d, int64_t now_ms) {
  std::map<uint32_t, Service> next;
  for (const auto& [svc_id, od] : d.outlier) {
    Service s;
    s.policy = outlierPolicy(od);
    auto info = d.service_info.find(svc_id);
    if (info != d.service_info.end()) {
      const ServiceInfo& si = info->second;
      s.name = si.ns.str() + "/" + si.name.str() + ":" + std::to_string(si.port) + " (" +
               si.cluster_ip.toString() + ")";
    }
    next.emplace(svc_id, std::move(s));
  }
  for (const auto& [id, bi] : d.backend_info) {
    auto sit = next.find(bi.svc_id);
    if (sit == next.end()) continue;
    Backend b;
    b.key = backendIdKey(bi.svc_id, bi.addr, bi.port);
    b.ready = bi.ready;
    b.name = endpointName(b.key);
    b.decay_from_ms = now_ms;
    // The same service (by name) and the same backend keep their counts and ejection.
    auto old_svc = services_.find(bi.svc_id);
    if (old_svc != services_.end() && old_svc->second.name == sit->second.name) {
      auto old = old_svc->second.backends.find(id);
      if (old != old_svc->second.backends.end() && old->second.key == b.key) {
        const bool ready = b.ready;
        b = old->second;
        b.ready = ready;
      }
    }
    sit->second.backends.emplace(id, std::move(b));
  }
  services_ = std::move(next);
  recompute();
}

void OutlierTracker::record(uint32_t svc_id, uint32_t backend_id, bool failed, int64_t now_ms) {
  auto sit = services_.find(svc_id);
  if (sit == services_.end()) return;
  Service& s = sit->second;
  auto bit = s.backends.find(backend_id);
  if (bit == s.backends.end()) return;
  Backend& b = bit->second;
  if (b.ejected_until_ms != 0) return;  // a connect that started before the ejection
  if (!failed) {
    b.consecutive_5xx = b.consecutive_gateway = 0;
    return;
  }
  // For TCP a connect failure is both a 5xx and a gateway error (Envoy maps a local-origin
  // connect failure to 503 when split_external_local_origin_errors is off, Istio's setting).
  ++b.consecutive_5xx;
  ++b.consecutive_gateway;
  const OutlierPolicy& p = s.policy;
  const bool trip = (p.consecutive_5xx > 0 && b.consecutive_5xx >= p.consecutive_5xx) ||
                    (p.consecutive_gateway > 0 && b.consecutive_gateway >= p.consecutive_gateway);
  if (!trip) return;
  b.consecutive_5xx = b.consecutive_gateway = 0;
  if (!b.ready) return;  // it has no slot anyway
  size_t ready = 0, out = 0;
  for (const auto& [id, other] : s.backends) {
    if (!other.ready) continue;
    ++ready;
    if (other.ejected_until_ms != 0) ++out;
  }
  // Never the last ready backend; and at most maxEjectionPercent of them out at once, this one
  // included (Envoy's rule since 1.24: (ejected + 1) / hosts <= max).
  if (out + 1 >= ready) {
    log_.push_back("outlier detection: " + b.name + " of " + s.name +
                   " keeps taking connections: it is the last ready backend not ejected");
    return;
  }
  if (100 * (out + 1) > static_cast<size_t>(p.max_ejection_percent) * ready) {
    log_.push_back("outlier detection: " + b.name + " of " + s.name +
                   " not ejected: maxEjectionPercent " + std::to_string(p.max_ejection_percent) +
                   " allows no more of its " + std::to_string(ready) + " ready backends out");
    return;
  }
  ++b.ejections;
  const int64_t cap = std::max(OutlierPolicy::kMaxEjectionMs, p.base_ejection_ms);
  const int64_t ms = std::min(cap, p.base_ejection_ms * b.ejections);
  b.ejected_until_ms = now_ms + ms;
  b.decay_from_ms = now_ms;
  ++ejections_total_[svc_id];
  log_.push_back("outlier detection ejected " + b.name + " from " + s.name + " for " +
                 std::to_string(ms) + " ms (ejection " + std::to_string(b.ejections) + ")");
  recompute();
}

void OutlierTracker::tick(int64_t now_ms) {
  bool changed = false;
  for (auto& [svc_id, s] : services_) {
    for (auto& [id, b] : s.backends) {
      if (b.ejected_until_ms != 0) {
        if (b.ejected_until_ms > now_ms) continue;
        b.ejected_until_ms = 0;
        b.decay_from_ms = now_ms;
        b.consecutive_5xx = b.consecutive_gateway = 0;
        changed = true;
        log_.push_back("outlier detection: " + b.name + " of " + s.name + " is back");
      } else if (b.ejections > 0 && now_ms - b.decay_from_ms >= s.policy.interval_ms) {
        --b.ejections;
        b.decay_from_ms = now_ms;
      }
    }
  }
  if (changed) recompute();
}

void OutlierTracker::recompute() {
  std::set<BackendIdKey> next;
  std::set<uint32_t> svcs_before;
  for (const BackendIdKey& k : effective_) svcs_before.insert(k.svc_id);
  for (const auto& [svc_id, s] : services_) {
    size_t ready = 0, healthy = 0;
    std::vector<BackendIdKey> out;
    for (const auto& [id, b] : s.backends) {
      if (b.ejected_until_ms != 0) out.push_back(b.key);
      if (!b.ready) continue;
      ++ready;
      if (b.ejected_until_ms == 0) ++healthy;
    }
    // minHealthPercent: below it outlier detection stands aside and every backend takes
    // traffic (Istio's default 0 never does).
    if (s.policy.min_health_percent > 0 &&
        100 * healthy < static_cast<size_t>(s.policy.min_health_percent) * ready) {
      continue;
    }
    next.insert(out.begin(), out.end());
  }
  // Services whose subset differs.
  std::set<uint32_t> touched = svcs_before;
  for (const BackendIdKey& k : next) touched.insert(k.svc_id);
  for (uint32_t svc_id : touched) {
    auto a = effective_.lower_bound(BackendIdKey{svc_id, IpAddr{IpFamily::kV4, {}}, 0});
    auto b = next.lower_bound(BackendIdKey{svc_id, IpAddr{IpFamily::kV4, {}}, 0});
    for (;;) {
      const bool a_end = a == effective_.end() || a->svc_id != svc_id;
      const bool b_end = b == next.end() || b->svc_id != svc_id;
      if (a_end || b_end) {
        if (a_end != b_end) changed_.insert(svc_id);
        break;
      }
      if (!(*a == *b)) {
        changed_.insert(svc_id);
        break;
      }
      ++a;
      ++b;
    }
  }
  effective_ = std::move(next);
}

std::set<uint32_t> OutlierTracker::takeChanged() {
  std::set<uint32_t> out;
  out.swap(changed_);
  return out;
}

std::vector<std::string> OutlierTracker::takeLog() {
  std::vector<std::string> out;
  out.swap(log_);
  return out;
}

std::vector<OutlierBackendState> OutlierTracker::states() const {
  std::vector<OutlierBackendState> out;
  for (const auto& [svc_id, s] : services_) {
    for (const auto& [id, b] : s.backends) {
      OutlierBackendState st;
      st.svc_id = svc_id;
      st.backend_id = id;
      st.consecutive_errors = std::max(b.consecutive_5xx, b.consecutive_gateway);
      st.ejections = b.ejections;
      st.ejected_until_ms = b.ejected_until_ms;
      out.push_back(st);
    }
  }
  return out;
}

std::vector<ConnOutcome> connOutcomes(const std::vector<ConnEntry>& conns, const DesiredDatapath& d,
                                      SeenConns& seen) {
  std::vector<ConnOutcome> out;
  SeenConns next;
  if (d.outlier.empty()) {
    seen.clear();
    return out;
  }
  for (const ConnEntry& c : conns) {
    const meshlet_conn_value& v = c.value;
    if (!(v.flags & MESHLET_CONN_ACTIVE) || (v.flags & MESHLET_CONN_DENIED)) continue;
    if (v.svc_id == MESHLET_NO_ID || v.backend_id == MESHLET_NO_ID) continue;
    if (v.path != MESHLET_PATH_BALANCED && v.path != MESHLET_PATH_SPLICED) continue;
    if (d.outlier.count(v.svc_id) == 0) continue;
    next.emplace(c.key, v.start_ns);
    auto it = seen.find(c.key);
    if (it != seen.end() && it->second == v.start_ns) continue;  // counted in an earlier pass
    const bool failed = (v.flags & MESHLET_CONN_FAILED) != 0;
    out.push_back(ConnOutcome{v.svc_id, v.backend_id, failed, failed ? v.end_ns : v.start_ns});
  }
  seen = std::move(next);
  std::stable_sort(out.begin(), out.end(),
                   [](const ConnOutcome& a, const ConnOutcome& b) { return a.at_ns < b.at_ns; });
  return out;
}

}  // namespace meshlet
