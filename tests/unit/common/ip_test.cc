#include "agent/common/ip.h"

#include <gtest/gtest.h>

namespace meshlet {
namespace {

TEST(IpAddr, ParsesAndPrintsBothFamilies) {
  auto v4 = IpAddr::parse("198.18.0.10");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->isV4());
  EXPECT_EQ(v4->toString(), "198.18.0.10");
  EXPECT_EQ(v4->words()[0], 0x0a0012c6u);  // network order in memory, read on little endian
  EXPECT_EQ(v4->words()[1], 0u);
  auto v6 = IpAddr::parse("2001:db8::1");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->isV4());
  EXPECT_EQ(v6->toString(), "2001:db8::1");
}

TEST(IpAddr, RejectsGarbage) {
  EXPECT_FALSE(IpAddr::parse(""));
  EXPECT_FALSE(IpAddr::parse("198.18.0.256"));
  EXPECT_FALSE(IpAddr::parse("198.18.0"));
  EXPECT_FALSE(IpAddr::parse("fe80::1::2"));
  EXPECT_FALSE(IpAddr::parse("web"));
}

}  // namespace
}  // namespace meshlet
