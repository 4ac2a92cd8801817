#include "agent/config/flags.h"
#include "tests/unit/config/parse_flags.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace meshlet {
namespace {

using meshlet::testing::parseFlags;

std::string hostName() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

// Sets or unsets NODE_NAME for one test and restores the previous value.
class AgentFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* v = std::getenv("NODE_NAME")) saved_ = v;
    unsetenv("NODE_NAME");
  }
  void TearDown() override {
    if (saved_) {
      setenv("NODE_NAME", saved_->c_str(), 1);
    } else {
      unsetenv("NODE_NAME");
    }
  }

  std::optional<std::string> saved_;
};

TEST_F(AgentFlagsTest, Defaults) {
  auto f = parseFlags({"--config-dir", "/etc/meshlet/config"});
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->config_dir, "/etc/meshlet/config");
  EXPECT_EQ(f->bpffs, "/sys/fs/bpf/meshlet");
  EXPECT_EQ(f->admin_socket, "/var/run/meshlet/admin.sock");
  EXPECT_EQ(f->metrics_addr, "0.0.0.0:15020");
  EXPECT_EQ(f->log_level, "info");
  EXPECT_EQ(f->cgroup, "");
  EXPECT_FALSE(f->uninstall);
  EXPECT_EQ(f->node_name, hostName());  // NODE_NAME unset
}

TEST_F(AgentFlagsTest, EveryFlag) {
  auto f = parseFlags({"--config-dir", "/srv/cfg", "--node-name", "node-b", "--cgroup",
                  "/sys/fs/cgroup/meshlet", "--bpffs", "/sys/fs/bpf/other", "--admin-socket",
                  "/tmp/meshlet-test-flags.sock", "--metrics-addr", "127.0.0.1:9100",
                  "--log-level", "debug"});
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->config_dir, "/srv/cfg");
  EXPECT_EQ(f->node_name, "node-b");
  EXPECT_EQ(f->cgroup, "/sys/fs/cgroup/meshlet");
  EXPECT_EQ(f->bpffs, "/sys/fs/bpf/other");
  EXPECT_EQ(f->admin_socket, "/tmp/meshlet-test-flags.sock");
  EXPECT_EQ(f->metrics_addr, "127.0.0.1:9100");
  EXPECT_EQ(f->log_level, "debug");
  EXPECT_FALSE(f->uninstall);
}

TEST_F(AgentFlagsTest, EqualsSyntax) {
  auto f = parseFlags({"--config-dir=/srv/cfg", "--metrics-addr=[2001:db8::1]:15020",
                  "--log-level=warn"});
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->config_dir, "/srv/cfg");
  EXPECT_EQ(f->metrics_addr, "[2001:db8::1]:15020");
  EXPECT_EQ(f->log_level, "warn");
}

TEST_F(AgentFlagsTest, EveryLogLevelAccepted) {
  for (const char* level : {"debug", "info", "warn", "error"}) {
    auto f = parseFlags({"--config-dir", "/c", "--log-level", level});
    ASSERT_TRUE(f.ok()) << level << ": " << f.error().message();
    EXPECT_EQ(f->log_level, level);
  }
}

TEST_F(AgentFlagsTest, ConfigDirRequiredUnlessUninstall) {
  auto missing = parseFlags({});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), 2);
  EXPECT_NE(missing.error().message().find("--config-dir"), std::string::npos)
      << missing.error().message();

  auto uninstall = parseFlags({"--uninstall", "--bpffs", "/sys/fs/bpf/x"});
  ASSERT_TRUE(uninstall.ok()) << uninstall.error().message();
  EXPECT_TRUE(uninstall->uninstall);
  EXPECT_EQ(uninstall->config_dir, "");
  EXPECT_EQ(uninstall->bpffs, "/sys/fs/bpf/x");
}

TEST_F(AgentFlagsTest, HelpIsCodeZeroWithUsage) {
  for (const char* flag : {"--help", "-h"}) {
    auto f = parseFlags({flag});
    ASSERT_FALSE(f.ok()) << flag;
    EXPECT_EQ(f.error().code(), 0) << flag;
    const std::string& text = f.error().message();
    EXPECT_NE(text.find("meshletd"), std::string::npos) << text;
    for (const char* option : {"--config-dir", "--node-name", "--cgroup", "--bpffs",
                               "--admin-socket", "--metrics-addr", "--log-level", "--uninstall"}) {
      EXPECT_NE(text.find(option), std::string::npos) << option << " missing from:\n" << text;
    }
    // Defaults are shown.
    EXPECT_NE(text.find("/var/run/meshlet/admin.sock"), std::string::npos) << text;
  }
}

