// The certificate authority and SPIFFE SVIDs: key generation, signing, verification.
#include "agent/tls/ca.h"

#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <filesystem>
#include <utility>

#include "agent/tls/ossl.h"
#include "agent/tls/x509_util.h"

namespace meshlet::tls {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;
constexpr int64_t kBackdateSeconds = 60;  // tolerate a little clock skew between nodes

// A stack that only borrows its certificates (sk_X509_free is a macro, hence the function).
void freeX509Stack(STACK_OF(X509) * s) { sk_X509_free(s); }
using X509Stack = OsslPtr<STACK_OF(X509), freeX509Stack>;

Result<std::string> keyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return opensslError("encoding a private key");
  return bioText(bio.get());
}

Result<PkeyPtr> newP256Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return opensslError("generating an ECDSA P-256 key");
  return key;
}

Result<std::string> readSmallFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::fromErrno(path, errno);
  std::string text;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      if (n < 0) return Error::fromErrno(path, err);
      return text;
    }
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxPemBytes) {
      close(fd);
      return Error(path + ": larger than 1 MiB, not a PEM file", EFBIG);
    }
  }
}

// Writes `text` to `path` with `mode`, atomically (a temporary file renamed over it).
Status writeFileAtomic(const std::string& path, const std::string& text, mode_t mode) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Error::fromErrno(tmp, errno);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return Error::fromErrno(tmp, err);
    }
    off += static_cast<size_t>(n);
  }
  // The umask may have narrowed the mode; a key must be exactly 0600, a certificate 0644.
  if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return Error::fromErrno(tmp, err);
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return Error::fromErrno(path, err);
  }
  return Status::Ok();
}

int64_t asn1TimeToUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string nameText(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  auto text = bioText(bio.get());
  return text.ok() ? *text : "";
}

CertInfo describe(X509* cert) {
  CertInfo info;
  info.is_ca = X509_check_ca(cert) > 0;
  auto uris = uriSans(cert);
  info.subject = !info.is_ca && uris.size() == 1 ? uris[0] : nameText(X509_get_subject_name(cert));
  if (info.subject.empty() && !uris.empty()) info.subject = uris[0];
  info.issuer = nameText(X509_get_issuer_name(cert));
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (bn) {
    char* hex = BN_bn2hex(bn.get());
    if (hex) {
      info.serial = hex;
      OPENSSL_free(hex);
    }
  }
  info.not_before = asn1TimeToUnix(X509_get0_notBefore(cert));
  info.not_after = asn1TimeToUnix(X509_get0_notAfter(cert));
  return info;
}

// A random positive 127-bit serial, as RFC 5280 asks (unique, at most 20 octets).
Status setRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return opensslError("generating a serial number");
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;  // never zero, never negative
  BignumPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn) return opensslError("generating a serial number");
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial || X509_set_serialNumber(cert, serial.get()) != 1)
    return opensslError("setting the serial number");
  return Status::Ok();
}

// An extension in openssl.cnf syntax ("critical,CA:TRUE"), with `issuer` for key identifiers.
Status addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return opensslError(std::string("adding extension ") + OBJ_nid2sn(nid) + " " + value);
  return Status::Ok();
}

Status setValidity(X509* cert, int64_t not_before, int64_t not_after) {
  if (!ASN1_TIME_set(X509_getm_notBefore(cert), static_cast<time_t>(not_before)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert), static_cast<time_t>(not_after)))
    return opensslError("setting the validity period");
  return Status::Ok();
}

#define MESHLET_TLS_TRY(expr)                  \
  do {                                         \
    ::meshlet::Status status_ = (expr);        \
    if (!status_.ok()) return status_.error(); \
  } while (0)

