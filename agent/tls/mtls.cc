#include "agent/tls/mtls.h"

#include <openssl/pem.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <utility>

#include "agent/tls/ossl.h"
#include "agent/tls/x509_util.h"

namespace meshlet::tls {
namespace {

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

// The server takes "h2" or refuses the handshake: HBONE is HTTP/2 and nothing else.
int selectH2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
             unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnH2, sizeof(kAlpnH2), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

struct MtlsContext::Impl {
  SslCtxPtr ctx;
};

MtlsContext::~MtlsContext() = default;

Result<std::shared_ptr<const MtlsContext>> MtlsContext::make(const Svid& svid,
                                                             const std::string& roots_pem,
                                                             std::string trust_domain,
                                                             MtlsRole role) {
  std::shared_ptr<MtlsContext> c(new MtlsContext());
  c->impl_ = std::make_unique<Impl>();
  c->role_ = role;
  c->local_id_ = svid.spiffe_id;
  c->trust_domain_ = std::move(trust_domain);
  SSL_CTX* ctx = SSL_CTX_new(role == MtlsRole::kServer ? TLS_server_method() : TLS_client_method());
  if (!ctx) return opensslError("creating a TLS context");
  c->impl_->ctx.reset(ctx);
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // Partial writes and a moving write buffer: the caller drains output whenever it likes. No
  // automatic chain: the peer has the roots, sending them only makes handshakes bigger.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);

  auto chain = readCerts(svid.cert_pem + svid.chain_pem, "certificate of " + svid.spiffe_id);
  if (!chain.ok()) return chain.error();
  if (SSL_CTX_use_certificate(ctx, chain->front().get()) != 1)
    return opensslError("using the certificate of " + svid.spiffe_id);
  // The issuer chain, minus self-signed roots: the peer has those in its bundle.
  for (size_t i = 1; i < chain->size(); ++i) {
    X509* extra = (*chain)[i].get();
    if (X509_check_issued(extra, extra) == X509_V_OK) continue;
    if (SSL_CTX_add1_chain_cert(ctx, extra) != 1) return opensslError("adding a chain certificate");
  }
  BioPtr kbio(BIO_new_mem_buf(svid.key_pem.data(), static_cast<int>(svid.key_pem.size())));
  PkeyPtr key(kbio ? PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return opensslError("the key of " + svid.spiffe_id);
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
    return opensslError("the key of " + svid.spiffe_id + " does not match its certificate");

  auto roots = readCerts(roots_pem, "trust bundle");
  if (!roots.ok()) return roots.error();
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (auto& r : *roots) {
    if (X509_STORE_add_cert(store, r.get()) != 1) return opensslError("adding a trusted root");
  }
  // Both sides must present a certificate that chains to a trusted root; who it names is
  // checked after the handshake (workloadIdOf), against the SPIFFE rules and the expected peer.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  if (role == MtlsRole::kServer) SSL_CTX_set_alpn_select_cb(ctx, selectH2, nullptr);
  return std::shared_ptr<const MtlsContext>(std::move(c));
}

// The session's BIO: OpenSSL reads ciphertext from the session's input queue and writes it to
// the output queue, with no copy through a memory BIO of its own (whose growth zero-fills). Its
// data is the session's CipherQueues.
namespace {

int bufWrite(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  static_cast<CipherQueues*>(BIO_get_data(b))->out.append(data, static_cast<size_t>(len));
  return len;
}

int bufRead(BIO* b, char* data, int len) {
  BIO_clear_retry_flags(b);
  ByteBuf& in = static_cast<CipherQueues*>(BIO_get_data(b))->in;
  if (in.empty()) {
    BIO_set_retry_read(b);  // "come back later", not end of stream
    return -1;
  }
  size_t n = std::min(in.size(), static_cast<size_t>(len));
  std::memcpy(data, in.data(), n);
  in.consume(n);
  return static_cast<int>(n);
}

long bufCtrl(BIO* b, int cmd, long, void*) {
  auto* q = static_cast<CipherQueues*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING:
      return static_cast<long>(q->in.size());
    case BIO_CTRL_WPENDING:
      return static_cast<long>(q->out.size());
    default:
      return 0;
  }
}

int bufCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* bufMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "meshlet queue");
    if (m) {
      BIO_meth_set_write(m, bufWrite);
      BIO_meth_set_read(m, bufRead);
      BIO_meth_set_ctrl(m, bufCtrl);
      BIO_meth_set_create(m, bufCreate);
    }
    return m;
  }();
  return method;
}

}  // namespace