TEST_F(AgentFlagsTest, UnknownFlagIsUsageError) {
  auto f = parseFlags({"--config-dir", "/c", "--frobnicate"});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), 2);
  EXPECT_NE(f.error().message().find("--help"), std::string::npos) << f.error().message();
  EXPECT_NE(f.error().message().find("frobnicate"), std::string::npos) << f.error().message();

  auto positional = parseFlags({"--config-dir", "/c", "stray"});
  ASSERT_FALSE(positional.ok());
  EXPECT_EQ(positional.error().code(), 2);
}

TEST_F(AgentFlagsTest, MissingOptionValueIsUsageError) {
  auto f = parseFlags({"--config-dir"});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), 2);
}

TEST_F(AgentFlagsTest, BadMetricsAddrIsUsageError) {
  auto f = parseFlags({"--config-dir", "/c", "--metrics-addr", "15020"});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), 2);
  EXPECT_NE(f.error().message().find("HOST:PORT"), std::string::npos) << f.error().message();
  EXPECT_NE(f.error().message().find("\"15020\""), std::string::npos) << f.error().message();
}

TEST_F(AgentFlagsTest, MetricsAddrWithoutNumericPortIsUsageError) {
  for (const char* addr : {"127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", ":"}) {
    auto f = parseFlags({"--config-dir", "/c", "--metrics-addr", addr});
    EXPECT_FALSE(f.ok()) << addr;
    if (!f.ok()) {
      EXPECT_EQ(f.error().code(), 2) << addr;
    }
  }
}

TEST_F(AgentFlagsTest, BadLogLevelIsUsageError) {
  for (const char* level : {"verbose", "INFO", ""}) {
    auto f = parseFlags({"--config-dir", "/c", "--log-level", level});
    ASSERT_FALSE(f.ok()) << level;
    EXPECT_EQ(f.error().code(), 2) << level;
  }
}

TEST_F(AgentFlagsTest, NodeNameFromEnvironment) {
  setenv("NODE_NAME", "node-from-env", 1);
  auto f = parseFlags({"--config-dir", "/c"});
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->node_name, "node-from-env");

  // The flag overrides the environment.
  auto g = parseFlags({"--config-dir", "/c", "--node-name", "node-flag"});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->node_name, "node-flag");
}

TEST_F(AgentFlagsTest, EmptyNodeNameEnvFallsBackToHostname) {
  setenv("NODE_NAME", "", 1);
  auto f = parseFlags({"--config-dir", "/c"});
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->node_name, hostName());
  EXPECT_FALSE(f->node_name.empty());
}

TEST_F(AgentFlagsTest, IdentityFlags) {
  auto d = parseFlags({"--config-dir", "/c"});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->trust_domain, "cluster.local");
  EXPECT_EQ(d->ca_dir, "/etc/meshlet/ca");
  EXPECT_EQ(d->svid_ttl_seconds, 24 * 3600);
  auto f = parseFlags({"--config-dir", "/c", "--trust-domain", "example.org", "--ca-dir", "/srv/ca",
                  "--svid-ttl", "1h30m"});
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->trust_domain, "example.org");
  EXPECT_EQ(f->ca_dir, "/srv/ca");
  EXPECT_EQ(f->svid_ttl_seconds, 5400);
  for (const char* bad : {"90", "1d", "1h-", "", "1m"}) {
    auto r = parseFlags({"--config-dir", "/c", "--svid-ttl", bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), 2);
    EXPECT_NE(r.error().message().find("--svid-ttl"), std::string::npos) << r.error().message();
  }
  auto td = parseFlags({"--config-dir", "/c", "--trust-domain", "Bad Domain"});
  ASSERT_FALSE(td.ok());
  EXPECT_NE(td.error().message().find("--trust-domain"), std::string::npos);
}

TEST(DurationFlag, Parses) {
  EXPECT_EQ(*parseDurationSeconds("24h"), 86400);
  EXPECT_EQ(*parseDurationSeconds("2m"), 120);
  EXPECT_EQ(*parseDurationSeconds("45s"), 45);
  EXPECT_EQ(*parseDurationSeconds("1h2m3s"), 3723);
  EXPECT_FALSE(parseDurationSeconds("h").ok());
  EXPECT_FALSE(parseDurationSeconds("10").ok());
  EXPECT_FALSE(parseDurationSeconds("10x").ok());
  EXPECT_FALSE(parseDurationSeconds("9999999999h").ok());
}

}  // namespace
}  // namespace meshlet
