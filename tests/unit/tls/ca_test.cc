// The certificate authority: `meshlet ca init`'s files, SVID issuance,
// verification, root rotation through the trust bundle. The openssl command
// line checks what we write, so a bug in our own reading code cannot hide a bug
// in our writing code.
#include "agent/tls/ca.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <string>

#include "tests/unit/support/temp_dir.h"

namespace meshlet::tls {
namespace {

using meshlet::testing::TempDir;

constexpr const char* kTd = "cluster.local";
const int64_t kNow = static_cast<int64_t>(time(nullptr));

// Runs a shell command; returns its exit status and fills `out` with stdout+stderr.
int run(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) text.append(buf, n);
  int rc = pclose(p);
  if (out) *out = text;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

mode_t modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

CertificateAuthority makeCa(const TempDir& dir, const std::string& td = kTd) {
  CaInitOptions opts;
  opts.dir = dir.path();
  opts.trust_domain = td;
  auto info = initCa(opts, kNow);
  EXPECT_TRUE(info.ok()) << info.error().message();
  auto ca = CertificateAuthority::load(dir.path(), td);
  EXPECT_TRUE(ca.ok()) << ca.error().message();
  return std::move(*ca);
}

TEST(CaInit, WritesRootAndKeyWithTheRightModes) {
  TempDir dir("meshlet-ca");
  CaInitOptions opts;
  opts.dir = dir.path() + "/ca";
  auto info = initCa(opts, kNow);
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_TRUE(info->is_ca);
  EXPECT_EQ(info->subject, "CN=meshlet root CA,O=cluster.local");
  EXPECT_EQ(modeOf(opts.dir + "/ca-key.pem"), 0600u);
  EXPECT_EQ(modeOf(opts.dir + "/ca-cert.pem"), 0644u);
  EXPECT_EQ(modeOf(opts.dir), 0700u);
  EXPECT_NEAR(info->not_after - info->not_before, 10ll * 365 * 24 * 3600 + 60, 2);

  // openssl agrees: a self-signed CA with an EC P-256 key that matches.
  std::string out;
  ASSERT_EQ(
      run("openssl verify -CAfile " + opts.dir + "/ca-cert.pem " + opts.dir + "/ca-cert.pem", &out),
      0)
      << out;
  ASSERT_EQ(run("openssl x509 -noout -text -in " + opts.dir + "/ca-cert.pem", &out), 0);
  EXPECT_NE(out.find("CA:TRUE"), std::string::npos) << out;
  EXPECT_NE(out.find("prime256v1"), std::string::npos) << out;
  EXPECT_NE(out.find("URI:spiffe://cluster.local"), std::string::npos) << out;
  ASSERT_EQ(run("openssl pkey -noout -text -in " + opts.dir + "/ca-key.pem", &out), 0) << out;
  EXPECT_NE(out.find("P-256"), std::string::npos) << out;
}

TEST(CaInit, RefusesToOverwriteUnlessForced) {
  TempDir dir("meshlet-ca");
  CaInitOptions opts;
  opts.dir = dir.path();
  ASSERT_TRUE(initCa(opts, kNow).ok());
  std::string before = dir.read("ca-cert.pem");
  auto again = initCa(opts, kNow);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("already holds a CA"), std::string::npos);
  EXPECT_EQ(dir.read("ca-cert.pem"), before);
  opts.force = true;
  ASSERT_TRUE(initCa(opts, kNow).ok());
  EXPECT_NE(dir.read("ca-cert.pem"), before);
}

TEST(CaInit, RejectsBadOptions) {
  TempDir dir("meshlet-ca");
  CaInitOptions opts;
  opts.dir = dir.path();
  opts.trust_domain = "Cluster.Local";
  auto r = initCa(opts, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("lowercase"), std::string::npos) << r.error().message();
  opts.trust_domain = kTd;
  opts.validity_seconds = 60;
  EXPECT_FALSE(initCa(opts, kNow).ok());
}

TEST(Svid, IssuedCertificateIsAValidSpiffeSvid) {
  TempDir dir("meshlet-ca");
  CertificateAuthority ca = makeCa(dir);
  std::string id = spiffeId(kTd, "shop", "web");
  EXPECT_EQ(id, "spiffe://cluster.local/ns/shop/sa/web");
  auto svid = ca.issue(id, 3600, kNow);
  ASSERT_TRUE(svid.ok()) << svid.error().message();
  EXPECT_EQ(svid->info.subject, id);
  EXPECT_FALSE(svid->info.is_ca);
  EXPECT_EQ(svid->info.not_before, kNow - 60);
  EXPECT_EQ(svid->info.not_after, kNow + 3600);
  EXPECT_EQ(svid->info.issuer, "CN=meshlet root CA,O=cluster.local");
  EXPECT_EQ(svid->chain_pem, ca.trustBundlePem());

  auto verified = verifySvid(svid->cert_pem, ca.trustBundlePem(), kTd, kNow);
  ASSERT_TRUE(verified.ok()) << verified.error().message();
  EXPECT_EQ(*verified, id);

  // openssl: chains to the root, is a TLS client and server certificate, carries the id.
  dir.write("leaf.pem", svid->cert_pem);
  dir.write("leaf-key.pem", svid->key_pem);
  std::string out;
  ASSERT_EQ(run("openssl verify -purpose sslclient -CAfile " + dir.file("ca-cert.pem") + " " +
                    dir.file("leaf.pem"),
                &out),
            0)
      << out;
  ASSERT_EQ(run("openssl verify -purpose sslserver -CAfile " + dir.file("ca-cert.pem") + " " +
                    dir.file("leaf.pem"),
                &out),
            0)
      << out;
  ASSERT_EQ(run("openssl x509 -noout -text -in " + dir.file("leaf.pem"), &out), 0);
  EXPECT_NE(out.find("URI:" + id), std::string::npos) << out;
  EXPECT_NE(out.find("CA:FALSE"), std::string::npos) << out;
  EXPECT_NE(out.find("X509v3 Subject Alternative Name: critical"), std::string::npos) << out;
  // The key belongs to the certificate.
  std::string a, b;
  ASSERT_EQ(run("openssl x509 -noout -pubkey -in " + dir.file("leaf.pem"), &a), 0);
  ASSERT_EQ(run("openssl pkey -pubout -in " + dir.file("leaf-key.pem"), &b), 0);
  EXPECT_EQ(a, b);
}

TEST(Svid, EveryIssueHasAFreshKeyAndSerial) {
  TempDir dir("meshlet-ca");
  CertificateAuthority ca = makeCa(dir);
  auto a = ca.issue(spiffeId(kTd, "shop", "web"), 3600, kNow);
  auto b = ca.issue(spiffeId(kTd, "shop", "web"), 3600, kNow);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->key_pem, b->key_pem);
  EXPECT_NE(a->info.serial, b->info.serial);
}

