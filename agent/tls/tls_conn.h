#pragma once
// A TLS connection over a connected TCP socket (OpenSSL 3, TLS 1.2 or newer), client or server
// side, with no OpenSSL type in sight: the rest of the agent (the Kubernetes source's HTTPS
// client) and the tests' fake API server use it. Blocking I/O; timeouts are the socket's
// SO_RCVTIMEO/SO_SNDTIMEO, set by whoever owns the socket.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "agent/common/status.h"

namespace meshlet::tls {

struct ClientTlsOptions {
  std::string ca_pem;  // trusted CA bundle (PEM, one or more certificates); empty: system CAs
  bool insecure_skip_verify = false;  // no server verification at all (kubeconfig's option)
  std::string cert_pem;               // client certificate chain (PEM), optional
  std::string key_pem;                // its private key (PEM), required with cert_pem
};

// Immutable once made; share it between connections and threads.
class ClientContext;
class ServerContext;

Result<std::shared_ptr<const ClientContext>> makeClientContext(const ClientTlsOptions& opts);
// A server context from a certificate chain and key (PEM), for tests and future listeners.
Result<std::shared_ptr<const ServerContext>> makeServerContext(const std::string& cert_pem,
                                                               const std::string& key_pem);

class TlsConn {
 public:
  ~TlsConn();
  TlsConn(const TlsConn&) = delete;
  TlsConn& operator=(const TlsConn&) = delete;

  // Handshakes as a client over `fd` (taken over: closed by the TlsConn, also on failure).
  // The server certificate is checked against the context's CAs and against `host`: a DNS
  // name (SAN dNSName, also sent as SNI) or an IP address literal (SAN iPAddress).
  static Result<std::unique_ptr<TlsConn>> connect(int fd, const ClientContext& ctx,
                                                  const std::string& host);
  // Handshakes as a server over `fd` (taken over).
  static Result<std::unique_ptr<TlsConn>> accept(int fd, const ServerContext& ctx);

  // Up to `len` bytes; 0 at the peer's end of stream. A timeout is an error with EAGAIN.
  Result<size_t> read(char* buf, size_t len);
  Status write(std::string_view data);
  // Sends close_notify (best effort).
  void close();
  int fd() const;

 private:
  struct Impl;
  explicit TlsConn(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshlet::tls
