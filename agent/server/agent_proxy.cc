// The agent's side of the mesh proxy: what it serves follows the applied configuration and the
// issued certificates.
#include <algorithm>
#include <map>

#include "agent/common/log.h"
#include "agent/server/agent.h"
#include "agent/tls/ca.h"

namespace meshlet {

Status Agent::startProxy() {
  auto fd = dp_->tunnelMapFd();
  if (!fd.ok()) return fd.error();
  auto p = proxy::MeshProxy::start(*fd, metrics_.tunnelEvents());
  if (!p.ok()) return p.error();
  proxy_ = std::move(*p);
  return Status::Ok();
}

void Agent::updateProxy() {
  if (!proxy_ || !desired_) return;
  const void* inputs[] = {desired_.get(), good_.get(), identity_view_.get()};
  if (std::equal(std::begin(inputs), std::end(inputs), std::begin(proxy_inputs_))) return;
  std::copy(std::begin(inputs), std::end(inputs), std::begin(proxy_inputs_));

  auto cfg = std::make_shared<proxy::ProxyConfig>();
  cfg->trust_domain = flags_.trust_domain;
  cfg->snapshot = good_;
  cfg->desired = desired_;
  cfg->remote_pods = desired_->remote_pods;
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
    cfg->pods.push_back(std::move(pp));
  }
  if (certs_) {
    cfg->svids = certs_->all();
    if (certs_->hasCa()) cfg->roots_pem = certs_->ca()->trustBundlePem();
  }
  proxy_->update(std::move(cfg));
}

}  // namespace meshlet
