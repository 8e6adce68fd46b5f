#include <cstdio>
#include <cstdlib>

#include "core/backend/cuda/device_info.h"
#include "gtest/gtest.h"

namespace caldera {
namespace {

TEST(CudaDeviceTest, ProbeLoadsLibrariesOrSaysWhyNot) {
  cuda::DeviceProbe probe = cuda::ProbeDevices();
  if (probe.device_count == 0) {
    // The no-device branch names the runtime call and the runtime's reason.
    EXPECT_EQ(probe.error.rfind("cudaGetDeviceCount: ", 0), 0u) << probe.error;
    EXPECT_GT(probe.error.size(), std::string("cudaGetDeviceCount: ").size()) << probe.error;
    EXPECT_TRUE(probe.first_name.empty());
    GTEST_SKIP() << "skipped the device half: no CUDA device (" << probe.error << ")";
  }
  EXPECT_FALSE(probe.first_name.empty());
  EXPECT_TRUE(probe.error.empty()) << probe.error;
}

// With every device hidden (CUDA_VISIBLE_DEVICES=""), on a machine with or
// without a GPU, the probe reports no device and says why. Runs in a fresh
// process (a death test re-executes the binary) so that the runtime reads the
// variable before its first initialisation.
TEST(CudaDeviceTest, HiddenDevicesGiveZeroAndTheRuntimesReason) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("CUDA_VISIBLE_DEVICES", "", 1);
        const cuda::DeviceProbe probe = cuda::ProbeDevices();
        std::fprintf(stderr, "count=%d error=[%s]\n", probe.device_count, probe.error.c_str());
        std::exit(probe.device_count == 0 && !probe.error.empty() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "count=0 error=\\[cudaGetDeviceCount: [^]]+\\]");
}

}  // namespace
}  // namespace caldera
