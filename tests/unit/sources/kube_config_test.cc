// Kubeconfig and in-cluster configuration: every supported variant and every error.
#include "agent/sources/kube_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "agent/tls/tls_conn.h"
#include "tests/lib/fake_apiserver.h"

namespace fs = std::filesystem;

namespace meshlet {
namespace {

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(k[(v >> s) & 63]);
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += {k[(v >> 18) & 63], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {k[(v >> 18) & 63], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

class KubeConfigTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = fs::temp_directory_path() / ("meshlet-kubeconfig-pki-" + std::to_string(getpid()));
    fs::create_directories(pki_);
    ASSERT_EQ(testing::makeTestPki(pki_), "");
  }
  static void TearDownTestSuite() { fs::remove_all(pki_); }
  void SetUp() override {
    dir_ = pki_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
    fs::copy_file(pki_ + "/ca.crt", dir_ + "/ca.crt");
    std::ofstream(dir_ + "/token") << "file-token\n";
  }

  // A kubeconfig with one cluster, one user and one context; `cluster` and `user` are the
  // bodies (YAML lines indented by 4).
  Result<KubeConfig> load(const std::string& cluster, const std::string& user,
                          const std::string& current = "ctx") {
    std::string text = "apiVersion: v1\nkind: Config\ncurrent-context: " + current +
                       "\nclusters:\n- name: c1\n  cluster:\n" + cluster +
                       "users:\n- name: u1\n  user:\n" + user +
                       "contexts:\n- name: ctx\n  context:\n    cluster: c1\n    user: u1\n"
                       "    namespace: team\n";
    std::ofstream(dir_ + "/config") << text;
    return loadKubeconfig(dir_ + "/config");
  }
  std::string err(const Result<KubeConfig>& r) { return r.ok() ? "(ok)" : r.error().message(); }

  static std::string pki_;
  std::string dir_;
};
std::string KubeConfigTest::pki_;

const std::string kServer = "    server: https://198.18.0.1:6443\n";

TEST_F(KubeConfigTest, TokenAndRelativeCaFile) {
  auto c = load(kServer + "    certificate-authority: ca.crt\n", "    token: abc\n");
  ASSERT_TRUE(c.ok()) << err(c);
  EXPECT_EQ(c->host, "198.18.0.1");
  EXPECT_EQ(c->port, 6443);
  EXPECT_EQ(c->token, "abc");
  EXPECT_EQ(c->ns, "team");
  EXPECT_NE(c->ca_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(c->server(), "https://198.18.0.1:6443");
  EXPECT_NE(c->origin.find("context ctx"), std::string::npos);
  EXPECT_TRUE(tls::makeClientContext({c->ca_pem, false, "", ""}).ok());
}

TEST_F(KubeConfigTest, InlineCaDataAndClientCertificateData) {
  std::string ca = testing::readText(pki_ + "/ca.crt");
  std::string cert = testing::readText(pki_ + "/client.crt");
  std::string key = testing::readText(pki_ + "/client.key");
  auto c = load(kServer + "    certificate-authority-data: " + base64(ca) + "\n",
                "    client-certificate-data: " + base64(cert) +
                    "\n    client-key-data: " + base64(key) + "\n");
  ASSERT_TRUE(c.ok()) << err(c);
  EXPECT_EQ(c->ca_pem, ca);
  EXPECT_EQ(c->client_cert_pem, cert);
  EXPECT_EQ(c->client_key_pem, key);
  EXPECT_TRUE(
      tls::makeClientContext({c->ca_pem, false, c->client_cert_pem, c->client_key_pem}).ok());
}

TEST_F(KubeConfigTest, ClientCertificateFilesAndTokenFile) {
  auto c = load(kServer + "    certificate-authority: " + pki_ + "/ca.crt\n",
                "    client-certificate: " + pki_ + "/client.crt\n    client-key: " + pki_ +
                    "/client.key\n    tokenFile: token\n");
  ASSERT_TRUE(c.ok()) << err(c);
  EXPECT_EQ(c->token_file, dir_ + "/token");
  EXPECT_EQ(c->token, "");
  EXPECT_FALSE(c->client_cert_pem.empty());
}

TEST_F(KubeConfigTest, InsecureSkipVerifyAndIpv6Server) {
  auto c = load("    server: https://[2001:db8::1]:8443\n    insecure-skip-tls-verify: true\n",
                "    token: abc\n");
  ASSERT_TRUE(c.ok()) << err(c);
  EXPECT_EQ(c->host, "2001:db8::1");
  EXPECT_EQ(c->port, 8443);
  EXPECT_TRUE(c->insecure_skip_verify);
  EXPECT_EQ(c->server(), "https://[2001:db8::1]:8443");
}

TEST_F(KubeConfigTest, DefaultPortAndNoUser) {
  std::ofstream(dir_ + "/config")
      << "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster:\n"
         "    server: https://kube.example\ncontexts:\n- name: x\n  context: {cluster: c}\n";
  auto c = loadKubeconfig(dir_ + "/config");
  ASSERT_TRUE(c.ok()) << err(c);
  EXPECT_EQ(c->host, "kube.example");
  EXPECT_EQ(c->port, 443);
}

TEST_F(KubeConfigTest, Errors) {
  const std::string ca = "    certificate-authority: ca.crt\n";
  const std::map<std::string, std::pair<Result<KubeConfig>, std::string>> cases = {
      {"missing file", {loadKubeconfig(dir_ + "/nope"), "cannot read"}},
      {"no current-context", {load(kServer, "    token: a\n", "\"\""), "no current-context"}},
      {"unknown context", {load(kServer, "    token: a\n", "other"), "no context named \"other\""}},
      {"no server", {load(ca, "    token: a\n"), "cluster c1: no server"}},
      {"http", {load("    server: http://198.18.0.1\n", "    token: a\n"), "plain http"}},
      {"bad port", {load("    server: https://198.18.0.1:99999\n", ""), "invalid port"}},
      {"ipv6 without brackets", {load("    server: https://2001:db8::1:443\n", ""), "brackets"}},
      {"bad base64",
       {load(kServer + "    certificate-authority-data: '%%%'\n", ""), "invalid base64"}},
      {"not pem",
       {load(kServer + "    certificate-authority-data: " + base64("hello") + "\n", ""),
        "not PEM"}},
      {"missing ca file",
       {load(kServer + "    certificate-authority: nope.crt\n", ""),
        "certificate-authority " + dir_ + "/nope.crt: cannot read"}},
      {"insecure with ca",
       {load(kServer + ca + "    insecure-skip-tls-verify: true\n", ""), "not allowed"}},
      {"insecure not bool",
       {load(kServer + "    insecure-skip-tls-verify: maybe\n", ""), "expected true or false"}},
      {"cert without key",
       {load(kServer + ca, "    client-certificate: " + pki_ + "/client.crt\n"),
        "client-certificate without client-key"}},
      {"key without cert",
       {load(kServer + ca, "    client-key: " + pki_ + "/client.key\n"),
        "client-key without client-certificate"}},
      {"exec", {load(kServer + ca, "    exec: {command: aws}\n"), "user u1.exec: not supported"}},
      {"missing token file", {load(kServer + ca, "    tokenFile: gone\n"), "tokenFile"}},
  };
  for (const auto& [name, c] : cases) {
    ASSERT_FALSE(c.first.ok()) << name;
    EXPECT_NE(c.first.error().message().find(c.second), std::string::npos)
        << name << ": " << c.first.error().message();
  }
  // A user the context names but the file lacks; a cluster likewise.
  std::ofstream(dir_ + "/config")
      << "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: []\nusers: []\n"
         "contexts:\n- name: x\n  context: {cluster: c, user: u}\n";
  auto c = loadKubeconfig(dir_ + "/config");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("no cluster named \"c\""), std::string::npos);
  std::ofstream(dir_ + "/config") << "apiVersion: v1\nkind: Config\n  bad: [\n";
  c = loadKubeconfig(dir_ + "/config");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("invalid YAML"), std::string::npos);
  std::ofstream(dir_ + "/config")
      << "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster: "
         "{server: 'https://h'}\nusers: []\ncontexts:\n- name: x\n  context: {cluster: c, user: "
         "u}\n";
  c = loadKubeconfig(dir_ + "/config");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("no user named \"u\""), std::string::npos);
}

