// validateSnapshot and loadDirectory: cross-object checks and whole-directory semantics.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/sources/file_source.h"
#include "tests/unit/support/temp_dir.h"

namespace meshlet {
namespace {

namespace fs = std::filesystem;

using meshlet::testing::TempDir;

std::string service(const std::string& name, const std::string& ip,
                    const std::string& ns = "default") {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\nspec: {clusterIPs: [" + ip + "], ports: [{port: 80}]}\n";
}

Snapshot parseAll(const std::vector<std::pair<std::string, std::string>>& files) {
  Snapshot s;
  for (const auto& [file, text] : files) {
    Status st = parseYaml(text, file, s);
    EXPECT_TRUE(st.ok()) << st.error().message();
  }
  return s;
}

std::string errorOf(const Status& s) { return s.ok() ? "(ok)" : s.error().message(); }

TEST(FileSourceValidate, DuplicateClusterIpNamesBothServices) {
  Snapshot s = parseAll({{"a.yaml", service("web", "198.18.10.10")},
                         {"b.yaml", service("api", "198.18.10.10", "shop")}});
  EXPECT_EQ(errorOf(validateSnapshot(s)),
            "b.yaml (document 1): Service shop/api: spec.clusterIPs: 198.18.10.10 is already the "
            "cluster IP of Service default/web (a.yaml (document 1))");
}

TEST(FileSourceValidate, DuplicateIpv6ClusterIpOfDualStackService) {
  Snapshot s = parseAll({{"a.yaml", service("web", "198.18.10.10, '2001:db8:10::1'")},
                         {"a.yaml", service("api", "'2001:db8:10::1'")}});
  std::string msg = errorOf(validateSnapshot(s));
  EXPECT_NE(msg.find("Service default/api: spec.clusterIPs: 2001:db8:10::1 is already the "
                     "cluster IP of Service default/web"),
            std::string::npos)
      << msg;
}

TEST(FileSourceValidate, DuplicateObjectNamesBothFiles) {
  Snapshot s =
      parseAll({{"a.yaml", service("web", "198.18.10.10")},
                {"b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n" +
                               service("web", "198.18.10.11")}});
  EXPECT_EQ(errorOf(validateSnapshot(s)),
            "b.yaml (document 2): Service default/web: duplicate object, also defined in a.yaml "
            "(document 1)");
}

TEST(FileSourceValidate, DuplicateClusterScopedNamespace) {
  Snapshot s = parseAll({{"a.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"},
                         {"b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"}});
  EXPECT_EQ(errorOf(validateSnapshot(s)),
            "b.yaml (document 1): Namespace shop: duplicate object, also defined in a.yaml "
            "(document 1)");
}

TEST(FileSourceValidate, SameNameInOtherKindOrNamespaceAndUndeclaredNamespacesAreFine) {
  Snapshot s = parseAll({
      {"a.yaml", service("web", "198.18.10.10")},
      {"b.yaml", service("web", "198.18.10.11", "shop")},  // "shop" is never declared
      {"c.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n"},
      {"d.yaml",
       "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web, labels: "
       "{kubernetes.io/service-name: web}}\naddressType: IPv4\n"},
  });
  EXPECT_TRUE(validateSnapshot(s).ok()) << errorOf(validateSnapshot(s));
}

TEST(FileSourceLoad, FixtureDirectory) {
  auto r = loadDirectory(MESHLET_SOURCE_DIR "/tests/fixtures/config/good");
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Snapshot& s = *r;
  ASSERT_EQ(s.namespaces.size(), 1u);
  EXPECT_EQ(s.namespaces[0].meta.labels.at(kDataplaneModeLabel), kDataplaneModeMeshlet);
  ASSERT_EQ(s.services.size(), 3u);
  EXPECT_EQ(s.services[0].meta.name, "web");
  EXPECT_EQ(s.services[0].session_affinity, SessionAffinity::kClientIP);
  EXPECT_EQ(s.services[1].meta.name, "api");
  EXPECT_TRUE(s.services[1].prefer_close);
  EXPECT_TRUE(s.services[1].round_robin);
  EXPECT_EQ(s.services[1].cluster_ips.size(), 2u);
  EXPECT_EQ(s.services[2].ports[0].protocol, Protocol::kUDP);
  EXPECT_NE(s.services[0].meta.origin.file.str().find("10-services.yaml"), std::string::npos);
  EXPECT_EQ(s.services[1].meta.origin.document, 2);
  ASSERT_EQ(s.pods.size(), 3u);
  for (const Pod& p : s.pods) EXPECT_EQ(p.netns, "/var/run/netns/" + p.meta.name);

  // 3 slices from the file, plus one synthesized for web (it has a selector and no slice); api
  // has slices in the file, dns has no selector.
  ASSERT_EQ(s.endpoint_slices.size(), 4u);
  const EndpointSlice& web = s.endpoint_slices[3];
  EXPECT_EQ(web.meta.name, "web-meshlet-ipv4");
  EXPECT_EQ(web.meta.ns, "shop");
  EXPECT_EQ(web.meta.origin.file, "(synthesized)");
  EXPECT_EQ(web.service_name, "web");
  ASSERT_EQ(web.ports.size(), 1u);
  EXPECT_EQ(web.ports[0].name, "http");
  EXPECT_EQ(web.ports[0].port, 8080);  // targetPort "http" through the container port
  ASSERT_EQ(web.endpoints.size(), 2u);
  EXPECT_EQ(web.endpoints[0].target_pod, "web-1");
  EXPECT_TRUE(web.endpoints[0].ready);
  EXPECT_EQ(web.endpoints[1].target_pod, "web-2");
  EXPECT_FALSE(web.endpoints[1].ready);
  EXPECT_EQ(s.endpoint_slices[1].address_type, IpFamily::kV6);
  EXPECT_TRUE(s.endpoint_slices[0].endpoints[1].terminating);
}

TEST(FileSourceLoad, ReadsOnlyConfigFilesSortedByName) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  dir.write("c.json",
            R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"},
                "spec": {"clusterIP": "198.18.10.3", "ports": [{"port": 80}]}})");
  dir.write("b.yml", service("b", "198.18.10.2"));
  dir.write("a.yaml", service("a", "198.18.10.1"));
  // Everything below would be rejected if it were read.
  const std::string garbage = "{ this is not: [valid";
  dir.write(".hidden.yaml", garbage);
  dir.write("notes.txt", garbage);
  dir.write("a.yaml.bak", garbage);
  dir.write("README", garbage);
  dir.write("x.YAML~", garbage);
  fs::create_directory(fs::path(dir.path()) / "sub.yaml");
  fs::create_directory(fs::path(dir.path()) / "nested");
  dir.write("nested/n.yaml", garbage);

