// The source-selection contract of meshletd's flags: --config-dir (file), --kubeconfig (kube),
// neither in a pod (kube, in-cluster), both (usage error), none anywhere else (usage error).
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "agent/config/flags.h"
#include "tests/unit/config/parse_flags.h"

namespace meshlet {
namespace {

using meshlet::testing::parseFlags;

class KubeFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* v = std::getenv("KUBERNETES_SERVICE_HOST")) saved_ = v;
    unsetenv("KUBERNETES_SERVICE_HOST");
  }
  void TearDown() override {
    if (saved_) {
      setenv("KUBERNETES_SERVICE_HOST", saved_->c_str(), 1);
    } else {
      unsetenv("KUBERNETES_SERVICE_HOST");
    }
  }
  std::optional<std::string> saved_;
};

TEST_F(KubeFlagsTest, KubeconfigSelectsTheKubeSource) {
  auto f = parseFlags({"--kubeconfig", "/etc/kube/config"});
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->kubeconfig, "/etc/kube/config");
  EXPECT_TRUE(f->config_dir.empty());
  EXPECT_FALSE(f->in_cluster);
}

TEST_F(KubeFlagsTest, ConfigDirAndKubeconfigTogetherIsAUsageError) {
  auto f = parseFlags({"--config-dir", "/c", "--kubeconfig", "/k"});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), 2);
  EXPECT_NE(f.error().message().find("cannot be used together"), std::string::npos);
}

TEST_F(KubeFlagsTest, InClusterWhenNeitherFlagAndInAPod) {
  setenv("KUBERNETES_SERVICE_HOST", "198.18.0.1", 1);
  auto f = parseFlags({});
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_TRUE(f->in_cluster);
  // An explicit source wins over the environment.
  f = parseFlags({"--config-dir", "/c"});
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->in_cluster);
}

TEST_F(KubeFlagsTest, NoSourceOutsideAPodIsAUsageError) {
  auto f = parseFlags({});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), 2);
  EXPECT_NE(f.error().message().find("--config-dir"), std::string::npos);
}

}  // namespace
}  // namespace meshlet
