// WorkloadCerts: which SVIDs exist, when they are renewed, and what happens when the CA changes.
#include "agent/identity/workload_certs.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tests/unit/support/temp_dir.h"

namespace meshlet {
namespace {

using meshlet::testing::TempDir;

constexpr int64_t kT0 = 1'900'000'000;
const std::string kWeb = "spiffe://cluster.local/ns/shop/sa/web";
const std::string kDb = "spiffe://cluster.local/ns/shop/sa/db";

void initCa(const TempDir& dir, bool force = false) {
  tls::CaInitOptions o;
  o.dir = dir.path();
  o.force = force;
  auto r = tls::initCa(o, kT0 - 10);
  ASSERT_TRUE(r.ok()) << r.error().message();
}

WorkloadCerts certsFor(const TempDir& dir, int64_t ttl = 3600, int64_t rollover_delay = 0) {
  IdentityOptions o;
  o.ca_dir = dir.path();
  o.svid_ttl_seconds = ttl;
  o.rollover_delay_seconds = rollover_delay;
  return WorkloadCerts(o);
}

TEST(WorkloadCerts, IssuesOnePerIdentityAndDropsUnused) {
  TempDir dir("meshlet-ca");
  initCa(dir);
  WorkloadCerts c = certsFor(dir);
  ASSERT_TRUE(c.reloadCa().ok());
  auto out = c.reconcile({kWeb, kDb}, kT0);
  EXPECT_EQ(out.issued, 2);
  EXPECT_TRUE(out.errors.empty());
  ASSERT_NE(c.find(kWeb), nullptr);
  EXPECT_EQ(c.find(kWeb)->info.subject, kWeb);
  auto web = c.find(kWeb);

  out = c.reconcile({kWeb}, kT0 + 10);
  EXPECT_EQ(out.issued, 0);
  EXPECT_EQ(out.renewed, 0);
  EXPECT_EQ(out.removed, 1);
  EXPECT_EQ(c.find(kDb), nullptr);
  EXPECT_EQ(c.find(kWeb), web);  // untouched before half-life
}

TEST(WorkloadCerts, RenewsAtHalfLifeAndOldCopiesStayUsable) {
  TempDir dir("meshlet-ca");
  initCa(dir);
  WorkloadCerts c = certsFor(dir, 3600);
  ASSERT_TRUE(c.reloadCa().ok());
  c.reconcile({kWeb}, kT0);
  auto first = c.find(kWeb);
  // Issued from kT0-60 to kT0+3600: half-life at kT0+1770.
  EXPECT_EQ(WorkloadCerts::renewAt(first->info), kT0 + 1770);
  EXPECT_EQ(c.reconcile({kWeb}, kT0 + 1769).renewed, 0);
  EXPECT_EQ(c.reconcile({kWeb}, kT0 + 1770).renewed, 1);
  auto second = c.find(kWeb);
  EXPECT_NE(second->info.serial, first->info.serial);
  // Whoever still holds the first (an open connection) holds a valid certificate.
  EXPECT_TRUE(
      tls::verifySvid(first->cert_pem, c.ca()->trustBundlePem(), "cluster.local", kT0 + 1770).ok());
}

TEST(WorkloadCerts, NoCaMeansNoCertificatesAndAClearError) {
  TempDir dir("meshlet-ca");
  WorkloadCerts c = certsFor(dir);
  auto st = c.reloadCa();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(c.caError().find("ca-cert.pem"), std::string::npos) << c.caError();
  EXPECT_FALSE(c.hasCa());
  EXPECT_EQ(c.reconcile({kWeb}, kT0).issued, 0);
  // The CA appears later (meshlet ca init, a mounted Secret): picked up on the next reload.
  initCa(dir);
  ASSERT_TRUE(c.reloadCa().ok());
  EXPECT_EQ(c.reconcile({kWeb}, kT0).issued, 1);
}

TEST(WorkloadCerts, NewSigningRootRenewsEverythingBadCaKeepsTheLastGood) {
  TempDir dir("meshlet-ca");
  initCa(dir);
  WorkloadCerts c = certsFor(dir);
  ASSERT_TRUE(c.reloadCa().ok());
  c.reconcile({kWeb, kDb}, kT0);
  std::string old_root = c.ca()->signingRoot().serial;

  // A broken CA file: the last good CA stays, certificates keep being served.
  std::string good_key = dir.read("ca-key.pem");
  dir.write("ca-key.pem", "garbage");
  EXPECT_FALSE(c.reloadCa().ok());
  EXPECT_TRUE(c.hasCa());
  EXPECT_EQ(c.ca()->signingRoot().serial, old_root);
  EXPECT_NE(c.find(kWeb), nullptr);
  dir.write("ca-key.pem", good_key);

  // A rotated root: every SVID is renewed so it chains to the new one.
  initCa(dir, /*force=*/true);
  ASSERT_TRUE(c.reloadCa().ok());
  EXPECT_NE(c.ca()->signingRoot().serial, old_root);
  auto out = c.reconcile({kWeb, kDb}, kT0 + 5);
  EXPECT_EQ(out.renewed, 2);
  EXPECT_TRUE(
      tls::verifySvid(c.find(kWeb)->cert_pem, c.ca()->trustBundlePem(), "cluster.local", kT0 + 5)
          .ok());
}

// A replaced root that the new bundle still trusts keeps signing for the rollover delay:
// peers that have not read the new root yet keep accepting this node's certificates.
TEST(WorkloadCerts, ANewRootTakesOverAfterTheRolloverDelay) {
  TempDir dir("meshlet-ca");
  initCa(dir);
  WorkloadCerts c = certsFor(dir, 3600, /*rollover_delay=*/60);
  ASSERT_TRUE(c.reloadCa().ok());
  c.reconcile({kWeb}, kT0);
  auto web_before = c.find(kWeb);
  const std::string old_root_pem = dir.read("ca-cert.pem");
  const std::string old_root = c.ca()->signingRoot().serial;

  // The documented one-step rotation: the old root into the bundle, a new root signs.
  dir.write("trust-bundle.pem", old_root_pem);
  initCa(dir, /*force=*/true);
  ASSERT_TRUE(c.reloadCa().ok());
  const std::string new_root_pem = dir.read("ca-cert.pem");
  EXPECT_NE(c.ca()->signingRoot().serial, old_root);
  EXPECT_EQ(c.signer()->signingRoot().serial, old_root);

  auto out = c.reconcile({kWeb, kDb}, kT0 + 5);
  EXPECT_EQ(out.renewed, 0);
  EXPECT_EQ(out.issued, 1);
  EXPECT_EQ(c.find(kWeb), web_before);  // untouched
  EXPECT_EQ(c.rolloverAt(), kT0 + 65);
  // Issued meanwhile by the old root: a peer that knows only the old root accepts it.
  EXPECT_TRUE(tls::verifySvid(c.find(kDb)->cert_pem, old_root_pem, "cluster.local", kT0 + 5).ok());
  EXPECT_FALSE(tls::verifySvid(c.find(kDb)->cert_pem, new_root_pem, "cluster.local", kT0 + 5).ok());

  EXPECT_EQ(c.reconcile({kWeb, kDb}, kT0 + 64).renewed, 0);
  out = c.reconcile({kWeb, kDb}, kT0 + 65);
  EXPECT_EQ(out.renewed, 2);
  EXPECT_EQ(c.signer(), c.ca());
  EXPECT_EQ(c.rolloverAt(), 0);
  for (const auto& id : {kWeb, kDb}) {
    EXPECT_TRUE(tls::verifySvid(c.find(id)->cert_pem, new_root_pem, "cluster.local", kT0 + 65).ok())
        << id;
  }
}

// A new root whose bundle no longer holds the old one withdraws it: the new root signs at once.
TEST(WorkloadCerts, AWithdrawnRootIsReplacedAtOnce) {
  TempDir dir("meshlet-ca");
  initCa(dir);
  WorkloadCerts c = certsFor(dir, 3600, /*rollover_delay=*/60);
  ASSERT_TRUE(c.reloadCa().ok());
  c.reconcile({kWeb}, kT0);
  initCa(dir, /*force=*/true);  // no trust-bundle.pem: the old root is not trusted any more
  ASSERT_TRUE(c.reloadCa().ok());
  EXPECT_EQ(c.signer(), c.ca());
  EXPECT_EQ(c.reconcile({kWeb}, kT0 + 5).renewed, 1);
  EXPECT_TRUE(
      tls::verifySvid(c.find(kWeb)->cert_pem, dir.read("ca-cert.pem"), "cluster.local", kT0 + 5)
          .ok());
}

}  // namespace
}  // namespace meshlet