TEST_F(KubeConfigTest, BadClientKeyIsRefusedByTheTlsContext) {
  auto ctx = tls::makeClientContext({testing::readText(pki_ + "/ca.crt"), false,
                                     testing::readText(pki_ + "/client.crt"),
                                     testing::readText(pki_ + "/server.key")});
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.error().message().find("mismatch"), std::string::npos) << ctx.error().message();
}

TEST_F(KubeConfigTest, InCluster) {
  fs::create_directories(dir_ + "/sa");
  fs::copy_file(pki_ + "/ca.crt", dir_ + "/sa/ca.crt");
  std::ofstream(dir_ + "/sa/token") << "sa-token";
  std::ofstream(dir_ + "/sa/namespace") << "meshlet-system";
  std::map<std::string, std::string> env = {{"KUBERNETES_SERVICE_HOST", "198.18.0.1"},
                                            {"KUBERNETES_SERVICE_PORT", "443"}};
  auto getenv = [&env](const char* n) -> const char* {
    auto it = env.find(n);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto c = inClusterConfig(dir_ + "/sa", getenv);
  ASSERT_TRUE(c.ok()) << err(c);
  EXPECT_EQ(c->server(), "https://198.18.0.1:443");
  EXPECT_EQ(c->token_file, dir_ + "/sa/token");
  EXPECT_EQ(c->ns, "meshlet-system");
  EXPECT_EQ(c->origin, "in-cluster");

  env["KUBERNETES_SERVICE_HOST"] = "2001:db8::10";
  c = inClusterConfig(dir_ + "/sa", getenv);
  ASSERT_TRUE(c.ok()) << err(c);
  EXPECT_EQ(c->server(), "https://[2001:db8::10]:443");

  env["KUBERNETES_SERVICE_PORT"] = "x";
  c = inClusterConfig(dir_ + "/sa", getenv);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("invalid port"), std::string::npos) << c.error().message();

  env.erase("KUBERNETES_SERVICE_HOST");
  c = inClusterConfig(dir_ + "/sa", getenv);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("KUBERNETES_SERVICE_HOST"), std::string::npos);

  env["KUBERNETES_SERVICE_HOST"] = "198.18.0.1";
  env["KUBERNETES_SERVICE_PORT"] = "6443";
  fs::remove(dir_ + "/sa/token");
  c = inClusterConfig(dir_ + "/sa", getenv);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("service account token"), std::string::npos);
}

TEST(KubeBase64, Decodes) {
  EXPECT_EQ(*decodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(*decodeBase64("aGVs\nbG8"), "hello");
  EXPECT_FALSE(decodeBase64("a").ok());
  EXPECT_FALSE(decodeBase64("aGVs*").ok());
}

}  // namespace
}  // namespace meshlet
