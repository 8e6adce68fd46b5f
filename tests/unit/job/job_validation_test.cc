#include "job/job_validation.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera::job {
namespace {

namespace fs = std::filesystem;

// Issue 35: a first run that just works, and errors in the order a user
// fixes them (locations and the files they name before numbers).
class JobValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.model = testing::StoriesModelDir();
    spec_.calibration = spec_.model + "/calibration.safetensors";
    spec_.out = tmp_.Join("out");
  }
  std::string Error() {
    absl::StatusOr<JobShape> shape = ValidateJob(spec_, storage::StorageOptions{});
    EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument) << shape.status();
    return std::string(shape.status().message());
  }

  testing::TempDir tmp_;
  JobSpec spec_;
};

// The defaults validate on the bundled model, whose 32 x 64 k_proj cannot
// take a fixed rank of 64 (the old default).
TEST_F(JobValidationTest, TheDefaultsValidateOnTheBundledModel) {
  absl::StatusOr<JobShape> shape = ValidateJob(spec_, storage::StorageOptions{});
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(shape->modules.size(), 7u);
  spec_.rank = 64;
  EXPECT_NE(Error().find("--rank 64 is larger than k_proj (32x64); use --rank <= 32, or leave "
                         "--rank out"),
            std::string::npos);
}

TEST_F(JobValidationTest, AWrongPathIsReportedBeforeABadNumber) {
  spec_.q_bits = 9;
  spec_.rank = 100;
  spec_.calibration = tmp_.Join("no-such-tokens.safetensors");
  EXPECT_EQ(Error().rfind("--calibration ", 0), 0u) << Error();
  spec_.model = tmp_.Join("no-such-model");
  EXPECT_EQ(Error().rfind("--model ", 0), 0u) << Error();
  spec_.model = testing::StoriesModelDir();
  spec_.calibration = spec_.model + "/calibration.safetensors";
  EXPECT_NE(Error().find("--q-bits 9"), std::string::npos) << Error();
}

// A missing config.json says what is at the location: nothing, an empty
// folder, a folder of other files, or a folder whose sub-folder is the model.
TEST_F(JobValidationTest, AModelFolderWithoutConfigJsonSaysWhatIsThere) {
  spec_.model = tmp_.Join("absent");
  EXPECT_NE(Error().find("no such folder"), std::string::npos) << Error();
  fs::create_directories(tmp_.Join("empty"));
  spec_.model = tmp_.Join("empty");
  EXPECT_NE(Error().find("the folder exists but is empty (no config.json)"), std::string::npos)
      << Error();
  fs::create_directories(tmp_.Join("weights"));
  std::ofstream(tmp_.Join("weights/model.safetensors")) << "x";
  spec_.model = tmp_.Join("weights");
  EXPECT_NE(Error().find("the folder exists but has no config.json (it holds model.safetensors)"),
            std::string::npos)
      << Error();
  fs::create_directories(tmp_.Join("parent/llama"));
  std::ofstream(tmp_.Join("parent/llama/config.json")) << "{}";
  spec_.model = tmp_.Join("parent");
  EXPECT_NE(Error().find("its sub-folder llama/ has one; use --model " + tmp_.Join("parent/llama")),
            std::string::npos)
      << Error();
}

}  // namespace
}  // namespace caldera::job