  auto r = loadDirectory(dir.path());
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->services.size(), 3u);
  EXPECT_EQ(r->services[0].meta.name, "a");
  EXPECT_EQ(r->services[1].meta.name, "b");
  EXPECT_EQ(r->services[2].meta.name, "c");
  EXPECT_EQ(r->services[2].meta.origin.file, dir.path() + "/c.json");
}

TEST(FileSourceLoad, FollowsConfigMapStyleSymlinks) {
  TempDir dir;
  fs::create_directory(fs::path(dir.path()) / "..2024_05_02");
  dir.write("..2024_05_02/svc.yaml", service("web", "198.18.10.1"));
  fs::create_directory_symlink("..2024_05_02", fs::path(dir.path()) / "..data");
  fs::create_symlink("..data/svc.yaml", fs::path(dir.path()) / "svc.yaml");
  auto r = loadDirectory(dir.path());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->services.size(), 1u);  // read once, through the visible link only
}

TEST(FileSourceLoad, OneBadFileRejectsTheWholeDirectory) {
  TempDir dir;
  dir.write("a.yaml", service("a", "198.18.10.1"));
  dir.write("b.yaml",
            service("b", "198.18.10.2") + "---\n" +
                service("b2", "198.18.10.3")
                    .replace(service("b2", "198.18.10.3").find("port: 80"), 8, "port: 0"));
  dir.write("c.yaml", service("c", "198.18.10.4"));
  auto r = loadDirectory(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), dir.path() +
                                     "/b.yaml (document 2): Service default/b2: spec.ports[0]."
                                     "port: 0 is out of range 1-65535");
}

