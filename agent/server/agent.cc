#include "agent/server/agent.h"

#include <malloc.h>
#include <sys/stat.h>
#include <time.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "agent/common/log.h"
#include "agent/sources/file_source.h"

namespace fs = std::filesystem;

namespace meshlet {
namespace {

// How long after a sync the agent hands the heap's free pages back (run()).
constexpr auto kIdleTrimAfter = std::chrono::seconds(5);

int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

// A cheap fingerprint of the directory: names, sizes and modification times of its files.
std::string dirSignature(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> parts;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    struct stat st {};
    if (stat(e.path().c_str(), &st) != 0) continue;
    parts.push_back(e.path().filename().string() + ":" + std::to_string(st.st_size) + ":" +
                    std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) +
                    ":" + std::to_string(st.st_ino));
  }
  if (ec) return "error:" + ec.message();
  std::sort(parts.begin(), parts.end());
  std::string sig;
  for (const auto& p : parts) sig += p + "\n";
  return sig;
}

// Ids as the datapath already holds them (from a previous agent), so a restart keeps every
// service, backend and pod id: round-robin positions, stats and live connections stay right.
IdTable seedIds(const DesiredDatapath& fresh, const DesiredDatapath& kernel) {
  IdTable ids;
  std::map<std::string, uint32_t> kernel_svc;  // "ip/port/proto" -> kernel svc_id
  for (const auto& [k, v] : kernel.services) {
    auto ip = IpAddr::fromWords(k.addr, k.family);
    kernel_svc[ip.toString() + "/" + std::to_string(k.port) + "/" + std::to_string(k.proto)] =
        v.svc_id;
  }
  std::map<uint32_t, uint32_t> svc_map;  // fresh id -> kernel id
  for (const auto& [id, s] : fresh.service_info) {
    auto it = kernel_svc.find(s.cluster_ip.toString() + "/" + std::to_string(s.port) + "/" +
                              std::to_string(static_cast<int>(s.protocol)));
    if (it == kernel_svc.end()) continue;
    svc_map[id] = it->second;
    ids.svc[serviceIdKey(s.ns, s.name, s.cluster_ip, s.port, s.protocol)] = it->second;
  }
  // backend id key (kernel svc id) -> backend id
  const BackendEntries kernel_backends = kernel.backends();
  std::vector<std::pair<BackendIdKey, uint32_t>> kernel_be;
  for (const auto& [k, v] : kernel_backends) {
    kernel_be.emplace_back(backendIdKey(k.svc_id, IpAddr::fromWords(v.addr, v.family), v.port),
                           v.backend_id);
  }
  FlatMap<BackendIdKey, uint32_t> kernel_ids(std::move(kernel_be));
  std::vector<std::pair<BackendIdKey, uint32_t>> seeded;
  for (const auto& [id, b] : fresh.backend_info) {
    auto s = svc_map.find(b.svc_id);
    if (s == svc_map.end()) continue;
    auto it = kernel_ids.find(backendIdKey(s->second, b.addr, b.port));
    if (it != kernel_ids.end()) seeded.emplace_back(it->first, it->second);
  }
  ids.backend = FlatMap<BackendIdKey, uint32_t>(std::move(seeded));
  for (const auto& [k, v] : kernel_backends) {  // the kernel's slots keep their backends
    if (v.backend_id >= MESHLET_MAX_BACKENDS) continue;
    if (v.backend_id >= ids.slot.size()) ids.slot.resize(v.backend_id + 1, MESHLET_NO_ID);
    ids.slot[v.backend_id] = k.slot;
  }
  for (const auto& [id, p] : fresh.pod_info) {
    auto it = kernel.pods.find(p.netns_cookie);
    if (p.netns_cookie != 0 && it != kernel.pods.end()) {
      ids.pod[podIdKey(p.ns, p.name)] = it->second.pod_id;
    }
  }
  return ids;
}

