// The agent's side of workload identity: which SVIDs this node needs, and their renewal.
#include <set>

#include "agent/common/log.h"
#include "agent/server/agent.h"
#include "agent/tls/ca.h"

namespace meshlet {

void Agent::reconcileIdentities() {
  if (!certs_) {
    certs_ = std::make_unique<WorkloadCerts>(IdentityOptions{flags_.ca_dir, flags_.trust_domain,
                                                             flags_.svid_ttl_seconds,
                                                             flags_.ca_rollover_delay_seconds});
  }
  bool had_ca = certs_->hasCa();
  std::string old_root = had_ca ? certs_->ca()->signingRoot().serial : "";
  Status st = certs_->reloadCa();
  std::string message;
  if (!st) {
    message = had_ca ? "CA reload failed, the last good CA stays in force: " + certs_->caError()
                     : "no CA, workload certificates are not issued: " + certs_->caError() +
                           " (create one with `meshlet ca init --dir " + flags_.ca_dir + "`)";
  } else if (certs_->hasCa() && certs_->ca()->signingRoot().serial != old_root) {
    const auto* ca = certs_->ca();
    message = "CA loaded from " + flags_.ca_dir + ": signing root " + ca->signingRoot().subject +
              " #" + ca->signingRoot().serial + ", " + std::to_string(ca->trustedRoots().size()) +
              " trusted root(s), trust domain " + flags_.trust_domain;
    if (certs_->signer() != ca) {
      message += "; root #" + certs_->signer()->signingRoot().serial + " keeps signing for " +
                 std::to_string(flags_.ca_rollover_delay_seconds) +
                 " s (--ca-rollover-delay), until every node has read the new root";
    }
  }
  if (!message.empty() && message != ca_logged_) {
    (st ? logInfo : logWarn)(message);
    ca_logged_ = message;
  }

  std::set<std::string> wanted;
  if (desired_) {
    for (const auto& [id, p] : desired_->pod_info) {
      if (p.netns_cookie != 0)
        wanted.insert(tls::spiffeId(flags_.trust_domain, p.ns, p.service_account));
    }
  }
  auto out = certs_->reconcile(wanted, nowUnix());
  if (out.issued || out.renewed || out.removed) {
    logInfo("workload certificates: " + std::to_string(out.issued) + " issued, " +
            std::to_string(out.renewed) + " renewed, " + std::to_string(out.removed) +
            " dropped; " + std::to_string(certs_->all().size()) + " in use");
  }
  std::map<std::string, std::string> errors;
  for (const auto& e : out.errors) {
    std::string id = e.substr(0, e.find(": "));
    errors[id] = e.substr(id.size() + 2);
    if (issue_errors_[id] != errors[id]) logError("workload certificate for " + e);
  }
  issue_errors_ = std::move(errors);

  auto v = std::make_shared<IdentityView>();
  v->trust_domain = flags_.trust_domain;
  v->ca_dir = flags_.ca_dir;
  if (certs_) {
    v->ca_error = certs_->caError();
    v->has_ca = certs_->hasCa();
    if (certs_->hasCa()) v->roots = certs_->ca()->trustedRoots();
    v->svids = certs_->all();
  }
  v->issue_errors = issue_errors_;
  identity_view_ = std::move(v);
}

}  // namespace meshlet
