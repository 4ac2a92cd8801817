// meshletd --readiness-addr (the readiness probe's port).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/config/flags.h"
#include "tests/unit/config/parse_flags.h"

namespace meshlet {
namespace {

using meshlet::testing::parseFlags;

TEST(ReadinessAddrFlagTest, DefaultIsIstiosReadinessPort) {
  auto f = parseFlags({"--config-dir", "/c"});
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->readiness_addr, "0.0.0.0:15021");
}

TEST(ReadinessAddrFlagTest, TakesHostPortIncludingPortZeroAndIpv6) {
  for (const char* addr : {"127.0.0.1:0", "[::1]:15021", "0.0.0.0:65535"}) {
    auto f = parseFlags({"--config-dir", "/c", "--readiness-addr", addr});
    ASSERT_TRUE(f.ok()) << addr << ": " << f.error().message();
    EXPECT_EQ(f->readiness_addr, addr);
  }
}

TEST(ReadinessAddrFlagTest, BadValuesAreUsageErrors) {
  for (const char* addr : {"15021", "127.0.0.1:", "127.0.0.1:ready", "127.0.0.1:70000", ":15021"}) {
    auto f = parseFlags({"--config-dir", "/c", "--readiness-addr", addr});
    ASSERT_FALSE(f.ok()) << addr;
    EXPECT_EQ(f.error().code(), 2) << addr;
    EXPECT_NE(f.error().message().find("--readiness-addr"), std::string::npos)
        << f.error().message();
  }
}

TEST(ReadinessAddrFlagTest, ListedInHelpWithItsDefault) {
  auto f = parseFlags({"--help"});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), 0);
  EXPECT_NE(f.error().message().find("--readiness-addr"), std::string::npos);
  EXPECT_NE(f.error().message().find("0.0.0.0:15021"), std::string::npos);
}

}  // namespace
}  // namespace meshlet
