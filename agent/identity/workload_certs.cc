#include "agent/identity/workload_certs.h"

#include <sys/stat.h>

namespace meshlet {
namespace {

// Sizes, modification times and inodes of the CA files: a mounted Secret is
// updated by swapping a symlink, which changes the inode.
std::string caSignature(const std::string& dir) {
  std::string sig;
  for (const char* name : {tls::kCaCertFile, tls::kCaKeyFile, tls::kTrustBundleFile}) {
    struct stat st {};
    std::string path = dir + "/" + name;
    if (stat(path.c_str(), &st) != 0) {
      sig += std::string(name) + ":-\n";
      continue;
    }
    sig += std::string(name) + ":" + std::to_string(st.st_size) + ":" +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ":" +
           std::to_string(st.st_ino) + "\n";
  }
  return sig;
}

}  // namespace

Status WorkloadCerts::reloadCa() {
  std::string sig = caSignature(opts_.ca_dir);
  if (sig == ca_signature_ && (ca_ || !ca_error_.empty())) return Status::Ok();
  ca_signature_ = sig;
  auto loaded = tls::CertificateAuthority::load(opts_.ca_dir, opts_.trust_domain);
  if (!loaded.ok()) {
    ca_error_ = loaded.error().message();
    return loaded.error();
  }
  auto fresh = std::make_unique<tls::CertificateAuthority>(std::move(*loaded));
  ca_error_.clear();
  // A new signing root whose bundle still trusts the one in use: the one in use keeps signing
  // for the rollover delay (a second change meanwhile does not restart it). A bundle that
  // dropped it means the old root is withdrawn: the new one signs at once.
  const tls::CertificateAuthority* current = signer();
  bool still_trusted = false;
  if (current && fresh->signingRoot().serial != current->signingRoot().serial) {
    for (const auto& root : fresh->trustedRoots()) {
      still_trusted |= root.serial == current->signingRoot().serial;
    }
  }
  if (opts_.rollover_delay_seconds > 0 && still_trusted) {
    if (!previous_ca_) {
      previous_ca_ = std::move(ca_);
      rollover_at_ = 0;
    }
  } else {
    previous_ca_.reset();
  }
  ca_ = std::move(fresh);
  return Status::Ok();
}

WorkloadCerts::Outcome WorkloadCerts::reconcile(const std::set<std::string>& identities,
                                                int64_t now) {
  Outcome out;
  for (auto it = svids_.begin(); it != svids_.end();) {
    if (identities.count(it->first)) {
      ++it;
    } else {
      it = svids_.erase(it);
      ++out.removed;
    }
  }
  if (!ca_) return out;
  if (previous_ca_) {
    if (rollover_at_ == 0) rollover_at_ = now + opts_.rollover_delay_seconds;
    if (now >= rollover_at_) previous_ca_.reset();
  }
  const tls::CertificateAuthority* ca = signer();
  // A new signing root: every SVID is renewed so that it chains to it.
  bool new_root = ca->signingRoot().serial != signing_serial_;
  signing_serial_ = ca->signingRoot().serial;
  for (const auto& id : identities) {
    auto it = svids_.find(id);
    bool have = it != svids_.end();
    if (have && !new_root && now < renewAt(it->second->info)) continue;
    auto svid = ca->issue(id, opts_.svid_ttl_seconds, now);
    if (!svid.ok()) {
      // The old certificate, if any, stays in use until it expires.
      out.errors.push_back(id + ": " + svid.error().message());
      continue;
    }
    svids_[id] = std::make_shared<const tls::Svid>(std::move(*svid));
    ++(have ? out.renewed : out.issued);
  }
  return out;
}

std::shared_ptr<const tls::Svid> WorkloadCerts::find(const std::string& spiffe_id) const {
  auto it = svids_.find(spiffe_id);
  return it == svids_.end() ? nullptr : it->second;
}

}  // namespace meshlet
