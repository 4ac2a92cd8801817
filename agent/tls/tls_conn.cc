#include "agent/tls/tls_conn.h"

#include <arpa/inet.h>
#include <openssl/pem.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "agent/tls/ossl.h"
#include "agent/tls/x509_util.h"

namespace meshlet::tls {

class ClientContext {
 public:
  SslCtxPtr ctx;
  bool insecure = false;
};

class ServerContext {
 public:
  SslCtxPtr ctx;
};

namespace {

BioPtr memBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Loads every certificate of a PEM bundle into `store`; an empty bundle is an error.
Status addCertificates(X509_STORE* store, const std::string& pem) {
  auto certs = readCerts(pem, "CA bundle");
  if (!certs.ok()) return certs.error();
  for (size_t i = 0; i < certs->size(); ++i) {
    if (X509_STORE_add_cert(store, (*certs)[i].get()) != 1) {
      return opensslError("CA bundle: cannot add certificate " + std::to_string(i + 1));
    }
  }
  return Status::Ok();
}

// Certificate chain (leaf first) and private key into `ctx`.
Status useCertAndKey(SSL_CTX* ctx, const std::string& cert_pem, const std::string& key_pem) {
  auto chain = readCerts(cert_pem, "certificate");
  if (!chain.ok()) return chain.error();
  if (SSL_CTX_use_certificate(ctx, chain->front().get()) != 1) return opensslError("certificate");
  for (size_t i = 1; i < chain->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, (*chain)[i].get()) != 1) {
      return opensslError("certificate chain");
    }
  }
  BioPtr kbio = memBio(key_pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
  if (!key) return opensslError("private key: no PEM private key found");
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) return opensslError("private key");
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return opensslError("private key does not match the certificate");
  }
  return Status::Ok();
}

SslCtxPtr newCtx(const SSL_METHOD* method) {
  SslCtxPtr ctx(SSL_CTX_new(method));
  if (!ctx) return ctx;
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // A peer that drops the TCP connection without close_notify is an end of stream; HTTP's
  // own framing (Content-Length, chunked) says whether anything was cut short.
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_AUTO_RETRY);
  return ctx;
}

// Writing to a socket the peer has closed raises SIGPIPE, which kills a process that did not
// ignore it. OpenSSL writes with write(2) (no MSG_NOSIGNAL), so while it may write, SIGPIPE is
// blocked for this thread and a SIGPIPE it caused is consumed before unblocking.
class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~NoSigpipe() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{};
        int saved = errno;
        sigtimedwait(&pipe_, nullptr, &zero);
        errno = saved;
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

bool isIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

