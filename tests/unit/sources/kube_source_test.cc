// The Kubernetes source against an in-process fake API server speaking the real wire format
// over HTTPS: lists and pagination, watch events, bookmarks, 410 Gone, dropped connections,
// token rotation and 401, CRDs not installed, v1 → v1beta1, the server going away.
#include "agent/sources/kube_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "tests/lib/fake_apiserver.h"

namespace fs = std::filesystem;

namespace meshlet {
namespace {

using testing::FakeApiServer;
using testing::FakeEndpoint;
using testing::FakeJson;

constexpr const char* kNs = "/api/v1/namespaces";
constexpr const char* kSvc = "/api/v1/services";
constexpr const char* kEps = "/apis/discovery.k8s.io/v1/endpointslices";
constexpr const char* kPods = "/api/v1/pods";
constexpr const char* kVsV1 = "/apis/networking.istio.io/v1/virtualservices";
constexpr const char* kVsV1beta1 = "/apis/networking.istio.io/v1beta1/virtualservices";
constexpr const char* kPaV1 = "/apis/security.istio.io/v1/peerauthentications";

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
}

class KubeSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("meshlet-kube-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::string err = testing::makeTestPki(dir_);
    ASSERT_EQ(err, "");
    server_ = std::make_unique<FakeApiServer>(dir_);
    server_->serve(kNs, "NamespaceList", "v1", "Namespace");
    server_->serve(kSvc, "ServiceList", "v1", "Service");
    server_->serve(kEps, "EndpointSliceList", "discovery.k8s.io/v1", "EndpointSlice");
    server_->serve(kPods, "PodList", "v1", "Pod");
    server_->setToken("token-one");
    ASSERT_TRUE(server_->start());
    writeFile(dir_ + "/token", "token-one\n");
  }
  void TearDown() override {
    if (source_) source_->stop();
    source_.reset();
    server_.reset();
    fs::remove_all(dir_);
  }

  KubeConfig config() {
    KubeConfig c;
    c.origin = "test";
    c.host = "127.0.0.1";
    c.port = server_->port();
    c.ca_pem = testing::readText(dir_ + "/ca.crt");
    c.token_file = dir_ + "/token";
    return c;
  }
  KubeSourceOptions fast() {
    KubeSourceOptions o;
    o.watch_timeout_s = 5;
    o.backoff_initial_ms = 20;
    o.backoff_max_ms = 200;
    o.crd_recheck_ms = 300;
    o.connect_timeout_ms = 1000;
    o.io_timeout_ms = 2000;
    return o;
  }
  void startSource(KubeSourceOptions o) {
    source_ = std::make_unique<KubeSource>(config(), o);
    ASSERT_TRUE(source_->start().ok());
  }
  void startSource() { startSource(fast()); }

  // Takes snapshots until `pred` holds on the latest one.
  std::shared_ptr<Snapshot> waitSnapshot(const std::function<bool(const Snapshot&)>& pred,
                                         int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto s = source_->take()) last_ = s;
      if (last_ && pred(*last_)) return last_;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return nullptr;
  }
  bool waitStatus(const std::function<bool(const KubeSourceStatus&)>& pred, int timeout_ms = 5000) {
    return server_->waitUntil([&] { return pred(source_->status()); }, timeout_ms);
  }
  const KubeResourceStatus& res(const KubeSourceStatus& s, const std::string& name) {
    for (const auto& r : s.resources) {
      if (r.resource == name) return r;
    }
    static KubeResourceStatus none;
    return none;
  }

  void seed() {
    server_->put(kNs, testing::realNamespace("shop", {{"istio.io/dataplane-mode", "meshlet"}}));
    server_->put(kSvc, testing::realService("shop", "web", "198.19.0.10", 80, 8080, "web"));
    server_->put(kEps,
                 testing::realEndpointSlice("shop", "web-abcde", "web", 8080,
                                            {{"198.18.0.2", "web-1"}, {"198.18.0.3", "web-2"}}));
    server_->put(kPods, testing::realPod("shop", "web-1", "198.18.0.2", "node-a", "web"));
    server_->put(kPods, testing::realPod("shop", "web-2", "198.18.0.3", "node-b", "web"));
  }

  std::string dir_;
  std::unique_ptr<FakeApiServer> server_;
  std::unique_ptr<KubeSource> source_;
  std::shared_ptr<Snapshot> last_;
};