struct MtlsSession::Impl {
  SslPtr ssl;
};

MtlsSession::~MtlsSession() = default;

Result<std::unique_ptr<MtlsSession>> MtlsSession::make(std::shared_ptr<const MtlsContext> ctx,
                                                       std::string expected_peer) {
  std::unique_ptr<MtlsSession> s(new MtlsSession());
  s->impl_ = std::make_unique<Impl>();
  s->ctx_ = std::move(ctx);
  s->expected_peer_ = std::move(expected_peer);
  s->impl_->ssl.reset(SSL_new(s->ctx_->impl_->ctx.get()));
  SSL* ssl = s->impl_->ssl.get();
  if (!ssl) return opensslError("creating a TLS session");
  const BIO_METHOD* method = bufMethod();
  BIO* bio = method ? BIO_new(method) : nullptr;
  if (!bio) return opensslError("creating TLS buffers");
  BIO_set_data(bio, &s->wire_);
  SSL_set_bio(ssl, bio, bio);  // one BIO both ways, owned by the SSL
  if (s->ctx_->role() == MtlsRole::kClient) {
    if (SSL_set_alpn_protos(ssl, kAlpnH2, sizeof(kAlpnH2)) != 0)
      return opensslError("setting ALPN");
    SSL_set_connect_state(ssl);
  } else {
    SSL_set_accept_state(ssl);
  }
  return s;
}

Status MtlsSession::checkPeer() {
  SSL* ssl = impl_->ssl.get();
  if (alpn() != "h2") return Error("the peer did not negotiate ALPN h2");
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (!leaf) return Error("the peer presented no certificate");
  auto id = workloadIdOf(leaf, ctx_->trust_domain_);
  if (!id.ok()) return id.error();
  if (!expected_peer_.empty() && *id != expected_peer_) {
    return Error("peer certificate rejected: expected " + expected_peer_ + ", the peer is " + *id);
  }
  peer_id_ = *id;
  return Status::Ok();
}

Status MtlsSession::pump() {
  SSL* ssl = impl_->ssl.get();
  auto failure = [&](int ret, const std::string& what) -> Status {
    int err = SSL_get_error(ssl, ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::Ok();
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return Error(std::string("peer certificate rejected: ") +
                   X509_verify_cert_error_string(verify));
    }
    return opensslError(what);
  };
  if (!established_) {
    int ret = SSL_do_handshake(ssl);
    if (ret != 1) return failure(ret, "TLS handshake");
    if (auto st = checkPeer(); !st) {
      SSL_shutdown(ssl);  // tell the peer, then the caller closes
      return st;
    }
    established_ = true;
  }
  constexpr size_t kRecord = 16384;  // SSL_read returns at most one record
  while (true) {
    size_t n = 0;
    int ret = SSL_read_ex(ssl, plain_.reserve(kRecord), kRecord, &n);
    if (ret == 1) {
      plain_.commit(n);
      continue;
    }
    if (SSL_get_error(ssl, ret) == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      return Status::Ok();
    }
    return failure(ret, "TLS read");
  }
}

std::string MtlsSession::takePlain() { return plain_.take(); }

Status MtlsSession::write(std::string_view plain) {
  if (!established_) return Error("TLS write before the handshake finished");
  SSL* ssl = impl_->ssl.get();
  while (!plain.empty()) {
    size_t n = 0;
    if (SSL_write_ex(ssl, plain.data(), plain.size(), &n) != 1) return opensslError("TLS write");
    plain.remove_prefix(n);
  }
  return Status::Ok();
}

std::string MtlsSession::takeOutput() { return wire_.out.take(); }

void MtlsSession::shutdown() {
  SSL_shutdown(impl_->ssl.get());
  ERR_clear_error();
}

std::string MtlsSession::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(impl_->ssl.get(), &p, &n);
  return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

std::string MtlsSession::version() const { return SSL_get_version(impl_->ssl.get()); }

}  // namespace meshlet::tls
