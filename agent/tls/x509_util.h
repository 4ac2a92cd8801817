#pragma once
// Private to agent/tls: X.509 helpers shared by the CA, mTLS and the HTTPS client.
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/status.h"
#include "agent/tls/ossl.h"

namespace meshlet::tls {

// Every certificate of a PEM text, in order; an error when there is none or one is malformed.
// `what` names the text in the error ("trust bundle").
Result<std::vector<X509Ptr>> readCerts(const std::string& pem, const std::string& what);
Result<std::string> certPem(X509* cert);
// The contents of a memory BIO.
Result<std::string> bioText(BIO* bio);
// The URI subject alternative names of a certificate.
std::vector<std::string> uriSans(X509* cert);
// The SPIFFE id of an (already chain-verified) workload certificate: exactly one URI SAN, a
// workload id in `trust_domain`, not a CA. Errors start with "peer certificate rejected".
Result<std::string> workloadIdOf(X509* leaf, std::string_view trust_domain);

}  // namespace meshlet::tls