size_t endpointCount(const Snapshot& s) {
  size_t n = 0;
  for (const auto& e : s.endpoint_slices) n += e.endpoints.size();
  return n;
}

TEST_F(KubeSourceTest, ListsRealShapedObjectsIntoASnapshot) {
  seed();
  startSource();
  auto s = waitSnapshot([](const Snapshot& s) { return s.pods.size() == 2; });
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->namespaces.size(), 1u);
  EXPECT_EQ(s->namespaces[0].meta.labels.at("istio.io/dataplane-mode"), "meshlet");
  ASSERT_EQ(s->services.size(), 1u);
  EXPECT_EQ(s->services[0].cluster_ips[0].toString(), "198.19.0.10");
  EXPECT_EQ(s->services[0].ports[0].target_port.number, 8080);
  ASSERT_EQ(s->endpoint_slices.size(), 1u);
  EXPECT_EQ(s->endpoint_slices[0].service_name, "web");
  EXPECT_EQ(s->endpoint_slices[0].endpoints.size(), 2u);
  EXPECT_EQ(s->endpoint_slices[0].endpoints[0].target_pod, "web-1");
  EXPECT_TRUE(s->pods[0].ready);
  EXPECT_EQ(s->pods[0].node_name, "node-a");
  EXPECT_EQ(s->pods[0].pod_ips[0].toString(), "198.18.0.2");

  auto st = source_->status();
  EXPECT_TRUE(st.connected);
  EXPECT_TRUE(st.synced);
  EXPECT_EQ(res(st, "services").state, "synced");
  EXPECT_EQ(res(st, "services").api_version, "v1");
  EXPECT_EQ(res(st, "endpointslices.discovery.k8s.io").api_version, "discovery.k8s.io/v1");
  // The Istio CRDs are not served: not an error.
  EXPECT_EQ(res(st, "virtualservices.networking.istio.io").state, "not installed");
  EXPECT_EQ(res(st, "authorizationpolicies.security.istio.io").state, "not installed");
}

TEST_F(KubeSourceTest, NothingBeforeEveryResourceIsListed) {
  server_->unserve(kPods);  // a core resource failing: no partial snapshot
  server_->put(kSvc, testing::realService("shop", "web", "198.19.0.10", 80, 8080, "web"));
  startSource();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(source_->take(), nullptr);
  auto st = source_->status();
  EXPECT_FALSE(st.synced);
  EXPECT_EQ(res(st, "pods").state, "error");
  EXPECT_NE(res(st, "pods").error.find("404"), std::string::npos) << res(st, "pods").error;
  server_->serve(kPods, "PodList", "v1", "Pod");
  EXPECT_NE(waitSnapshot([](const Snapshot& s) { return s.services.size() == 1; }), nullptr);
}

TEST_F(KubeSourceTest, PaginatesWithLimitAndContinue) {
  server_->setPageSize(40);
  for (int i = 0; i < 100; ++i) {
    std::string ip = "198.18.1." + std::to_string(i + 1);
    server_->put(kPods, testing::realPod("shop", "p-" + std::to_string(i), ip, "node-a", "web"));
  }
  startSource();
  auto s = waitSnapshot([](const Snapshot& s) { return s.pods.size() == 100; });
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(server_->lists(kPods), 3);  // 40 + 40 + 20
}

TEST_F(KubeSourceTest, WatchEventsAddModifyDeleteAndBookmarks) {
  seed();
  startSource();
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return endpointCount(s) == 2; }), nullptr);
  ASSERT_TRUE(server_->waitUntil(
      [&] {
        return server_->watches(kSvc) >= 1 && server_->watches(kEps) >= 1 &&
               server_->watches(kPods) >= 1;
      },
      3000));

  // MODIFIED: one endpoint gone.
  server_->put(kEps, testing::realEndpointSlice("shop", "web-abcde", "web", 8080,
                                                {{"198.18.0.3", "web-2"}}));
  auto s = waitSnapshot([](const Snapshot& s) { return endpointCount(s) == 1; });
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->endpoint_slices[0].endpoints[0].address.toString(), "198.18.0.3");
  // ADDED.
  server_->put(kSvc, testing::realService("shop", "api", "198.19.0.11", 80, 8080, "api"));
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.services.size() == 2; }), nullptr);
  // DELETED.
  server_->remove(kPods, "shop", "web-1");
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.pods.size() == 1; }), nullptr);
  // BOOKMARK: the next watch resumes from the bookmark's resourceVersion.
  // (The services watch saw "api" at 1007; the bookmark is 1009: seed 5, 3 events, 1 bookmark.)
  server_->bookmark(kSvc);
  EXPECT_TRUE(server_->waitUntil(
      [&] {
        server_->dropWatches();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return server_->lastWatchRv(kSvc) == "1009";
      },
      4000))
      << server_->lastWatchRv(kSvc);
  EXPECT_EQ(server_->lists(kSvc), 1);  // resumed, not re-listed
}

