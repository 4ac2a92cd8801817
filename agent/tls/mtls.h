#pragma once
// Mutual TLS between workload identities, the transport of HBONE: TLS 1.3 only, ALPN "h2",
// both sides present an SVID and verify the other's against the trust bundle and the trust
// domain. A session does no I/O of its own: the caller moves ciphertext between it and a socket,
// so any event loop can drive it and tests can join two sessions directly. Its three queues can
// be used in place (input(): receive ciphertext into it; output(): send from it; plain():
// decrypted bytes), or through the copying helpers feed / takeOutput / takePlain.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "agent/common/byte_buf.h"
#include "agent/common/status.h"
#include "agent/tls/ca.h"

namespace meshlet::tls {

enum class MtlsRole { kClient, kServer };

// A session's ciphertext queues, both ways (what its BIO reads and writes).
struct CipherQueues {
  ByteBuf in, out;
};

// One identity's TLS settings; immutable, shared by all sessions of that identity.
class MtlsContext {
 public:
  ~MtlsContext();
  // `svid`: this side's certificate and key; `roots_pem`: every trusted root.
  static Result<std::shared_ptr<const MtlsContext>> make(const Svid& svid,
                                                         const std::string& roots_pem,
                                                         std::string trust_domain, MtlsRole role);
  MtlsRole role() const { return role_; }
  const std::string& localId() const { return local_id_; }

 private:
  friend class MtlsSession;
  MtlsContext() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  MtlsRole role_ = MtlsRole::kClient;
  std::string local_id_;
  std::string trust_domain_;
};

class MtlsSession {
 public:
  ~MtlsSession();
  MtlsSession(const MtlsSession&) = delete;
  MtlsSession& operator=(const MtlsSession&) = delete;

  // `expected_peer`: the SPIFFE id the peer must present ("" accepts any workload of the trust
  // domain; a client dialing a destination names the destination's identity).
  static Result<std::unique_ptr<MtlsSession>> make(std::shared_ptr<const MtlsContext> ctx,
                                                   std::string expected_peer = "");

  // Ciphertext that arrived from the network.
  void feed(std::string_view cipher) { wire_.in.append(cipher); }
  ByteBuf& input() { return wire_.in; }
  // Advances the handshake and decrypts what was fed into the plaintext buffer. An error is
  // final (the session is dead; send takeOutput() — it may hold an alert — and close).
  Status pump();
  bool established() const { return established_; }
  // Decrypted application bytes, taken out of the session.
  std::string takePlain();
  ByteBuf& plain() { return plain_; }
  // Encrypts application bytes (only once established).
  Status write(std::string_view plain);
  // Ciphertext to send to the network (handshake, records, alerts), taken out of the session.
  std::string takeOutput();
  bool hasOutput() const { return !wire_.out.empty(); }
  ByteBuf& output() { return wire_.out; }
  // Sends close_notify.
  void shutdown();
  // The peer sent close_notify.
  bool peerClosed() const { return peer_closed_; }

  // After the handshake: the peer's SPIFFE id, the negotiated protocol and version.
  const std::string& peerId() const { return peer_id_; }
  std::string alpn() const;
  std::string version() const;

 private:
  MtlsSession() = default;
  Status checkPeer();
  struct Impl;
  CipherQueues wire_;  // declared before impl_: the SSL's BIO uses it until the SSL is freed
  ByteBuf plain_;
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<const MtlsContext> ctx_;
  std::string expected_peer_;
  std::string peer_id_;
  bool established_ = false;
  bool peer_closed_ = false;
};

}  // namespace meshlet::tls
