// mTLS between workload identities: two sessions joined in memory, and real openssl peers
// (s_server, s_client) over loopback TCP so interoperability is checked against another
// implementation, not only against ourselves.
#include "agent/tls/mtls.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>
#include <thread>

#include "tests/unit/support/temp_dir.h"

namespace meshlet::tls {
namespace {

using meshlet::testing::TempDir;

constexpr const char* kTd = "cluster.local";
const int64_t kNow = static_cast<int64_t>(time(nullptr));

struct Pki {
  TempDir dir{"meshlet-mtls"};
  std::unique_ptr<CertificateAuthority> ca;
  explicit Pki(const std::string& td = kTd) {
    CaInitOptions o;
    o.dir = dir.path();
    o.trust_domain = td;
    EXPECT_TRUE(initCa(o, kNow).ok());
    auto c = CertificateAuthority::load(dir.path(), td);
    EXPECT_TRUE(c.ok()) << c.error().message();
    ca = std::make_unique<CertificateAuthority>(std::move(*c));
  }
  Svid svid(const std::string& ns, const std::string& sa) const {
    auto s = ca->issue(spiffeId(ca->trustDomain(), ns, sa), 3600, kNow);
    EXPECT_TRUE(s.ok());
    return *s;
  }
  std::shared_ptr<const MtlsContext> ctx(const Svid& s, MtlsRole role,
                                         const std::string& roots = "") const {
    auto c =
        MtlsContext::make(s, roots.empty() ? ca->trustBundlePem() : roots, ca->trustDomain(), role);
    EXPECT_TRUE(c.ok()) << c.error().message();
    return *c;
  }
};

// Moves ciphertext between the two sessions until neither has anything to say. Returns the
// first error of either side.
Status converse(MtlsSession& a, MtlsSession& b) {
  for (int i = 0; i < 20; ++i) {
    Status sa = a.pump();
    b.feed(a.takeOutput());
    Status sb = b.pump();
    a.feed(b.takeOutput());
    if (!sa) return sa;
    if (!sb) return sb;
    if (!a.hasOutput() && !b.hasOutput() && a.established() && b.established()) {
      // One more round so that anything in flight is decrypted.
      if (auto st = a.pump(); !st) return st;
      if (auto st = b.pump(); !st) return st;
      return Status::Ok();
    }
  }
  return Error("no progress");
}

TEST(Mtls, HandshakeVerifiesBothIdentitiesAndCarriesData) {
  Pki pki;
  auto client = MtlsSession::make(pki.ctx(pki.svid("shop", "client"), MtlsRole::kClient),
                                  spiffeId(kTd, "shop", "web"));
  auto server = MtlsSession::make(pki.ctx(pki.svid("shop", "web"), MtlsRole::kServer));
  ASSERT_TRUE(client.ok() && server.ok());
  ASSERT_TRUE(converse(**client, **server).ok());
  EXPECT_TRUE((*client)->established());
  EXPECT_TRUE((*server)->established());
  EXPECT_EQ((*client)->peerId(), "spiffe://cluster.local/ns/shop/sa/web");
  EXPECT_EQ((*server)->peerId(), "spiffe://cluster.local/ns/shop/sa/client");
  EXPECT_EQ((*client)->alpn(), "h2");
  EXPECT_EQ((*server)->alpn(), "h2");
  EXPECT_EQ((*client)->version(), "TLSv1.3");

  // A megabyte one way, a line the other way; records are split and joined as needed.
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + 3);
  ASSERT_TRUE((*client)->write(big).ok());
  ASSERT_TRUE((*server)->write("pong\n").ok());
  std::string got, back;
  for (int i = 0; i < 10 && (got.size() < big.size() || back.size() < 5); ++i) {
    (*server)->feed((*client)->takeOutput());
    (*client)->feed((*server)->takeOutput());
    ASSERT_TRUE((*server)->pump().ok());
    ASSERT_TRUE((*client)->pump().ok());
    got += (*server)->takePlain();
    back += (*client)->takePlain();
  }
  EXPECT_EQ(got, big);
  EXPECT_EQ(back, "pong\n");

