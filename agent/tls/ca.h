#pragma once
// Workload identity: SPIFFE X.509 SVIDs (spiffe://<trust-domain>/ns/<namespace>/sa/<account>)
// signed by the node's certificate authority, and their verification. ECDSA P-256 everywhere.
//
// The CA directory (the embedded default's built-in CA, or a Kubernetes Secret mounted there):
//   ca-cert.pem       the root that signs (self-signed, CA:TRUE)
//   ca-key.pem        its private key (mode 0600)
//   trust-bundle.pem  optional: more roots to trust, e.g. the next root during a rotation
// Every root in the bundle is trusted when verifying a peer, so a root can be rotated by first
// distributing the new root in every node's bundle, then switching the signing root (or in one
// step, with the agent's rollover delay: see identity/workload_certs.h).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/status.h"

namespace meshlet::tls {

inline constexpr const char* kCaCertFile = "ca-cert.pem";
inline constexpr const char* kCaKeyFile = "ca-key.pem";
inline constexpr const char* kTrustBundleFile = "trust-bundle.pem";

// What a person (or `meshlet certs`) sees of a certificate.
struct CertInfo {
  std::string subject;     // the SPIFFE id for an SVID, the distinguished name otherwise
  std::string issuer;      // distinguished name of the issuer
  std::string serial;      // hex
  int64_t not_before = 0;  // unix seconds
  int64_t not_after = 0;
  bool is_ca = false;
};

// A workload's identity document: key, leaf certificate and the chain up to a trusted root.
struct Svid {
  std::string spiffe_id;
  std::string key_pem;    // PKCS#8
  std::string cert_pem;   // the leaf
  std::string chain_pem;  // the signing root (the leaf's issuer chain, leaf excluded)
  CertInfo info;          // of the leaf
};

// "spiffe://TD/ns/NS/sa/SA".
std::string spiffeId(std::string_view trust_domain, std::string_view ns, std::string_view sa);
// A trust domain is a DNS-like name: lowercase letters, digits, '.', '-', '_', at most 255.
Status checkTrustDomain(std::string_view trust_domain);
// Splits a workload SPIFFE id; an error says what is wrong with it.
struct SpiffeParts {
  std::string trust_domain, ns, sa;
};
Result<SpiffeParts> parseSpiffeId(std::string_view id);

struct CaInitOptions {
  std::string dir;
  std::string trust_domain = "cluster.local";
  int64_t validity_seconds = 10ll * 365 * 24 * 3600;
  bool force = false;  // replace an existing CA (the old root should go into
                       // trust-bundle.pem)
};
// Writes a new root certificate and key into opts.dir (created 0700 when
// missing; the key is written 0600). Refuses to overwrite an existing CA unless opts.force.
Result<CertInfo> initCa(const CaInitOptions& opts, int64_t now);

class CertificateAuthority {
 public:
  ~CertificateAuthority();
  CertificateAuthority(CertificateAuthority&&) noexcept;
  CertificateAuthority& operator=(CertificateAuthority&&) noexcept;

  // Loads the CA directory. The signing certificate must be a CA whose key matches ca-key.pem.
  static Result<CertificateAuthority> load(const std::string& dir, std::string trust_domain);

  // A fresh key and a leaf certificate for `spiffe_id` (which must be in this
  // trust domain), valid from a minute before `now` for `ttl_seconds`, never
  // beyond the root's own expiry.
  Result<Svid> issue(const std::string& spiffe_id, int64_t ttl_seconds, int64_t now) const;

  // Every trusted root (the signing root first), PEM.
  const std::string& trustBundlePem() const { return bundle_pem_; }
  const std::vector<CertInfo>& trustedRoots() const { return roots_info_; }
  const CertInfo& signingRoot() const { return roots_info_.front(); }
  const std::string& trustDomain() const { return trust_domain_; }

 private:
  CertificateAuthority();
  struct Keys;  // the signing certificate and key (OpenSSL objects, kept inside
                // agent/tls)
  std::unique_ptr<Keys> keys_;
  std::string cert_pem_;
  std::string bundle_pem_;
  std::vector<CertInfo> roots_info_;
  std::string trust_domain_;
};

// Verifies a peer's certificate chain (leaf first, PEM) against the trusted
// roots (PEM) at time `now`, and returns the leaf's SPIFFE id. The leaf must
// carry exactly one URI SAN, a workload id in `trust_domain`, and must not be a CA.
Result<std::string> verifySvid(const std::string& chain_pem, const std::string& roots_pem,
                               std::string_view trust_domain, int64_t now);

// The certificates of a PEM text, in order.
Result<std::vector<CertInfo>> describePem(const std::string& pem);

}  // namespace meshlet::tls
