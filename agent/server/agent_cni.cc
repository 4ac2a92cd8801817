// The agent's CNI source: ADD/DEL/CHECK from meshlet-cni, handled on the loop thread so the
// pod is in the datapath maps before the plugin answers (and the pod starts).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/common/log.h"
#include "agent/server/agent.h"
#include "agent/sources/file_source.h"

namespace meshlet {
namespace {

cni::Response answer(cni::Response::Status status, const std::string& message,
                     uint64_t cookie = 0) {
  cni::Response r;
  r.set_status(status);
  r.set_message(message);
  r.set_netns_cookie(cookie);
  return r;
}

std::string podName(const cni::PodIdentity& p) { return p.pod_namespace() + "/" + p.pod_name(); }

}  // namespace

SnapshotPtr Agent::buildSnapshot(const Snapshot& file, const CniPod* extra) const {
  auto pods = cni_.pods();
  if (extra) pods[extra->ns + "/" + extra->name] = *extra;
  auto s = std::make_shared<Snapshot>(mergeCniPods(file, pods, flags_.node_name));
  // With the API server, the EndpointSlice controller writes every Service's endpoints.
  if (!kube_) synthesizeEndpointSlices(*s);
  s->generation = status_.generation + 1;
  return s;
}

cni::Response Agent::submitCni(const cni::Request& req, int netns_fd) {
  PendingCni p{&req, netns_fd, {}, false};
  std::unique_lock<std::mutex> lock(cni_mu_);
  cni_queue_.push_back(&p);
  cni_cv_.notify_all();
  if (!cni_cv_.wait_for(lock, std::chrono::seconds(8), [&] { return p.done; })) {
    // Still queued: take it back, so the loop never touches a request that is gone.
    for (auto it = cni_queue_.begin(); it != cni_queue_.end(); ++it) {
      if (*it == &p) {
        cni_queue_.erase(it);
        return answer(cni::Response::FAILED, "the agent is busy; try again");
      }
    }
    // The loop has it in hand: wait for its answer.
    cni_cv_.wait(lock, [&] { return p.done; });
  }
  return p.resp;
}

void Agent::drainCni() {
  for (bool handled = false;; handled = true) {
    PendingCni* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(cni_mu_);
      if (cni_queue_.empty()) {
        if (handled) publish();  // the CLI sees the pod as soon as the plugin hears back
        return;
      }
      p = cni_queue_.front();
      cni_queue_.pop_front();
    }
    // Once taken off the queue the requester waits for done, so *p stays alive.
    cni::Response r = handleCni(*p->req, p->netns_fd);
    std::lock_guard<std::mutex> lock(cni_mu_);
    p->resp = std::move(r);
    p->done = true;
    cni_cv_.notify_all();
  }
}

cni::Response Agent::handleCni(const cni::Request& req, int netns_fd) {
  cni::Response r;
  switch (req.command()) {
    case cni::ADD: r = cniAdd(req, netns_fd); break;
    case cni::DEL: r = cniDel(req); break;
    case cni::CHECK: r = cniCheck(req); break;
    default: r = answer(cni::Response::FAILED, "unknown CNI command"); break;
  }
  logInfo("cni " + cni::Command_Name(req.command()) + " " + podName(req.pod()) + " (container " +
          req.pod().container_id().substr(0, 12) + "): " +
          cni::Response::Status_Name(r.status()) +
          (r.message().empty() ? "" : ": " + r.message()));
  return r;
}

cni::Response Agent::cniAdd(const cni::Request& req, int netns_fd) {
  const auto& p = req.pod();
  if (p.pod_name().empty() || p.pod_namespace().empty()) {
    return answer(cni::Response::FAILED, "ADD without K8S_POD_NAME/K8S_POD_NAMESPACE");
  }
  if (!file_good_) {
    return answer(cni::Response::FAILED,
                  "the agent has no valid configuration yet (see `meshlet status`); try again");
  }
  CniPod pod;
  pod.ns = p.pod_namespace();
  pod.name = p.pod_name();
  pod.uid = p.pod_uid();
  pod.container_id = p.container_id();
  pod.netns = p.netns_path();
  for (const auto& ip : p.ips()) {
    auto a = IpAddr::parse(ip);
    if (!a) return answer(cni::Response::FAILED, "invalid pod IP \"" + ip + "\"");
    pod.ips.push_back(*a);
  }
  if (pod.ips.empty()) return answer(cni::Response::FAILED, "ADD without pod IPs");

  SnapshotPtr snap = buildSnapshot(*file_good_, &pod);
  const Pod* merged = findPod(*snap, pod.ns, pod.name);
  if (!merged || !podEnrolled(*snap, *merged)) {
    if (cni_.remove(pod.container_id, pod.ns, pod.name)) cni_.save();
    return answer(cni::Response::NOT_MESHED,
                  "neither the pod nor namespace " + pod.ns + " has istio.io/dataplane-mode=meshlet");
  }
  auto cookie = netns_fd >= 0 ? netnsCookieFromFd(netns_fd, pod.netns) : netnsCookie(pod.netns);
  if (!cookie.ok()) return answer(cni::Response::FAILED, cookie.error().message());
  pod.netns_cookie = *cookie;

  const CniPod* before = cni_.find(pod.ns, pod.name);
  std::optional<CniPod> previous = before ? std::optional<CniPod>(*before) : std::nullopt;
  cni_.put(pod);
  cookies_[pod.ns + "/" + pod.name] = pod.netns_cookie;
  if (auto st = applySnapshot(snap, false); !st) {
    if (previous) {
      cni_.put(*previous);
      cookies_[pod.ns + "/" + pod.name] = previous->netns_cookie;
    } else {
      cni_.remove(pod.container_id, pod.ns, pod.name);
      cookies_.erase(pod.ns + "/" + pod.name);
    }
    return answer(cni::Response::FAILED, "cannot enroll: " + st.error().message());
  }
  if (auto st = cni_.save(); !st) logWarn(st.error().message());
  return answer(cni::Response::ENROLLED, "", pod.netns_cookie);
}