TEST_F(KubeSourceTest, GoneAsAnErrorEventRelists) {
  seed();
  startSource();
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.services.size() == 1; }), nullptr);
  ASSERT_TRUE(server_->waitUntil([&] { return server_->watches(kSvc) >= 1; }, 3000));
  server_->expireWatches(kSvc);
  ASSERT_TRUE(server_->waitUntil([&] { return server_->lists(kSvc) >= 2; }, 3000));
  // Still consistent after the re-list, and events flow again.
  server_->put(kSvc, testing::realService("shop", "api", "198.19.0.11", 80, 8080, "api"));
  EXPECT_NE(waitSnapshot([](const Snapshot& s) { return s.services.size() == 2; }), nullptr);
}

TEST_F(KubeSourceTest, GoneAsAStatusCodeRelists) {
  seed();
  startSource();
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.services.size() == 1; }), nullptr);
  ASSERT_TRUE(server_->waitUntil([&] { return server_->watches(kEps) >= 1; }, 3000));
  // Changes made while the watch is cut, with the history compacted: 410 on resume.
  server_->expireWatches(kEps, /*as_status_code=*/true);
  server_->dropWatches();
  server_->remove(kEps, "shop", "web-abcde");
  ASSERT_TRUE(server_->waitUntil([&] { return server_->lists(kEps) >= 2; }, 3000));
  EXPECT_NE(waitSnapshot([](const Snapshot& s) { return s.endpoint_slices.empty(); }), nullptr);
}

TEST_F(KubeSourceTest, ReconnectsAfterDroppedConnections) {
  seed();
  startSource();
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.pods.size() == 2; }), nullptr);
  for (int i = 0; i < 3; ++i) {
    int before = server_->watches(kPods);
    server_->dropWatches();
    ASSERT_TRUE(server_->waitUntil([&] { return server_->watches(kPods) > before; }, 3000));
  }
  server_->put(kPods, testing::realPod("shop", "web-3", "198.18.0.4", "node-a", "web"));
  EXPECT_NE(waitSnapshot([](const Snapshot& s) { return s.pods.size() == 3; }), nullptr);
  EXPECT_EQ(server_->lists(kPods), 1);
}

TEST_F(KubeSourceTest, RotatedTokenIsReadAgainOn401) {
  seed();
  startSource();
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.pods.size() == 2; }), nullptr);
  // Rotate in place keeping size and mtime, so only the 401 can tell the source.
  struct stat before {};
  ASSERT_EQ(stat((dir_ + "/token").c_str(), &before), 0);
  {
    std::fstream f(dir_ + "/token", std::ios::in | std::ios::out);
    f.seekp(0);
    f << "token-two";
  }
  timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, (dir_ + "/token").c_str(), times, 0), 0);
  server_->setToken("token-two");
  server_->dropWatches();
  server_->put(kPods, testing::realPod("shop", "web-3", "198.18.0.4", "node-a", "web"));
  EXPECT_NE(waitSnapshot([](const Snapshot& s) { return s.pods.size() == 3; }), nullptr);
  EXPECT_GE(server_->unauthorized(), 1);
  EXPECT_TRUE(source_->status().connected);
}

TEST_F(KubeSourceTest, TokenFileChangeIsPickedUpWithoutA401) {
  seed();
  startSource();
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.pods.size() == 2; }), nullptr);
  // Both tokens are accepted: no 401 can tell the source, only the file's change.
  server_->setToken("token-one", "token-three-longer");
  writeFile(dir_ + "/token", "token-three-longer\n");
  server_->dropWatches();
  EXPECT_TRUE(
      server_->waitUntil([&] { return server_->lastToken() == "token-three-longer"; }, 3000));
  EXPECT_EQ(server_->unauthorized(), 0);
}