// The service and backend ids and the backends' slots of an applied state, read back from its
// explanations: every service port and every backend that got an id is explained
// (service_info, backend_info, with its slot), so these are exactly the tables translate()
// returned with it (and reslotServices() kept up to date). Rebuilt for each sync rather than
// kept beside the explanations at idle (10 000 services / 100 000 backends: about 4.5 MB).
void restoreKeyedIds(const DesiredDatapath& d, IdTable& ids) {
  std::vector<std::pair<std::string, uint32_t>> svc;
  svc.reserve(d.service_info.size());
  for (const auto& [id, s] : d.service_info) {
    svc.emplace_back(serviceIdKey(s.ns, s.name, s.cluster_ip, s.port, s.protocol), id);
  }
  std::sort(svc.begin(), svc.end());
  ids.svc = std::map<std::string, uint32_t>(std::make_move_iterator(svc.begin()),
                                            std::make_move_iterator(svc.end()));
  std::vector<std::pair<BackendIdKey, uint32_t>> backends;
  backends.reserve(d.backend_info.size());
  for (const auto& [id, b] : d.backend_info) {
    backends.emplace_back(backendIdKey(b.svc_id, b.addr, b.port), id);
  }
  ids.backend = FlatMap<BackendIdKey, uint32_t>(std::move(backends));
  ids.slot.assign(d.backend_info.size(), MESHLET_NO_ID);
  for (const auto& [id, b] : d.backend_info) {
    if (b.slot == MESHLET_NO_ID) continue;
    if (id >= ids.slot.size()) ids.slot.resize(id + 1, MESHLET_NO_ID);
    ids.slot[id] = b.slot;
  }
}

void dropKeyedIds(IdTable& ids) {
  ids.svc = {};
  ids.backend = {};
  ids.slot = std::vector<uint32_t>();  // its memory too
}

}  // namespace

Agent::Agent(AgentFlags flags) : flags_(std::move(flags)) {}
Agent::~Agent() = default;

Status Agent::setUp() {
  if (flags_.cgroup.empty()) {
    auto root = detectCgroup2Root();
    if (!root.ok()) return root.error();
    flags_.cgroup = *root;
  }
  status_.node_name = flags_.node_name;
  status_.config_dir = flags_.config_dir;
  status_.source = flags_.config_dir.empty() ? "kube" : "file";
  status_.cgroup = flags_.cgroup;
  status_.bpffs = flags_.bpffs;
  status_.started_unix = nowUnix();
  if (flags_.config_dir.empty()) {
    // The Kubernetes source: a bad kubeconfig stops the agent before it touches the kernel.
    auto cfg = flags_.kubeconfig.empty() ? inClusterConfig() : loadKubeconfig(flags_.kubeconfig);
    if (!cfg.ok()) return cfg.error();
    kube_ = std::make_unique<KubeSource>(std::move(*cfg));
    status_.kube = kube_->status();
  }

  DatapathOptions opts;
  opts.bpffs_dir = flags_.bpffs;
  opts.cgroup_path = flags_.cgroup;
  auto dp = Datapath::open(opts);
  if (!dp.ok()) return dp.error();
  dp_ = std::move(*dp);
  status_.adopted = dp_->adopted();
  logInfo(std::string(dp_->adopted() ? "adopted the pinned datapath" : "attached the datapath") +
          " at cgroup " + flags_.cgroup + ", pins under " + flags_.bpffs);

  if (auto st = startProxy(); !st) return st;

  metrics_.setTrustDomain(flags_.trust_domain);
  if (auto st = metrics_.serve(flags_.metrics_addr); !st) return st;
  status_.metrics_port = metrics_.port();
  logInfo("metrics on " + flags_.metrics_addr + " (port " + std::to_string(metrics_.port()) + ")");

  admin_ = std::make_unique<AdminServer>([this](const AdminRequest& r) { return handle(r); });
  if (auto st = admin_->start(flags_.admin_socket); !st) return st;
  logInfo("admin API on " + flags_.admin_socket);

  health_ = std::make_unique<HealthServer>();
  if (auto st = health_->start(flags_.readiness_addr); !st) return st;
  health_->setNotReady("no configuration applied yet");
  logInfo("readiness on " + flags_.readiness_addr + " (port " + std::to_string(health_->port()) +
          ")");

  cni_ = CniStore(flags_.state_dir + "/cni-pods.json");
  restoreCniPods();
  cni_server_ = std::make_unique<CniServer>(
      [this](const cni::Request& r, int fd) { return submitCni(r, fd); });
  if (auto st = cni_server_->start(flags_.cni_socket); !st) return st;
  logInfo("CNI enrollment on " + flags_.cni_socket);
  if (kube_) {
    if (auto st = kube_->start(); !st) return st;
  }
  return Status::Ok();
}

void Agent::recordError(const std::string& message) {
  status_.config_ok = false;
  status_.last_error = message;
  status_.last_error_time = nowRfc3339();
  if (health_ && status_.generation == 0) health_->setNotReady(message);
  logError(message);
}