bool validIdSegment(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string spiffeId(std::string_view trust_domain, std::string_view ns, std::string_view sa) {
  std::string id = "spiffe://";
  id.append(trust_domain).append("/ns/").append(ns).append("/sa/").append(sa);
  return id;
}

Status checkTrustDomain(std::string_view td) {
  if (td.empty()) return Error("the trust domain is empty");
  if (td.size() > 255) return Error("the trust domain is longer than 255 characters");
  for (char c : td) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) {
      return Error("trust domain \"" + std::string(td) +
                   "\" may only hold lowercase letters, digits, '.', '-' and '_'");
    }
  }
  return Status::Ok();
}

Result<SpiffeParts> parseSpiffeId(std::string_view id) {
  constexpr std::string_view kScheme = "spiffe://";
  std::string quoted = "\"" + std::string(id) + "\"";
  if (id.substr(0, kScheme.size()) != kScheme)
    return Error(quoted + " is not a SPIFFE id (it must start with spiffe://)");
  std::string_view rest = id.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return Error(quoted + " has no workload path");
  SpiffeParts parts;
  parts.trust_domain = std::string(rest.substr(0, slash));
  if (auto st = checkTrustDomain(parts.trust_domain); !st) return st.error().wrap(quoted);
  std::string_view path = rest.substr(slash);
  // "/ns/NS/sa/SA"
  auto take = [&path](std::string_view label, std::string& out) {
    std::string prefix = "/" + std::string(label) + "/";
    if (path.substr(0, prefix.size()) != prefix) return false;
    path.remove_prefix(prefix.size());
    size_t end = path.find('/');
    out = std::string(path.substr(0, end));
    path.remove_prefix(end == std::string_view::npos ? path.size() : end);
    return validIdSegment(out);
  };
  if (!take("ns", parts.ns) || !take("sa", parts.sa) || !path.empty())
    return Error(quoted + " is not a workload id (expected spiffe://TRUST-DOMAIN/ns/NS/sa/SA)");
  return parts;
}