  (*client)->shutdown();
  (*server)->feed((*client)->takeOutput());
  ASSERT_TRUE((*server)->pump().ok());
  EXPECT_TRUE((*server)->peerClosed());
}

TEST(Mtls, ServerFromAnotherCaIsRejected) {
  Pki pki, other;
  auto client = MtlsSession::make(pki.ctx(pki.svid("shop", "client"), MtlsRole::kClient));
  auto server = MtlsSession::make(other.ctx(other.svid("shop", "web"), MtlsRole::kServer,
                                            other.ca->trustBundlePem() + pki.ca->trustBundlePem()));
  ASSERT_TRUE(client.ok() && server.ok());
  Status st = converse(**client, **server);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find(
                "peer certificate rejected: unable to get local issuer certificate"),
            std::string::npos)
      << st.error().message();
  EXPECT_FALSE((*client)->established());
}

TEST(Mtls, ClientFromAnotherCaIsRejectedByTheServer) {
  Pki pki, other;
  auto client = MtlsSession::make(other.ctx(other.svid("shop", "client"), MtlsRole::kClient,
                                            other.ca->trustBundlePem() + pki.ca->trustBundlePem()));
  auto server = MtlsSession::make(pki.ctx(pki.svid("shop", "web"), MtlsRole::kServer));
  ASSERT_TRUE(client.ok() && server.ok());
  Status st = converse(**client, **server);
  ASSERT_FALSE(st.ok());
  EXPECT_FALSE((*server)->established());
  EXPECT_TRUE((*server)->peerId().empty());
}

TEST(Mtls, ClientRejectsAServerWithTheWrongIdentity) {
  Pki pki;
  auto client = MtlsSession::make(pki.ctx(pki.svid("shop", "client"), MtlsRole::kClient),
                                  spiffeId(kTd, "shop", "web"));
  auto server = MtlsSession::make(pki.ctx(pki.svid("shop", "db"), MtlsRole::kServer));
  ASSERT_TRUE(client.ok() && server.ok());
  Status st = converse(**client, **server);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("expected spiffe://cluster.local/ns/shop/sa/web, the peer is "
                                      "spiffe://cluster.local/ns/shop/sa/db"),
            std::string::npos)
      << st.error().message();
}

TEST(Mtls, PeerOfAnotherTrustDomainIsRejectedEvenWithItsRootTrusted) {
  Pki pki, foreign("example.org");
  std::string both = pki.ca->trustBundlePem() + foreign.ca->trustBundlePem();
  auto client =
      MtlsSession::make(foreign.ctx(foreign.svid("shop", "client"), MtlsRole::kClient, both));
  auto server = MtlsSession::make(pki.ctx(pki.svid("shop", "web"), MtlsRole::kServer, both));
  ASSERT_TRUE(client.ok() && server.ok());
  Status st = converse(**client, **server);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("not in trust domain"), std::string::npos)
      << st.error().message();
}

// --- real openssl peers over loopback TCP ---

int listenLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 1) != 0) return -1;
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// Drives a session over a blocking socket until `done` holds or 5 s pass.
bool drive(int fd, MtlsSession& s, const std::function<bool()>& done, std::string* plain) {
  timeval tv{0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!s.pump()) return false;
    std::string out = s.takeOutput();
    if (!out.empty() && send(fd, out.data(), out.size(), MSG_NOSIGNAL) < 0) return false;
    *plain += s.takePlain();
    if (done()) return true;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) s.feed(std::string_view(buf, static_cast<size_t>(n)));
    if (n == 0) return done();
  }
  return false;
}

pid_t spawn(const std::string& cmd, int* stdin_fd, const std::string& log) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[0], 0);
    close(p[1]);
    execl("/bin/sh", "sh", "-c", (cmd + " >" + log + " 2>&1").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[0]);
  *stdin_fd = p[1];
  return pid;
}

void writePem(const TempDir& d, const std::string& name, const Svid& s) {
  d.write(name + ".pem", s.cert_pem);
  d.write(name + "-key.pem", s.key_pem);
}