TEST(Svid, LifetimeNeverOutlivesTheRoot) {
  TempDir dir("meshlet-ca");
  CaInitOptions opts;
  opts.dir = dir.path();
  opts.validity_seconds = 7200;
  ASSERT_TRUE(initCa(opts, kNow).ok());
  auto ca = CertificateAuthority::load(dir.path(), kTd);
  ASSERT_TRUE(ca.ok());
  auto svid = ca->issue(spiffeId(kTd, "a", "b"), 24 * 3600, kNow);
  ASSERT_TRUE(svid.ok());
  EXPECT_EQ(svid->info.not_after, kNow + 7200);
  auto late = ca->issue(spiffeId(kTd, "a", "b"), 3600, kNow + 7200);
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.error().message().find("expired"), std::string::npos);
}

TEST(Svid, IssueRejectsBadIdsAndLifetimes) {
  TempDir dir("meshlet-ca");
  CertificateAuthority ca = makeCa(dir);
  EXPECT_FALSE(ca.issue("spiffe://other.domain/ns/a/sa/b", 3600, kNow).ok());
  EXPECT_FALSE(ca.issue("https://cluster.local/ns/a/sa/b", 3600, kNow).ok());
  EXPECT_FALSE(ca.issue("spiffe://cluster.local/ns/a", 3600, kNow).ok());
  EXPECT_FALSE(ca.issue("spiffe://cluster.local/ns/a/sa/b/extra", 3600, kNow).ok());
  EXPECT_FALSE(ca.issue("spiffe://cluster.local/ns//sa/b", 3600, kNow).ok());
  EXPECT_FALSE(ca.issue(spiffeId(kTd, "a", "b"), 10, kNow).ok());
}

TEST(Svid, ParseSpiffeId) {
  auto p = parseSpiffeId("spiffe://example.org/ns/shop/sa/web-1");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->trust_domain, "example.org");
  EXPECT_EQ(p->ns, "shop");
  EXPECT_EQ(p->sa, "web-1");
  for (const char* bad :
       {"", "spiffe://", "spiffe://td", "spiffe://TD/ns/a/sa/b", "spiffe://td/sa/b/ns/a",
        "spiffe://td/ns/a/sa/b c", "spiffe://td/ns/a/sa/"}) {
    EXPECT_FALSE(parseSpiffeId(bad).ok()) << bad;
  }
}

