// The agent's side of the mesh proxy: what it serves follows the applied configuration and the
// issued certificates.
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "agent/common/log.h"
#include "agent/l7/routes.h"
#include "agent/policy/authz.h"
#include "agent/server/agent.h"
#include "agent/tls/ca.h"

namespace meshlet {

namespace {

// Whether plaintext inbound to this workload must pass through the agent: a STRICT mode on any
// of its ports, or an AuthorizationPolicy that applies to it. Otherwise it reaches the app
// directly (PERMISSIVE, no policy: nothing to decide).
bool needsCapture(const Snapshot& s, const std::string& ns, const Labels& labels) {
  if (!applicablePolicies(s, ns, labels).empty()) return true;
  if (effectiveMtls(s, ns, labels, 0).mode == MtlsMode::kStrict) return true;
  for (const PeerAuthentication& pa : s.peer_authentications) {
    for (const auto& [port, mode] : pa.port_modes) {
      if (effectiveMtls(s, ns, labels, port).mode == MtlsMode::kStrict) return true;
    }
  }
  return false;
}

}  // namespace

Status Agent::startProxy() {
  auto fd = dp_->tunnelMapFd();
  if (!fd.ok()) return fd.error();
  auto inbound = dp_->inboundMapFd();
  if (!inbound.ok()) {
    close(*fd);
    return inbound.error();
  }
  proxy::TunnelEvents events = metrics_.tunnelEvents();
  if (!flags_.access_log.empty()) {
    auto log = AccessLog::open(flags_.access_log);
    if (!log.ok()) {
      close(*fd);
      close(*inbound);
      return log.error();
    }
    access_log_ = std::move(*log);
    events.request = [metrics = std::move(events.request), log = access_log_.get()](
                         const l7::RequestRecord& r, const Snapshot* s) {
      metrics(r, s);
      log->write(r);
    };
  }
  auto p = proxy::MeshProxy::start(*fd, *inbound, std::move(events));
  if (!p.ok()) return p.error();
  proxy_ = std::move(*p);
  return Status::Ok();
}

void Agent::updateProxy() {
  if (!proxy_ || !desired_) return;
  const void* inputs[] = {desired_.get(), good_.get(), identity_view_.get()};
  if (std::equal(std::begin(inputs), std::end(inputs), std::begin(proxy_inputs_))) return;
  // The routes depend on the configuration alone: when only the identity view changed (it is
  // rebuilt every second) the last ones are handed on rather than compiled again.
  const bool same_config = l7_ && inputs[0] == proxy_inputs_[0] && inputs[1] == proxy_inputs_[1];
  std::copy(std::begin(inputs), std::end(inputs), std::begin(proxy_inputs_));

  auto cfg = std::make_shared<proxy::ProxyConfig>();
  cfg->trust_domain = flags_.trust_domain;
  cfg->snapshot = good_;
  cfg->desired = desired_;
  cfg->remote_pods = desired_->remote_pods;
  cfg->l7 = same_config ? l7_ : l7::compileL7(good_, *desired_);
  l7_ = cfg->l7;
  for (const std::string& w : cfg->l7->warnings) {
    if (!l7_warned_.count(w)) logWarn("l7: " + w);
  }
  l7_warned_ = std::set<std::string>(cfg->l7->warnings.begin(), cfg->l7->warnings.end());
  std::map<std::string, const Labels*> labels;
  if (good_) {
    for (const Pod& p : good_->pods) labels[p.meta.ns + "/" + p.meta.name] = &p.meta.labels;
  }
  for (const auto& [id, p] : desired_->pod_info) {
    if (p.netns_cookie == 0 || p.netns.empty()) continue;
    proxy::ProxyPod pp;
    pp.ns = p.ns;
    pp.name = p.name;
    pp.spiffe_id = tls::spiffeId(flags_.trust_domain, p.ns, p.service_account);
    if (auto it = labels.find(p.ns + "/" + p.name); it != labels.end()) pp.labels = *it->second;
    pp.ips = p.ips;
    pp.netns = p.netns;
    pp.netns_cookie = p.netns_cookie;
    pp.capture_inbound = good_ && needsCapture(*good_, p.ns, pp.labels);
    cfg->pods.push_back(std::move(pp));
  }
  reconcileInboundCapture(*cfg);
  if (certs_) {
    cfg->svids = certs_->all();
    if (certs_->hasCa()) cfg->roots_pem = certs_->ca()->trustBundlePem();
  }
  proxy_->update(std::move(cfg));
}

// The sk_lookup program goes into the netns of every enrolled pod the proxy serves (whether it
// steers anything is the proxy's map entry), and out of those that left.
void Agent::reconcileInboundCapture(const proxy::ProxyConfig& cfg) {
  std::set<uint64_t> wanted;
  for (const proxy::ProxyPod& p : cfg.pods) {
    wanted.insert(p.netns_cookie);
    if (auto st = dp_->attachInbound(p.netns_cookie, p.netns); !st) {
      std::string key = p.ns + "/" + p.name;
      if (inbound_errors_[key] != st.error().message()) {
        logWarn("inbound capture for pod " + key + ": " + st.error().message());
      }
      inbound_errors_[key] = st.error().message();
    }
  }
  for (uint64_t cookie : dp_->inboundAttached()) {
    if (wanted.count(cookie) == 0) dp_->detachInbound(cookie);
  }
}

}  // namespace meshlet