TEST_F(KubeSourceTest, PersistentUnauthorizedIsReported) {
  seed();
  server_->setToken("another-token");
  startSource();
  ASSERT_TRUE(waitStatus([](const KubeSourceStatus& s) {
    return !s.connected && s.last_error.find("401") != std::string::npos;
  }));
  auto st = source_->status();
  EXPECT_NE(st.last_error.find("rejects the credentials"), std::string::npos) << st.last_error;
  EXPECT_EQ(source_->take(), nullptr);
}

TEST_F(KubeSourceTest, CrdInstalledLaterIsPickedUp) {
  seed();
  startSource();
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.services.size() == 1; }), nullptr);
  EXPECT_EQ(res(source_->status(), "peerauthentications.security.istio.io").state, "not installed");
  server_->serve(kPaV1, "PeerAuthenticationList", "security.istio.io/v1", "PeerAuthentication");
  ASSERT_TRUE(waitStatus([&](const KubeSourceStatus& s) {
    return res(s, "peerauthentications.security.istio.io").state == "synced";
  }));
  EXPECT_EQ(res(source_->status(), "peerauthentications.security.istio.io").api_version,
            "security.istio.io/v1");
  // An object of the newly installed kind, as the API server returns it.
  FakeJson pa = {
      {"metadata",
       {{"name", "strict"},
        {"namespace", "shop"},
        {"uid", "1c2d3e4f-0000-4000-8000-000000000009"},
        {"resourceVersion", "1"},
        {"generation", 1},
        {"creationTimestamp", "2026-11-27T20:00:00Z"},
        {"managedFields",
         {{{"manager", "kubectl-client-side-apply"},
           {"operation", "Update"},
           {"apiVersion", "security.istio.io/v1"},
           {"fieldsType", "FieldsV1"},
           {"fieldsV1", {{"f:spec", {{"f:mtls", {{"f:mode", FakeJson::object()}}}}}}}}}}}},
      {"spec", {{"mtls", {{"mode", "STRICT"}}}}}};
  server_->put(kPaV1, pa);
  auto s = waitSnapshot([](const Snapshot& s) { return s.peer_authentications.size() == 1; });
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->peer_authentications[0].meta.name, "strict");
}

TEST_F(KubeSourceTest, ForbiddenIstioKindDoesNotHoldBackTheCoreKinds) {
  server_->forbid("/apis/security.istio.io/v1/authorizationpolicies");
  seed();
  startSource();
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.pods.size() == 2; }), nullptr);
  auto st = source_->status();
  EXPECT_EQ(res(st, "authorizationpolicies.security.istio.io").state, "forbidden");
  EXPECT_NE(res(st, "authorizationpolicies.security.istio.io").error.find("403"),
            std::string::npos);
}

TEST_F(KubeSourceTest, FallsBackToV1beta1WhenV1IsNotServed) {
  server_->serve(kVsV1beta1, "VirtualServiceList", "networking.istio.io/v1beta1", "VirtualService");
  seed();
  startSource();
  ASSERT_TRUE(waitStatus([&](const KubeSourceStatus& s) {
    return res(s, "virtualservices.networking.istio.io").state == "synced";
  }));
  EXPECT_EQ(res(source_->status(), "virtualservices.networking.istio.io").api_version,
            "networking.istio.io/v1beta1");
  EXPECT_TRUE(server_->waitUntil([&] { return server_->watches(kVsV1beta1) >= 1; }, 3000));
  EXPECT_EQ(server_->lists(kVsV1), 0);  // not served: the fake answers 404 without counting
}