TEST(FileSourceLoad, CrossFileConflictRejectsTheWholeDirectory) {
  TempDir dir;
  dir.write("a.yaml", service("web", "198.18.10.1"));
  dir.write("b.yaml", service("api", "198.18.10.1"));
  auto r = loadDirectory(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("b.yaml (document 1): Service default/api: "
                                     "spec.clusterIPs: 198.18.10.1 is already the cluster IP"),
            std::string::npos)
      << r.error().message();
}

TEST(FileSourceLoad, EmptyDirectoryIsAnEmptySnapshot) {
  TempDir dir;
  auto r = loadDirectory(dir.path());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->services.empty() && r->pods.empty() && r->endpoint_slices.empty());
}

TEST(FileSourceLoad, MissingDirectoryOrNotADirectory) {
  TempDir dir;
  auto missing = loadDirectory(dir.path() + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find(dir.path() + "/nope"), std::string::npos);
  EXPECT_EQ(missing.error().code(), ENOENT);

  dir.write("file.yaml", service("a", "198.18.10.1"));
  auto not_dir = loadDirectory(dir.path() + "/file.yaml");
  ASSERT_FALSE(not_dir.ok());
  EXPECT_NE(not_dir.error().message().find("not a directory"), std::string::npos);
}

// loadDirectory parses a file as it reads it; its errors are the same as parseYaml's on the
// whole text, wherever they are in the file.
TEST(FileSourceLoad, ErrorsDeepInALargeFileAreReportedLikeParseYaml) {
  std::string head;
  for (int i = 0; i < 2000; ++i) {
    head += "---\n" + service("s" + std::to_string(i), "198.18." + std::to_string(i / 250) + "." +
                                                           std::to_string(i % 250 + 1));
  }
  ASSERT_EQ(std::count(head.begin(), head.end(), '\n'), 10000);
  struct Case {
    std::string tail;
    std::string expected;  // after "FILE (document 2001): invalid YAML at line "
  };
  const Case cases[] = {
      {"---\napiVersion: v1\nkind: [\n",
       "10004, column 1: did not find expected node content while parsing a flow node"},
      {"---\napiVersion: v1\nkind: Service\nmetadata: {name: \xff}\n",
       "10004, column 18: invalid leading UTF-8 octet (#FF)"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    dir.write("big.yaml", head + c.tail);
    auto r = loadDirectory(dir.path());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(),
              dir.file("big.yaml") + " (document 2001): invalid YAML at line " + c.expected);
    Snapshot s;
    Status st = parseYaml(head + c.tail, "big.yaml", s);
    EXPECT_EQ(errorOf(st), "big.yaml (document 2001): invalid YAML at line " + c.expected);
  }
}

TEST(FileSourceLoad, FileOverTheLimitIsRefused) {
  TempDir dir;
  dir.write("huge.yaml", "# " + std::string((16 << 20) + 1, 'x') + "\n");
  auto r = loadDirectory(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), dir.file("huge.yaml") + ": file is larger than 16 MiB");
  EXPECT_EQ(r.error().code(), EFBIG);
}

TEST(FileSourceLoad, BrokenSymlinkIsAnError) {
  TempDir dir;
  dir.write("a.yaml", service("a", "198.18.10.1"));
  fs::create_symlink("does-not-exist.yaml", fs::path(dir.path()) / "b.yaml");
  auto r = loadDirectory(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("b.yaml"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace meshlet
