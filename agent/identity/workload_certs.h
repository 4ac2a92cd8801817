#pragma once
// The certificates of this node's workloads: one SVID per identity (namespace +
// service account) that an enrolled pod of this node runs as, issued by the
// node's CA, renewed at half-life, dropped when no pod uses the identity any
// more. Owned by the agent's loop thread; what others need (the proxy, the
// admin API) they get as shared, immutable Svids.
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/common/status.h"
#include "agent/tls/ca.h"

namespace meshlet {

struct IdentityOptions {
  std::string ca_dir;
  std::string trust_domain = "cluster.local";
  int64_t svid_ttl_seconds = 24 * 3600;
  // How long a replaced signing root keeps signing, when the new trust bundle still trusts it:
  // every node reads the CA directory on its own schedule (a Secret reaches each kubelet in its
  // own time), and a certificate from the new root is refused by a peer that has not read it
  // yet. 0: the new root signs at once.
  int64_t rollover_delay_seconds = 0;
};

class WorkloadCerts {
 public:
  explicit WorkloadCerts(IdentityOptions opts) : opts_(std::move(opts)) {}

  // (Re)loads the CA directory when its files changed (a rotated Secret). After a change of
  // the signing root every SVID is renewed so that it chains to the new root: on the next
  // reconcile, or once the rollover delay has passed (see IdentityOptions). An error keeps the
  // last good CA.
  Status reloadCa();
  bool hasCa() const { return ca_ != nullptr; }
  // The CA as loaded: its trust bundle verifies peers.
  const tls::CertificateAuthority* ca() const { return ca_.get(); }
  // The CA that signs now: the replaced one during a rollover, else ca().
  const tls::CertificateAuthority* signer() const {
    return previous_ca_ ? previous_ca_.get() : ca_.get();
  }
  // During a rollover: when the new root takes over (unix seconds, once a reconcile has seen
  // the change), else 0.
  int64_t rolloverAt() const { return previous_ca_ ? rollover_at_ : 0; }
  const std::string& caError() const { return ca_error_; }

  struct Outcome {
    int issued = 0, renewed = 0, removed = 0;
    std::vector<std::string> errors;  // one per identity that could not be issued
  };
  // Makes the set of SVIDs match `identities` (SPIFFE ids) at time `now`.
  Outcome reconcile(const std::set<std::string>& identities, int64_t now);

  std::shared_ptr<const tls::Svid> find(const std::string& spiffe_id) const;
  const std::map<std::string, std::shared_ptr<const tls::Svid>>& all() const { return svids_; }
  const IdentityOptions& options() const { return opts_; }

  // When an SVID issued at not_before and expiring at not_after is renewed: at half-life.
  static int64_t renewAt(const tls::CertInfo& info) {
    return info.not_before + (info.not_after - info.not_before) / 2;
  }

 private:
  IdentityOptions opts_;
  std::unique_ptr<tls::CertificateAuthority> ca_;
  std::unique_ptr<tls::CertificateAuthority> previous_ca_;  // signs until rollover_at_
  int64_t rollover_at_ = 0;                                 // 0: not started yet
  std::string ca_signature_;  // of the files the CA was loaded from
  std::string ca_error_;
  std::string signing_serial_;  // of the root the current SVIDs chain to
  std::map<std::string, std::shared_ptr<const tls::Svid>> svids_;
};

}  // namespace meshlet