TEST_F(KubeSourceTest, InvalidObjectIsRejectedAndThePreviousVersionStays) {
  seed();
  FakeJson bad = testing::realService("shop", "bad", "198.19.0.12", 80, 8080, "bad");
  bad["spec"]["ports"][0]["port"] = 70000;
  server_->put(kSvc, bad);
  startSource();
  auto s = waitSnapshot([](const Snapshot& s) { return s.pods.size() == 2; });
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->services.size(), 1u);  // "bad" left out, "web" there
  EXPECT_EQ(s->services[0].meta.name, "web");
  EXPECT_EQ(res(source_->status(), "services").rejected, 1u);

  // A bad update of "web": its previous version stays; a good object after it still lands.
  FakeJson web = testing::realService("shop", "web", "198.19.0.10", 80, 8080, "web");
  web["spec"]["ports"][0]["protocol"] = "SCTP";
  server_->put(kSvc, web);
  server_->put(kSvc, testing::realService("shop", "api", "198.19.0.11", 80, 8080, "api"));
  s = waitSnapshot([](const Snapshot& s) { return s.services.size() == 2; });
  ASSERT_NE(s, nullptr);
  for (const auto& v : s->services) {
    EXPECT_EQ(v.ports[0].protocol, Protocol::kTCP);
  }
  EXPECT_EQ(res(source_->status(), "services").rejected, 2u);
}

TEST_F(KubeSourceTest, DuplicateClusterIpLeavesOneServiceOut) {
  seed();
  server_->put(kSvc, testing::realService("shop", "zzz", "198.19.0.10", 80, 8080, "zzz"));
  startSource();
  auto s = waitSnapshot([](const Snapshot& s) { return s.pods.size() == 2; });
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->services.size(), 1u);
  EXPECT_EQ(s->services[0].meta.name, "web");
  // Resolved by the next change: both appear.
  server_->put(kSvc, testing::realService("shop", "zzz", "198.19.0.13", 80, 8080, "zzz"));
  EXPECT_NE(waitSnapshot([](const Snapshot& s) { return s.services.size() == 2; }), nullptr);
}

TEST_F(KubeSourceTest, LastKnownStateStaysWhileTheServerIsDown) {
  seed();
  startSource();
  ASSERT_NE(waitSnapshot([](const Snapshot& s) { return s.pods.size() == 2; }), nullptr);
  server_->stop();
  ASSERT_TRUE(waitStatus([](const KubeSourceStatus& s) { return !s.connected; }));
  EXPECT_EQ(source_->take(), nullptr);  // nothing dropped: no new snapshot at all
  EXPECT_FALSE(source_->status().last_error.empty());
  // Changes while down arrive after the restart (the history is there: resumed or re-listed).
  server_->put(kPods, testing::realPod("shop", "web-3", "198.18.0.4", "node-a", "web"));
  ASSERT_TRUE(server_->start());
  auto s = waitSnapshot([](const Snapshot& s) { return s.pods.size() == 3; }, 8000);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->services.size(), 1u);
  EXPECT_TRUE(waitStatus([](const KubeSourceStatus& s) { return s.connected; }));
}

TEST_F(KubeSourceTest, UntrustedServerCertificateIsAnError) {
  seed();
  KubeConfig c = config();
  c.ca_pem = testing::readText(dir_ + "/other-ca.crt");
  source_ = std::make_unique<KubeSource>(c, fast());
  ASSERT_TRUE(source_->start().ok());
  ASSERT_TRUE(waitStatus([](const KubeSourceStatus& s) { return !s.last_error.empty(); }));
  EXPECT_NE(source_->status().last_error.find("not trusted"), std::string::npos)
      << source_->status().last_error;
  EXPECT_FALSE(source_->status().connected);
}

TEST_F(KubeSourceTest, ServerNameIsChecked) {
  seed();
  KubeConfig c = config();
  c.host = "localhost";  // in the certificate's SAN
  source_ = std::make_unique<KubeSource>(c, fast());
  ASSERT_TRUE(source_->start().ok());
  EXPECT_NE(waitSnapshot([](const Snapshot& s) { return s.pods.size() == 2; }), nullptr);
  source_->stop();

  // A certificate from the right CA for another name: refused.
  FakeApiServer other(dir_, "wrong-name");
  other.serve(kNs, "NamespaceList", "v1", "Namespace");
  ASSERT_TRUE(other.start());
  c = config();
  c.port = other.port();
  source_ = std::make_unique<KubeSource>(c, fast());
  ASSERT_TRUE(source_->start().ok());
  ASSERT_TRUE(waitStatus([](const KubeSourceStatus& s) { return !s.last_error.empty(); }));
  EXPECT_NE(source_->status().last_error.find("mismatch"), std::string::npos)
      << source_->status().last_error;
  source_->stop();
}

}  // namespace
}  // namespace meshlet
