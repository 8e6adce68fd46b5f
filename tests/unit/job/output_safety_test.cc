#include "job/output_safety.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/format/checkpoint_report.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera::job {
namespace {

namespace fs = std::filesystem;

// A model directory and a calibration file under a temporary directory; the
// output location is chosen per test.
class OutputSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_.Join("model"));
    std::ofstream(tmp_.Join("model/config.json")) << "{}";
    std::ofstream(tmp_.Join("calib.safetensors")) << "tokens";
    spec_.model = tmp_.Join("model");
    spec_.calibration = tmp_.Join("calib.safetensors");
    spec_.out = tmp_.Join("out");
  }
  absl::Status Check() { return CheckOutputLocation(spec_, storage::StorageOptions{}); }

  testing::TempDir tmp_;
  JobSpec spec_;
};

TEST_F(OutputSafetyTest, NewOrEmptyOutputIsFine) {
  EXPECT_TRUE(Check().ok());
  EXPECT_FALSE(fs::exists(tmp_.Join("out"))) << "the probe left the directory it created";
  fs::create_directories(tmp_.Join("out"));
  EXPECT_TRUE(Check().ok());
}

TEST_F(OutputSafetyTest, OutputOverlappingAnInputIsAlwaysRefused) {
  for (bool overwrite : {false, true}) {
    spec_.overwrite = overwrite;
    for (const std::string& out :
         {tmp_.Join("model"), tmp_.Join("model/"), tmp_.Join("model/compressed"), tmp_.path(),
          tmp_.Join("calib.safetensors"), tmp_.Join("out/../model")}) {
      spec_.out = out;
      const absl::Status s = Check();
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << out << ": " << s;
      EXPECT_NE(s.message().find("overlaps"), absl::string_view::npos) << s;
      EXPECT_TRUE(CheckOutputApartFromInputs(spec_).code() == absl::StatusCode::kInvalidArgument);
    }
  }
  // Through a symbolic link to the model directory.
  fs::create_directory_symlink(tmp_.Join("model"), tmp_.Join("alias"));
  spec_.out = tmp_.Join("alias");
  EXPECT_EQ(Check().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(fs::exists(tmp_.Join("model/config.json")));
}

TEST_F(OutputSafetyTest, ForeignFilesNeedOverwriteAndTheirContentIsNeverQuoted) {
  fs::create_directories(tmp_.Join("out"));
  std::ofstream(tmp_.Join("out/config.json")) << "root:x:0:0:root:/root:/bin/bash";
  absl::Status s = Check();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("config.json"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("--overwrite"), absl::string_view::npos) << s;
  EXPECT_EQ(s.message().find("root:x"), absl::string_view::npos) << s;
  spec_.overwrite = true;
  EXPECT_TRUE(Check().ok());
  // An empty sub-directory or a symbolic link is foreign too.
  spec_.overwrite = false;
  fs::remove(tmp_.Join("out/config.json"));
  fs::create_directories(tmp_.Join("out/sub"));
  EXPECT_EQ(Check().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(OutputSafetyTest, OurOwnLeftoversAndACompletedOutputAreNotForeign) {
  fs::create_directories(tmp_.Join("out/.caldera-scratch/j-1"));
  std::ofstream(tmp_.Join("out/model-00001-of-00002.safetensors")) << "partial";
  EXPECT_TRUE(Check().ok()) << "a failed job's output (scratch beside it)";
  fs::remove_all(tmp_.Join("out/.caldera-scratch"));
  EXPECT_EQ(Check().code(), absl::StatusCode::kFailedPrecondition);
  std::ofstream(tmp_.Join("out/report.json")) << "{\"not\": \"ours\"}";
  EXPECT_EQ(Check().code(), absl::StatusCode::kFailedPrecondition);
  std::ofstream(tmp_.Join("out/report.json")) << format::SerializeCheckpointReport({});
  EXPECT_TRUE(Check().ok()) << "a completed caldera output may be replaced";
}

}  // namespace
}  // namespace caldera::job
