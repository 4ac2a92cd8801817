#include "agent/tls/x509_util.h"

#include <openssl/pem.h>

#include "agent/tls/ca.h"

namespace meshlet::tls {

Result<std::string> bioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n < 0) return opensslError("reading a memory BIO");
  return std::string(data, static_cast<size_t>(n));
}

// Every certificate of a PEM text; an error when there is none or one is malformed.
Result<std::vector<X509Ptr>> readCerts(const std::string& pem, const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return opensslError(what);
  std::vector<X509Ptr> out;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // the end of the text
        break;
      }
      return opensslError(what + ": certificate " + std::to_string(out.size() + 1) +
                          " is malformed");
    }
    out.push_back(std::move(cert));
  }
  if (out.empty()) return Error(what + ": no PEM certificate in it");
  return out;
}

Result<std::string> certPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1)
    return opensslError("encoding a certificate");
  return bioText(bio.get());
}

std::vector<std::string> uriSans(X509* cert) {
  std::vector<std::string> out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = n->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                     static_cast<size_t>(ASN1_STRING_length(uri)));
  }
  return out;
}

Result<std::string> workloadIdOf(X509* leaf, std::string_view trust_domain) {
  if (X509_check_ca(leaf) > 0) return Error("peer certificate rejected: it is a CA certificate");
  auto uris = uriSans(leaf);
  if (uris.size() != 1) {
    return Error("peer certificate rejected: it has " + std::to_string(uris.size()) +
                 " URI SANs, an SVID has exactly one");
  }
  auto parts = parseSpiffeId(uris[0]);
  if (!parts.ok()) return parts.error().wrap("peer certificate rejected");
  if (parts->trust_domain != trust_domain) {
    return Error("peer certificate rejected: " + uris[0] + " is not in trust domain " +
                 std::string(trust_domain));
  }
  return uris[0];
}

}  // namespace meshlet::tls