TEST(MtlsInterop, OpensslServerAcceptsOurClient) {
  Pki pki;
  TempDir d("meshlet-mtls-interop");
  writePem(d, "server", pki.svid("shop", "web"));
  d.write("roots.pem", pki.ca->trustBundlePem());
  int port = 0;
  int probe = listenLoopback(&port);  // find a free port, then let s_server take it
  close(probe);
  int in = -1;
  pid_t srv = spawn(
      "exec openssl s_server -quiet -rev -naccept 1 -tls1_3 -alpn h2 -Verify 2"
      " -verify_return_error -accept 127.0.0.1:" +
          std::to_string(port) + " -cert " + d.file("server.pem") + " -key " +
          d.file("server-key.pem") + " -CAfile " + d.file("roots.pem"),
      &in, d.file("s_server.log"));
  ASSERT_GT(srv, 0);
  int fd = -1;
  for (int i = 0; i < 100 && fd < 0; ++i) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      close(fd);
      fd = -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
  }
  ASSERT_GE(fd, 0) << d.read("s_server.log");
  auto client = MtlsSession::make(pki.ctx(pki.svid("shop", "client"), MtlsRole::kClient),
                                  spiffeId(kTd, "shop", "web"));
  ASSERT_TRUE(client.ok());
  std::string plain;
  ASSERT_TRUE(drive(
      fd, **client, [&] { return (*client)->established(); }, &plain))
      << d.read("s_server.log");
  EXPECT_EQ((*client)->alpn(), "h2");
  // s_server -rev answers each line reversed.
  ASSERT_TRUE((*client)->write("meshlet\n").ok());
  EXPECT_TRUE(drive(
      fd, **client, [&] { return plain.find("telhsem") != std::string::npos; }, &plain))
      << plain << d.read("s_server.log");
  close(fd);
  close(in);
  kill(srv, SIGTERM);
  waitpid(srv, nullptr, 0);
}

TEST(MtlsInterop, OurServerVerifiesOpensslClient) {
  Pki pki;
  TempDir d("meshlet-mtls-interop");
  writePem(d, "client", pki.svid("shop", "client"));
  d.write("roots.pem", pki.ca->trustBundlePem());
  int port = 0;
  int lfd = listenLoopback(&port);
  ASSERT_GE(lfd, 0);
  int in = -1;
  pid_t cli = spawn(
      "exec openssl s_client -quiet -tls1_3 -alpn h2 -verify_return_error"
      " -connect 127.0.0.1:" +
          std::to_string(port) + " -cert " + d.file("client.pem") + " -key " +
          d.file("client-key.pem") + " -CAfile " + d.file("roots.pem"),
      &in, d.file("s_client.log"));
  ASSERT_GT(cli, 0);
  int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto server = MtlsSession::make(pki.ctx(pki.svid("shop", "web"), MtlsRole::kServer));
  ASSERT_TRUE(server.ok());
  std::string plain;
  ASSERT_TRUE(drive(
      fd, **server, [&] { return (*server)->established(); }, &plain))
      << d.read("s_client.log");
  EXPECT_EQ((*server)->peerId(), "spiffe://cluster.local/ns/shop/sa/client");
  // What s_client reads from its stdin reaches us decrypted; what we send, it prints.
  ASSERT_EQ(write(in, "from-openssl\n", 13), 13);
  EXPECT_TRUE(drive(
      fd, **server, [&] { return plain.find("from-openssl") != std::string::npos; }, &plain));
  ASSERT_TRUE((*server)->write("from-meshlet\n").ok());
  std::string out = (*server)->takeOutput();
  ASSERT_EQ(send(fd, out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
  for (int i = 0; i < 100 && d.read("s_client.log").find("from-meshlet") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  close(in);
  kill(cli, SIGTERM);
  waitpid(cli, nullptr, 0);
  close(fd);
  close(lfd);
  EXPECT_NE(d.read("s_client.log").find("from-meshlet"), std::string::npos)
      << d.read("s_client.log");
}

}  // namespace
}  // namespace meshlet::tls