void Agent::resolveCookies(const Snapshot& s, bool retry_failed) {
  for (const auto& pod : s.pods) {
    if (pod.node_name != flags_.node_name || pod.netns.empty() || !podEnrolled(s, pod)) continue;
    std::string key = pod.meta.ns + "/" + pod.meta.name;
    if (pod.enrolled_by == "cni") continue;  // the cookie came with the CNI call
    struct stat st {};
    std::string src =
        stat(pod.netns.c_str(), &st) == 0
            ? pod.netns + ":" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)
            : pod.netns + ":missing";
    bool known = cookie_src_.count(key) && cookie_src_[key] == src;
    if (known && (cookies_.count(key) || !retry_failed)) continue;
    cookie_src_[key] = src;
    auto cookie = netnsCookie(pod.netns);
    if (cookie.ok()) {
      cookies_[key] = *cookie;
      if (cookie_err_.erase(key)) logInfo("pod " + key + ": network namespace is back");
    } else {
      cookies_.erase(key);
      std::string msg = "pod " + key + ": " + cookie.error().message() +
                        " (the pod is not enrolled until its netns exists)";
      if (cookie_err_[key] != msg) logWarn(msg);
      cookie_err_[key] = msg;
    }
  }
  // Forget pods that left (CNI pods stay until DEL or until their netns is gone).
  for (auto it = cookies_.begin(); it != cookies_.end();) {
    bool present = cni_.pods().count(it->first) > 0;
    for (const auto& pod : s.pods) present |= pod.meta.ns + "/" + pod.meta.name == it->first;
    it = present ? std::next(it) : cookies_.erase(it);
  }
}