Result<std::shared_ptr<const ClientContext>> makeClientContext(const ClientTlsOptions& opts) {
  auto c = std::make_shared<ClientContext>();
  c->ctx = newCtx(TLS_client_method());
  if (!c->ctx) return opensslError("TLS client context");
  c->insecure = opts.insecure_skip_verify;
  if (!c->insecure) {
    SSL_CTX_set_verify(c->ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (opts.ca_pem.empty()) {
      if (SSL_CTX_set_default_verify_paths(c->ctx.get()) != 1) {
        return opensslError("TLS client context: system CA certificates");
      }
    } else if (auto st = addCertificates(SSL_CTX_get_cert_store(c->ctx.get()), opts.ca_pem); !st) {
      return st.error();
    }
  } else {
    SSL_CTX_set_verify(c->ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  if (!opts.cert_pem.empty() || !opts.key_pem.empty()) {
    if (opts.cert_pem.empty()) return Error("client key given without a client certificate");
    if (opts.key_pem.empty()) return Error("client certificate given without a client key");
    if (auto st = useCertAndKey(c->ctx.get(), opts.cert_pem, opts.key_pem); !st) {
      return st.error().wrap("client certificate");
    }
  }
  return std::shared_ptr<const ClientContext>(std::move(c));
}

Result<std::shared_ptr<const ServerContext>> makeServerContext(const std::string& cert_pem,
                                                               const std::string& key_pem) {
  auto s = std::make_shared<ServerContext>();
  s->ctx = newCtx(TLS_server_method());
  if (!s->ctx) return opensslError("TLS server context");
  if (auto st = useCertAndKey(s->ctx.get(), cert_pem, key_pem); !st) {
    return st.error().wrap("server certificate");
  }
  return std::shared_ptr<const ServerContext>(std::move(s));
}

struct TlsConn::Impl {
  int fd = -1;
  SslPtr ssl;
  ~Impl() {
    ssl.reset();
    if (fd >= 0) ::close(fd);
  }
};

TlsConn::TlsConn(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsConn::~TlsConn() = default;
int TlsConn::fd() const { return impl_->fd; }

namespace {

// The error of a failed SSL_* call, with errno for timeouts and resets.
Error sslError(SSL* ssl, int rc, const std::string& what) {
  int saved = errno;
  int e = SSL_get_error(ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
      (e == SSL_ERROR_SYSCALL && (saved == EAGAIN || saved == EWOULDBLOCK))) {
    ERR_clear_error();
    return Error(what + ": timed out", EAGAIN);
  }
  if (e == SSL_ERROR_SYSCALL && saved != 0) {
    ERR_clear_error();
    return Error::fromErrno(what, saved);
  }
  if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    return Error(what + ": connection closed by the peer", ECONNRESET);
  }
  return opensslError(what);
}

}  // namespace

Result<std::unique_ptr<TlsConn>> TlsConn::connect(int fd, const ClientContext& ctx,
                                                  const std::string& host) {
  auto impl = std::make_unique<Impl>();
  impl->fd = fd;
  ERR_clear_error();
  impl->ssl.reset(SSL_new(ctx.ctx.get()));
  if (!impl->ssl) return opensslError("TLS");
  SSL* ssl = impl->ssl.get();
  if (!ctx.insecure) {
    if (isIpLiteral(host)) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1) {
        return opensslError("TLS: server address " + host);
      }
    } else {
      if (SSL_set1_host(ssl, host.c_str()) != 1) return opensslError("TLS: server name " + host);
      SSL_set_tlsext_host_name(ssl, host.c_str());
    }
  }
  if (SSL_set_fd(ssl, fd) != 1) return opensslError("TLS");
  NoSigpipe guard;
  int rc = SSL_connect(ssl);
  if (rc != 1) {
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return Error(std::string("TLS handshake with ") + host +
                   ": server certificate not trusted: " + X509_verify_cert_error_string(verify));
    }
    return sslError(ssl, rc, "TLS handshake with " + host);
  }
  return std::unique_ptr<TlsConn>(new TlsConn(std::move(impl)));
}

Result<std::unique_ptr<TlsConn>> TlsConn::accept(int fd, const ServerContext& ctx) {
  auto impl = std::make_unique<Impl>();
  impl->fd = fd;
  ERR_clear_error();
  impl->ssl.reset(SSL_new(ctx.ctx.get()));
  if (!impl->ssl) return opensslError("TLS");
  if (SSL_set_fd(impl->ssl.get(), fd) != 1) return opensslError("TLS");
  NoSigpipe guard;
  int rc = SSL_accept(impl->ssl.get());
  if (rc != 1) return sslError(impl->ssl.get(), rc, "TLS handshake");
  return std::unique_ptr<TlsConn>(new TlsConn(std::move(impl)));
}

Result<size_t> TlsConn::read(char* buf, size_t len) {
  ERR_clear_error();
  size_t n = 0;
  errno = 0;
  int rc = SSL_read_ex(impl_->ssl.get(), buf, len, &n);
  if (rc == 1) return n;
  int e = SSL_get_error(impl_->ssl.get(), rc);
  if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
    ERR_clear_error();
    return size_t{0};
  }
  return sslError(impl_->ssl.get(), rc, "TLS read");
}

Status TlsConn::write(std::string_view data) {
  NoSigpipe guard;
  while (!data.empty()) {
    ERR_clear_error();
    size_t n = 0;
    errno = 0;
    int rc = SSL_write_ex(impl_->ssl.get(), data.data(), data.size(), &n);
    if (rc != 1) return sslError(impl_->ssl.get(), rc, "TLS write");
    data.remove_prefix(n);
  }
  return Status::Ok();
}

void TlsConn::close() {
  NoSigpipe guard;
  ERR_clear_error();
  if (impl_->ssl) SSL_shutdown(impl_->ssl.get());
  ERR_clear_error();
}

}  // namespace meshlet::tls
