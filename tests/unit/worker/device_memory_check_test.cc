#include "worker/device_memory_check.h"

#include <string>

#include "gtest/gtest.h"
#include "job/status_meaning.h"

namespace caldera::worker {
namespace {

TEST(DeviceMemoryCheckTest, FitsWhenTheNeedIsAtMostTheFreeMemory) {
  EXPECT_TRUE(CheckDeviceMemoryFits("t", "cuda:0", 100, 100).ok());
  EXPECT_TRUE(CheckDeviceMemoryFits("t", "cuda:0", 99, 100).ok());
  EXPECT_TRUE(CheckDeviceMemoryFits("t", "cuda:0", 0, 0).ok());  // unknown need
}

TEST(DeviceMemoryCheckTest, TooLargeIsRetryableAndNamesBothFigures) {
  const int64_t need = int64_t{3} << 30, free_bytes = int64_t{1} << 30;
  absl::Status s =
      CheckDeviceMemoryFits("tasks/j-1/decompose-0-q_proj", "cuda:1", need, free_bytes);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(job::IsRetryable(s.code()));
  const std::string msg(s.message());
  EXPECT_NE(msg.find("tasks/j-1/decompose-0-q_proj"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cuda:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(need)), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(free_bytes)), std::string::npos) << msg;
  EXPECT_NE(msg.find("3.00 GiB"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1.00 GiB"), std::string::npos) << msg;
}

}  // namespace
}  // namespace caldera::worker