Status Agent::applySnapshot(SnapshotPtr snap, bool seed_ids) {
  auto t0 = std::chrono::steady_clock::now();
  TranslateInput in;
  in.snapshot = snap.get();
  in.node_name = flags_.node_name;
  in.trust_domain = flags_.trust_domain;
  in.netns_cookies = cookies_;
  in.ejected = &outliers_.ejected();
  // ids_ keeps no service or backend ids between syncs (restoreKeyedIds).
  if (desired_) restoreKeyedIds(*desired_, ids_);
  struct DropKeyedIds {
    IdTable& ids;
    ~DropKeyedIds() { dropKeyedIds(ids); }
  } drop_keyed_ids{ids_};
  TranslateOutput out = translate(in, ids_);
  if (seed_ids && dp_->adopted()) {
    const DesiredDatapath& kernel = dp_->applied();
    ids_ = seedIds(out.desired, kernel);
    out = translate(in, ids_);
  }
  auto desired = std::make_shared<const DesiredDatapath>(std::move(out.desired));
  auto t1 = std::chrono::steady_clock::now();
  if (auto st = dp_->apply(desired); !st) {
    metrics_.mapUpdateError(dp_->lastFailedMap().empty() ? "unknown" : dp_->lastFailedMap());
    return st;
  }
  ids_ = std::move(out.ids);
  desired_ = std::move(desired);
  outliers_.configure(*desired_, steadyMs());
  auto t2 = std::chrono::steady_clock::now();
  good_ = std::move(snap);
  auto msBetween = [](auto a, auto b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  double ms = msBetween(t0, std::chrono::steady_clock::now());
  status_.last_sync_ms = ms;
  status_.last_sync_translate_ms = msBetween(t0, t1);
  status_.last_sync_maps_ms = msBetween(t1, t2);
  status_.generation++;
  last_sync_end_ = std::chrono::steady_clock::now();
  trimmed_since_sync_ = false;
  if (health_) health_->setReady();
  metrics_.setConfig(status_.generation, true, ms / 1000.0);
  return Status::Ok();
}

void Agent::pollConfig() {
  // The kube source's watch threads keep its store current; taking a snapshot never waits on
  // the network (null: nothing changed, or the first full list is not done yet).
  std::shared_ptr<const Snapshot> kube_snap;
  std::string sig;
  bool changed;
  if (kube_) {
    status_.kube = kube_->status();
    kube_snap = kube_->take();
    changed = kube_snap != nullptr;
  } else {
    sig = dirSignature(flags_.config_dir);
    changed = sig != config_signature_;
  }
  if (changed) {
    std::shared_ptr<const Snapshot> file;
    if (kube_) {
      // Duplicates cannot happen (the store is keyed by name; clashing cluster IPs were left
      // out), but the same checks as the file source guard the datapath. A rejected snapshot
      // does not freeze the state: the next change brings a new one.
      if (auto st = validateSnapshot(*kube_snap); !st) {
        recordError("cluster state rejected, the last good state stays in force: " +
                    st.error().message());
        metrics_.configRejected();
        return;
      }
      file = std::move(kube_snap);
    } else {
      config_signature_ = sig;
      auto loaded = loadDirectory(flags_.config_dir, /*synthesize=*/false);
      if (!loaded.ok()) {
        recordError("configuration rejected, the last good state stays in force: " +
                    loaded.error().message());
        metrics_.configRejected();
        return;
      }
      file = std::make_shared<const Snapshot>(std::move(*loaded));
    }
    SnapshotPtr snap = buildSnapshot(*file);
    resolveCookies(*snap, true);
    bool first = good_ == nullptr;
    if (auto st = applySnapshot(snap, first); !st) {
      recordError("configuration not applied, the last good state stays in force: " +
                  st.error().message());
      metrics_.configRejected();
      return;
    }
    file_good_ = std::move(file);
    status_.config_ok = true;
    logInfo("configuration generation " + std::to_string(status_.generation) +
            " applied: " + std::to_string(desired_->service_info.size()) + " service ports, " +
            std::to_string(desired_->pod_info.size()) + " enrolled pods, in " +
            std::to_string(status_.last_sync_ms) + " ms (translation " +
            std::to_string(status_.last_sync_translate_ms) + " ms, maps " +
            std::to_string(status_.last_sync_maps_ms) + " ms)");
    return;
  }
  // Same files: pods whose netns appeared, vanished or was recreated need a new cookie.
  if (good_) {
    auto before = cookies_;
    resolveCookies(*good_, false);
    if (before != cookies_) {
      if (auto st = applySnapshot(good_, false); !st) {
        recordError("pod change not applied: " + st.error().message());
      }
    }
  }
}

void Agent::updateOutliers(const std::vector<ConnEntry>* conns) {
  const int64_t now = steadyMs();
  if (conns) {
    for (const ConnOutcome& o : connOutcomes(*conns, *desired_, outlier_seen_)) {
      outliers_.record(o.svc_id, o.backend_id, o.failed, now);
    }
  }
  outliers_.tick(now);
  for (const std::string& line : outliers_.takeLog()) logInfo(line);
  std::set<uint32_t> changed = outliers_.takeChanged();
  if (!changed.empty()) {
    // Only these services' slots change: a copy of the state in force, re-slotted, diff-applied
    // (the datapath writes the few entries that differ).
    // The slots live in the backends' explanations; ids_ keeps none between syncs
    // (restoreKeyedIds), so the re-slotting needs no table of them.
    auto next = std::make_shared<DesiredDatapath>(*desired_);
    IdTable no_slots;
    reslotServices(*next, no_slots, changed, outliers_.ejected());
    if (auto st = dp_->apply(std::shared_ptr<const DesiredDatapath>(next)); !st) {
      metrics_.mapUpdateError(dp_->lastFailedMap().empty() ? "unknown" : dp_->lastFailedMap());
      logError("outlier detection: the new slots were not applied: " + st.error().message());
      outliers_.retry(changed);  // the next turn tries again
    } else {
      desired_ = std::move(next);
    }
  }
  auto view = std::make_shared<std::map<uint32_t, OutlierView>>();
  for (const OutlierBackendState& st : outliers_.states()) {
    if (st.ejected_until_ms == 0 && st.ejections == 0 && st.consecutive_errors == 0) continue;
    OutlierView& v = (*view)[st.backend_id];
    v.ejections = st.ejections;
    v.consecutive_errors = st.consecutive_errors;
    if (st.ejected_until_ms != 0) {
      v.ejected_until_unix_ms = nowUnixMs() + (st.ejected_until_ms - now);
    }
  }
  outlier_view_ = std::move(view);
  metrics_.setOutliers(*desired_, outliers_.ejectionsTotal(), outliers_.ejected());
}

void Agent::publish() {
  auto v = std::make_shared<AgentView>();
  v->snapshot = good_;
  v->desired = desired_;
  v->status = status_;
  v->maps = dp_->mapUsage();
  v->spliced_connections = dp_->globalCounters()[MESHLET_G_SPLICED];
  v->identity = identity_view_;
  if (proxy_) v->proxy = std::make_shared<proxy::ProxyReport>(proxy_->report());
  v->l7 = l7_;
  v->outliers = outlier_view_;
  metrics_.setMaps(v->maps);
  std::lock_guard<std::mutex> lock(view_mu_);
  view_ = std::move(v);
}

AdminResponse Agent::handle(const AdminRequest& req) {
  std::shared_ptr<const AgentView> v;
  {
    std::lock_guard<std::mutex> lock(view_mu_);
    v = view_;
  }
  if (!v) return {503, Json{{"error", "the agent is starting"}}.dump()};
  if (req.path == "/v1/status") return {200, statusJson(*v, nowUnix()).dump()};
  if (req.path == "/v1/workloads") return {200, workloadsJson(*v).dump()};
  if (req.path == "/v1/services") return {200, servicesJson(*v).dump()};
  if (req.path == "/v1/endpoints") {
    auto it = req.query.find("service");
    std::string filter = it == req.query.end() ? "" : it->second;
    if (!filter.empty() && filter.find('/') == std::string::npos) filter = "default/" + filter;
    Json out = endpointsJson(*v, filter, nowUnixMs());
    if (!filter.empty() && out.empty()) {
      bool exists = false;
      if (v->desired) {
        for (const auto& [id, s] : v->desired->service_info)
          exists |= s.ns + "/" + s.name == filter;
      }
      if (!exists) return {404, Json{{"error", "no service " + filter}}.dump()};
    }
    return {200, out.dump()};
  }
  if (req.path == "/v1/certs") return {200, certsJson(*v, nowUnix()).dump()};
  if (req.path == "/v1/policies") return {200, policiesJson(*v).dump()};
  if (req.path == "/v1/routes" || req.path == "/v1/routes/explain") {
    auto [code, body] = routesAnswer(*v, req.path, req.query);
    return {code, body.dump()};
  }
  if (req.path == "/v1/connections") {
    auto conns = dp_->readConns();
    if (!conns.ok()) return {500, Json{{"error", conns.error().message()}}.dump()};
    return {200, connectionsJson(*v, *conns, monotonicNs(), nowUnix()).dump()};
  }
  return {404, Json{{"error", "unknown path " + req.path +
                                  " (try /v1/status, /v1/workloads, /v1/services, "
                                  "/v1/endpoints, /v1/connections, /v1/certs, /v1/policies, "
                                  "/v1/routes)"}}
                   .dump()};
}

int Agent::run() {
  if (auto st = setUp(); !st) {
    logError(st.error().message());
    return 1;
  }
  dp_->refreshKernelCounts();
  reconcileIdentities();
  publish();
  auto next_collect = std::chrono::steady_clock::now();
  while (!stop_) {
    pollConfig();
    auto now = std::chrono::steady_clock::now();
    if (now >= next_collect) {
      if (desired_ && good_) {
        auto conns = dp_->readConns();
        // Outcomes first: collecting the metrics deletes the closed entries.
        if (conns.ok()) updateOutliers(&*conns);
        if (conns.ok()) metrics_.collect(*dp_, *conns, *desired_, *good_);
        if (++collections_ % 5 == 1) metrics_.setKernelCounters(*dp_, *desired_, *good_);
      }
      // Walking the kernel-written maps costs a syscall per entry: once a second, not per
      // loop turn (publish() runs every 200 ms and after each CNI request).
      dp_->refreshKernelCounts();
      reconcileIdentities();
      next_collect = now + std::chrono::seconds(1);
    }
    // The heap keeps the pages a sync freed (main.cc), so back-to-back syncs reuse them. Once
    // the configuration has been quiet for a while, they go back to the kernel: an idle agent
    // holds only what its state needs (the next sync faults its tables in again).
    if (!trimmed_since_sync_ && now - last_sync_end_ >= kIdleTrimAfter) {
      malloc_trim(0);
      trimmed_since_sync_ = true;
    }
    if (desired_) updateOutliers(nullptr);  // ejections end on time, not once a second
    reconcileCniPods();
    updateProxy();
    publish();
    // Sleep up to 200 ms, waking at once for a CNI request.
    for (int i = 0; i < 4 && !stop_; ++i) {
      {
        std::unique_lock<std::mutex> lock(cni_mu_);
        cni_cv_.wait_for(lock, std::chrono::milliseconds(50),
                         [this] { return !cni_queue_.empty() || stop_; });
      }
      drainCni();
    }
  }
  drainCni();
  if (kube_) kube_->stop();
  proxy_.reset();  // in-pod listeners close: new tunnel-path connects are refused until restart
  logInfo("stopping; the datapath stays attached and pinned under " + flags_.bpffs);
  health_->setNotReady("the agent is stopping");
  health_->stop();
  cni_server_->stop();
  admin_->stop();
  return 0;
}

}  // namespace meshlet