TEST(Verify, RejectsWhatIsNotAValidSvidHere) {
  TempDir d1("meshlet-ca"), d2("meshlet-ca"), d3("meshlet-ca");
  CertificateAuthority ca = makeCa(d1);
  CertificateAuthority other = makeCa(d2);
  CertificateAuthority foreign = makeCa(d3, "example.org");
  auto svid = ca.issue(spiffeId(kTd, "a", "b"), 3600, kNow);
  ASSERT_TRUE(svid.ok());

  auto expect_rejected = [](const Result<std::string>& r, const std::string& why) {
    ASSERT_FALSE(r.ok()) << "accepted: " << *r;
    EXPECT_NE(r.error().message().find(why), std::string::npos) << r.error().message();
  };
  // Signed by a root we do not trust.
  expect_rejected(verifySvid(svid->cert_pem, other.trustBundlePem(), kTd, kNow),
                  "unable to get local issuer certificate");
  // Expired, and not yet valid.
  expect_rejected(verifySvid(svid->cert_pem, ca.trustBundlePem(), kTd, kNow + 3601), "expired");
  expect_rejected(verifySvid(svid->cert_pem, ca.trustBundlePem(), kTd, kNow - 3600),
                  "not yet valid");
  // A CA certificate presented as a workload's.
  expect_rejected(verifySvid(ca.trustBundlePem(), ca.trustBundlePem(), kTd, kNow), "CA");
  // Another trust domain's workload, even with its root trusted.
  auto alien = foreign.issue(spiffeId("example.org", "a", "b"), 3600, kNow);
  ASSERT_TRUE(alien.ok());
  expect_rejected(
      verifySvid(alien->cert_pem, ca.trustBundlePem() + foreign.trustBundlePem(), kTd, kNow),
      "not in trust domain");
  // Garbage.
  expect_rejected(verifySvid("not a certificate", ca.trustBundlePem(), kTd, kNow), "no PEM");
}

TEST(Load, ReportsEveryBrokenCaDirectory) {
  TempDir good("meshlet-ca"), other("meshlet-ca");
  makeCa(good);
  makeCa(other);
  auto expect_error = [](const TempDir& d, const std::string& why) {
    auto r = CertificateAuthority::load(d.path(), kTd);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find(why), std::string::npos) << r.error().message();
  };
  {
    TempDir d("meshlet-ca");
    expect_error(d, "ca-cert.pem");  // nothing there
  }
  {
    TempDir d("meshlet-ca");
    d.write("ca-cert.pem", good.read("ca-cert.pem"));
    d.write("ca-key.pem", other.read("ca-key.pem"));
    expect_error(d, "does not match");
  }
  {
    TempDir d("meshlet-ca");
    d.write("ca-cert.pem", good.read("ca-cert.pem") + other.read("ca-cert.pem"));
    d.write("ca-key.pem", good.read("ca-key.pem"));
    expect_error(d, "holds 2 certificates");
  }
  {
    TempDir d("meshlet-ca");
    d.write("ca-cert.pem", good.read("ca-cert.pem"));
    d.write("ca-key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    expect_error(d, "not a PEM private key");
  }
  {
    // A leaf in the signing slot.
    auto ca = CertificateAuthority::load(good.path(), kTd);
    ASSERT_TRUE(ca.ok());
    auto leaf = ca->issue(spiffeId(kTd, "a", "b"), 3600, kNow);
    ASSERT_TRUE(leaf.ok());
    TempDir d("meshlet-ca");
    d.write("ca-cert.pem", leaf->cert_pem);
    d.write("ca-key.pem", leaf->key_pem);
    expect_error(d, "not a CA certificate");
  }
  {
    TempDir d("meshlet-ca");
    d.write("ca-cert.pem", good.read("ca-cert.pem"));
    d.write("ca-key.pem", good.read("ca-key.pem"));
    d.write("trust-bundle.pem", "garbage");
    expect_error(d, "trust-bundle.pem");
  }
}

// Root rotation: the new CA trusts the old root through its bundle, so
// workloads holding certificates from the old root keep being accepted while
// they rotate to the new one.
TEST(Load, TrustBundleCarriesTheOldRootThroughARotation) {
  TempDir dir("meshlet-ca");
  CertificateAuthority old_ca = makeCa(dir);
  auto old_svid = old_ca.issue(spiffeId(kTd, "a", "b"), 3600, kNow);
  ASSERT_TRUE(old_svid.ok());
  std::string old_root = dir.read("ca-cert.pem");

  CaInitOptions opts;
  opts.dir = dir.path();
  opts.force = true;
  ASSERT_TRUE(initCa(opts, kNow).ok());
  auto without = CertificateAuthority::load(dir.path(), kTd);
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(without->trustedRoots().size(), 1u);
  EXPECT_FALSE(verifySvid(old_svid->cert_pem, without->trustBundlePem(), kTd, kNow).ok());

  // The bundle may repeat the signing root; it is counted once.
  dir.write("trust-bundle.pem", old_root + dir.read("ca-cert.pem"));
  auto with = CertificateAuthority::load(dir.path(), kTd);
  ASSERT_TRUE(with.ok()) << with.error().message();
  ASSERT_EQ(with->trustedRoots().size(), 2u);
  EXPECT_NE(with->trustedRoots()[0].serial, with->trustedRoots()[1].serial);
  EXPECT_TRUE(verifySvid(old_svid->cert_pem, with->trustBundlePem(), kTd, kNow).ok());
  auto new_svid = with->issue(spiffeId(kTd, "a", "b"), 3600, kNow);
  ASSERT_TRUE(new_svid.ok());
  EXPECT_TRUE(verifySvid(new_svid->cert_pem, with->trustBundlePem(), kTd, kNow).ok());
  auto described = describePem(with->trustBundlePem());
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->size(), 2u);
}

}  // namespace
}  // namespace meshlet::tls