Result<CertInfo> initCa(const CaInitOptions& opts, int64_t now) {
  if (auto st = checkTrustDomain(opts.trust_domain); !st) return st.error();
  if (opts.validity_seconds < 3600) return Error("the CA validity must be at least one hour");
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(opts.dir, ec);
  if (ec) return Error(opts.dir + ": cannot create: " + ec.message());
  // Only root reads the CA key's directory.
  chmod(opts.dir.c_str(), 0700);
  std::string cert_path = opts.dir + "/" + kCaCertFile;
  std::string key_path = opts.dir + "/" + kCaKeyFile;
  if (!opts.force && (fs::exists(cert_path, ec) || fs::exists(key_path, ec))) {
    return Error(opts.dir + " already holds a CA (" + kCaCertFile + ", " + kCaKeyFile +
                 "); use --force to replace it, and keep the old root in " + kTrustBundleFile +
                 " until every workload has a certificate from the new one");
  }
  auto key = newP256Key();
  if (!key.ok()) return key.error();
  X509Ptr cert(X509_new());
  if (!cert) return opensslError("creating the CA certificate");
  X509_set_version(cert.get(), X509_VERSION_3);
  MESHLET_TLS_TRY(setRandomSerial(cert.get()));
  MESHLET_TLS_TRY(setValidity(cert.get(), now - kBackdateSeconds, now + opts.validity_seconds));
  X509_NAME* name = X509_get_subject_name(cert.get());
  auto add = [name](const char* field, const std::string& value) {
    return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                      0) == 1;
  };
  if (!add("O", opts.trust_domain) || !add("CN", "meshlet root CA"))
    return opensslError("setting the CA name");
  if (X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key->get()) != 1)
    return opensslError("setting the CA's issuer and key");
  MESHLET_TLS_TRY(addExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  MESHLET_TLS_TRY(
      addExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  MESHLET_TLS_TRY(addExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  MESHLET_TLS_TRY(addExtension(cert.get(), cert.get(), NID_subject_alt_name,
                               "URI:spiffe://" + opts.trust_domain));
  if (X509_sign(cert.get(), key->get(), EVP_sha256()) <= 0) return opensslError("signing the CA");
  auto cpem = certPem(cert.get());
  if (!cpem.ok()) return cpem.error();
  auto kpem = keyPem(key->get());
  if (!kpem.ok()) return kpem.error();
  // The key first: a certificate without its key is useless, a key alone is harmless.
  MESHLET_TLS_TRY(writeFileAtomic(key_path, *kpem, 0600));
  MESHLET_TLS_TRY(writeFileAtomic(cert_path, *cpem, 0644));
  return describe(cert.get());
}

struct CertificateAuthority::Keys {
  X509Ptr cert;
  PkeyPtr key;
};

CertificateAuthority::CertificateAuthority() : keys_(std::make_unique<Keys>()) {}
CertificateAuthority::~CertificateAuthority() = default;
CertificateAuthority::CertificateAuthority(CertificateAuthority&&) noexcept = default;
CertificateAuthority& CertificateAuthority::operator=(CertificateAuthority&&) noexcept = default;

Result<CertificateAuthority> CertificateAuthority::load(const std::string& dir,
                                                        std::string trust_domain) {
  if (auto st = checkTrustDomain(trust_domain); !st) return st.error();
  std::string cert_path = dir + "/" + kCaCertFile;
  std::string key_path = dir + "/" + kCaKeyFile;
  auto cert_text = readSmallFile(cert_path);
  if (!cert_text.ok()) return cert_text.error();
  auto key_text = readSmallFile(key_path);
  if (!key_text.ok()) return key_text.error();

  CertificateAuthority ca;
  ca.trust_domain_ = std::move(trust_domain);
  auto certs = readCerts(*cert_text, cert_path);
  if (!certs.ok()) return certs.error();
  if (certs->size() != 1)
    return Error(cert_path + ": holds " + std::to_string(certs->size()) +
                 " certificates; it must hold only the signing root (more roots go in " +
                 kTrustBundleFile + ")");
  ca.keys_->cert = std::move(certs->front());
  if (X509_check_ca(ca.keys_->cert.get()) <= 0)
    return Error(cert_path + ": is not a CA certificate (basicConstraints CA:TRUE is missing)");

  BioPtr bio(BIO_new_mem_buf(key_text->data(), static_cast<int>(key_text->size())));
  ca.keys_->key.reset(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                          : nullptr);
  if (!ca.keys_->key) return opensslError(key_path + ": not a PEM private key");
  if (!EVP_PKEY_is_a(ca.keys_->key.get(), "EC"))
    return Error(key_path + ": the CA key must be an ECDSA key");
  if (X509_check_private_key(ca.keys_->cert.get(), ca.keys_->key.get()) != 1) {
    ERR_clear_error();
    return Error(key_path + ": does not match the certificate in " + cert_path);
  }
  auto pem = certPem(ca.keys_->cert.get());
  if (!pem.ok()) return pem.error();
  ca.cert_pem_ = *pem;
  ca.bundle_pem_ = *pem;
  ca.roots_info_.push_back(describe(ca.keys_->cert.get()));

  std::string bundle_path = dir + "/" + kTrustBundleFile;
  std::error_code ec;
  if (std::filesystem::exists(bundle_path, ec)) {
    auto text = readSmallFile(bundle_path);
    if (!text.ok()) return text.error();
    auto roots = readCerts(*text, bundle_path);
    if (!roots.ok()) return roots.error();
    for (size_t i = 0; i < roots->size(); ++i) {
      X509* root = (*roots)[i].get();
      if (X509_check_ca(root) <= 0)
        return Error(bundle_path + ": certificate " + std::to_string(i + 1) + " is not a CA");
      if (X509_cmp(root, ca.keys_->cert.get()) == 0) continue;  // the signing root, already in
      auto rpem = certPem(root);
      if (!rpem.ok()) return rpem.error();
      ca.bundle_pem_ += *rpem;
      ca.roots_info_.push_back(describe(root));
    }
  }
  return ca;
}

Result<Svid> CertificateAuthority::issue(const std::string& spiffe_id, int64_t ttl_seconds,
                                         int64_t now) const {
  auto parts = parseSpiffeId(spiffe_id);
  if (!parts.ok()) return parts.error();
  if (parts->trust_domain != trust_domain_)
    return Error("\"" + spiffe_id + "\" is not in trust domain " + trust_domain_);
  if (ttl_seconds < 60) return Error("a certificate must live at least 60 seconds");
  int64_t root_expiry = signingRoot().not_after;
  if (root_expiry <= now) {
    return Error("the CA certificate expired at unix time " + std::to_string(root_expiry) +
                 "; rotate the root");
  }
  auto key = newP256Key();
  if (!key.ok()) return key.error();
  X509Ptr cert(X509_new());
  if (!cert) return opensslError("creating a certificate");
  X509_set_version(cert.get(), X509_VERSION_3);
  MESHLET_TLS_TRY(setRandomSerial(cert.get()));
  MESHLET_TLS_TRY(
      setValidity(cert.get(), now - kBackdateSeconds, std::min(now + ttl_seconds, root_expiry)));
  // An SVID's identity is its URI SAN; the subject stays empty, so the SAN is critical.
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(keys_->cert.get())) != 1 ||
      X509_set_pubkey(cert.get(), key->get()) != 1)
    return opensslError("setting the certificate's issuer and key");
  MESHLET_TLS_TRY(
      addExtension(cert.get(), keys_->cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  MESHLET_TLS_TRY(addExtension(cert.get(), keys_->cert.get(), NID_key_usage,
                               "critical,digitalSignature,keyAgreement"));
  MESHLET_TLS_TRY(
      addExtension(cert.get(), keys_->cert.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  MESHLET_TLS_TRY(addExtension(cert.get(), keys_->cert.get(), NID_subject_alt_name,
                               "critical,URI:" + spiffe_id));
  MESHLET_TLS_TRY(addExtension(cert.get(), keys_->cert.get(), NID_subject_key_identifier, "hash"));
  MESHLET_TLS_TRY(
      addExtension(cert.get(), keys_->cert.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), keys_->key.get(), EVP_sha256()) <= 0)
    return opensslError("signing the certificate for " + spiffe_id);

  Svid svid;
  svid.spiffe_id = spiffe_id;
  auto kpem = keyPem(key->get());
  if (!kpem.ok()) return kpem.error();
  auto cpem = certPem(cert.get());
  if (!cpem.ok()) return cpem.error();
  svid.key_pem = std::move(*kpem);
  svid.cert_pem = std::move(*cpem);
  svid.chain_pem = cert_pem_;
  svid.info = describe(cert.get());
  return svid;
}

Result<std::string> verifySvid(const std::string& chain_pem, const std::string& roots_pem,
                               std::string_view trust_domain, int64_t now) {
  auto chain = readCerts(chain_pem, "peer certificate chain");
  if (!chain.ok()) return chain.error();
  auto roots = readCerts(roots_pem, "trust bundle");
  if (!roots.ok()) return roots.error();
  X509StorePtr store(X509_STORE_new());
  X509Stack untrusted(sk_X509_new_null());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) return opensslError("setting up verification");
  for (auto& root : *roots) {
    if (X509_STORE_add_cert(store.get(), root.get()) != 1) return opensslError("adding a root");
  }
  for (size_t i = 1; i < chain->size(); ++i) sk_X509_push(untrusted.get(), (*chain)[i].get());
  X509* leaf = chain->front().get();
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1)
    return opensslError("setting up verification");
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return Error(std::string("peer certificate rejected: ") + X509_verify_cert_error_string(err));
  }
  return workloadIdOf(leaf, trust_domain);
}

Result<std::vector<CertInfo>> describePem(const std::string& pem) {
  auto certs = readCerts(pem, "PEM");
  if (!certs.ok()) return certs.error();
  std::vector<CertInfo> out;
  for (auto& c : *certs) out.push_back(describe(c.get()));
  return out;
}

}  // namespace meshlet::tls