cni::Response Agent::cniDel(const cni::Request& req) {
  const auto& p = req.pod();
  if (!cni_.remove(p.container_id(), p.pod_namespace(), p.pod_name())) {
    return answer(cni::Response::REMOVED, "not enrolled");
  }
  cookies_.erase(podName(p));
  if (auto st = cni_.save(); !st) logWarn(st.error().message());
  if (file_good_) {
    if (auto st = applySnapshot(buildSnapshot(*file_good_), false); !st) {
      recordError("pod removal not applied yet: " + st.error().message());
    }
  }
  return answer(cni::Response::REMOVED, "");
}

cni::Response Agent::cniCheck(const cni::Request& req) {
  const auto& p = req.pod();
  if (!file_good_ || !good_) {
    return answer(cni::Response::FAILED, "the agent has no valid configuration yet");
  }
  const CniPod* known = cni_.find(p.pod_namespace(), p.pod_name());
  CniPod probe;
  probe.ns = p.pod_namespace();
  probe.name = p.pod_name();
  probe.netns = p.netns_path();
  for (const auto& ip : p.ips()) {
    if (auto a = IpAddr::parse(ip)) probe.ips.push_back(*a);
  }
  SnapshotPtr snap = buildSnapshot(*file_good_, known ? nullptr : &probe);
  const Pod* merged = findPod(*snap, probe.ns, probe.name);
  bool should = merged && podEnrolled(*snap, *merged);
  if (!should) return answer(cni::Response::NOT_MESHED, "");
  if (!known) return answer(cni::Response::FAILED, "pod " + podName(p) + " should be in the mesh "
                                                   "but is not enrolled (no ADD seen)");
  if (!p.container_id().empty() && known->container_id != p.container_id()) {
    return answer(cni::Response::FAILED, "pod " + podName(p) + " is enrolled with container " +
                                             known->container_id + ", not " + p.container_id());
  }
  if (!desired_ || desired_->pods.count(known->netns_cookie) == 0) {
    return answer(cni::Response::FAILED,
                  "pod " + podName(p) + " is known but not in the datapath maps");
  }
  return answer(cni::Response::ENROLLED, "", known->netns_cookie);
}

void Agent::restoreCniPods() {
  if (auto st = cni_.load(); !st) {
    logError(st.error().message());
    return;
  }
  std::vector<CniPod> gone;
  for (const auto& [key, pod] : cni_.pods()) {
    auto cookie = netnsCookie(pod.netns);
    if (!cookie.ok()) {
      gone.push_back(pod);
      logInfo("cni pod " + key + " dropped on restore: " + cookie.error().message());
      continue;
    }
    CniPod p = pod;
    p.netns_cookie = *cookie;
    cni_.put(p);
    cookies_[key] = *cookie;
  }
  for (const auto& p : gone) cni_.remove(p.container_id, p.ns, p.name);
  if (!gone.empty()) cni_.save();
  logInfo("restored " + std::to_string(cni_.pods().size()) + " CNI-enrolled pods from " +
          cni_.file());
}

void Agent::reconcileCniPods() {
  // A pod deleted without a DEL (runtime crash): its netns is gone, forget it.
  std::vector<CniPod> gone;
  for (const auto& [key, pod] : cni_.pods()) {
    struct stat st {};
    if (stat(pod.netns.c_str(), &st) != 0 && errno == ENOENT) gone.push_back(pod);
  }
  if (gone.empty()) return;
  for (const auto& p : gone) {
    cni_.remove(p.container_id, p.ns, p.name);
    cookies_.erase(p.ns + "/" + p.name);
    logInfo("cni pod " + p.ns + "/" + p.name + " forgotten: its netns " + p.netns + " is gone");
  }
  cni_.save();
  if (file_good_) {
    if (auto st = applySnapshot(buildSnapshot(*file_good_), false); !st) {
      recordError("pod removal not applied yet: " + st.error().message());
    }
  }
}

}  // namespace meshlet
