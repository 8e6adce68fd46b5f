#include "core/backend/cuda/device_info.h"

#include "gtest/gtest.h"

namespace caldera {
namespace {

TEST(CudaDeviceTest, ProbeLoadsLibrariesOrSaysWhyNot) {
  cuda::DeviceProbe probe = cuda::ProbeDevices();
  if (probe.device_count == 0) {
    GTEST_SKIP() << "skipped: no CUDA device (" << probe.error << ")";
  }
  EXPECT_FALSE(probe.first_name.empty());
  EXPECT_TRUE(probe.error.empty()) << probe.error;
}

}  // namespace
}  // namespace caldera
