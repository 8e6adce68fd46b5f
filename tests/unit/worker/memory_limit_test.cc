#include "worker/memory_limit.h"

#include "gtest/gtest.h"

namespace caldera::worker {
namespace {

TEST(MemoryLimitTest, CgroupTextParses) {
  EXPECT_EQ(ParseCgroupMemoryLimit("8589934592\n"), int64_t{8589934592});
  EXPECT_EQ(ParseCgroupMemoryLimit("max\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupMemoryLimit("9223372036854771712\n"), std::nullopt);  // v1 "unset"
  EXPECT_EQ(ParseCgroupMemoryLimit(""), std::nullopt);
  EXPECT_EQ(ParseCgroupMemoryLimit("0"), std::nullopt);
  EXPECT_EQ(ParseCgroupMemoryLimit("12 GiB"), std::nullopt);
}

TEST(MemoryLimitTest, DefaultIsPositiveHere) { EXPECT_GT(DefaultMaxMemoryBytes(), 0); }

}  // namespace
}  // namespace caldera::worker
