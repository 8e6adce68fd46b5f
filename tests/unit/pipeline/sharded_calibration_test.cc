// Sharded calibration on the stories260K fixture: the Hessians decompose
// reads from N shards (calibrate(l, s) per contiguous sample range, layer 1
// continuing from each shard's own hidden states) equal the unsharded ones up
// to summation order.
#include <Eigen/Dense>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/format/hessians.h"
#include "gtest/gtest.h"
#include "job/job_spec.h"
#include "model_io/hessians_reader.h"
#include "model_io/model_inputs.h"
#include "pipeline/calibrate_step.h"
#include "storage/storage_options.h"
#include "tests/support/fixtures.h"

namespace caldera::pipeline {
namespace {

TEST(ShardSamplesTest, ContiguousCoverEverySampleOnceAndDifferByAtMostOne) {
  for (int64_t samples : {1, 2, 7, 16, 100}) {
    for (int n = 1; n <= samples && n <= 9; ++n) {
      int64_t next = 0, smallest = samples, largest = 0;
      for (int s = 0; s < n; ++s) {
        const job::SampleRange r = job::ShardSamples(samples, s, n);
        EXPECT_EQ(r.begin, next) << samples << " " << n << " " << s;
        next = r.end;
        smallest = std::min(smallest, r.end - r.begin);
        largest = std::max(largest, r.end - r.begin);
      }
      EXPECT_EQ(next, samples);
      EXPECT_GE(smallest, 1);
      EXPECT_LE(largest - smallest, 1);
    }
  }
}

class ShardedCalibrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> p = testing::FixturePath("stories260K/model.safetensors");
    ASSERT_TRUE(p.ok()) << p.status();
    model_dir_ = p->substr(0, p->rfind('/'));
    absl::StatusOr<std::unique_ptr<model::Checkpoint>> c =
        model_io::OpenCheckpointAt(model_dir_, options_);
    ASSERT_TRUE(c.ok()) << c.status();
    checkpoint_ = *std::move(c);
  }

  // Calibrates layers 0 and 1 with `n` shards (original mode); returns, per
  // layer, the Hessians files of its shards in shard order.
  std::vector<std::vector<std::string>> CalibrateShards(int n) {
    std::vector<std::vector<std::string>> files(2);
    for (int s = 0; s < n; ++s) {
      std::string input = model_dir_ + "/calibration.safetensors";
      for (int layer = 0; layer < 2; ++layer) {
        const std::string base = tmp_.Join(absl::StrCat("n", n, "-l", layer, "-s", s));
        const std::string hessians = base + ".hessians.safetensors";
        const std::string hidden = base + ".hidden.safetensors";
        CalibrateRequest request;
        request.layer = layer;
        request.input_uri = input;
        request.hessians_uri = hessians;
        request.hidden_out_uri = hidden;
        request.shard = s;
        request.num_shards = n;
        absl::StatusOr<CalibrateResult> io =
            Calibrate(*checkpoint_, request, StepEnvironment{options_});
        EXPECT_TRUE(io.ok()) << io.status();
        files[layer].push_back(hessians);
        input = hidden;
      }
    }
    return files;
  }

  testing::TempDir tmp_;
  storage::StorageOptions options_;
  std::string model_dir_;
  std::unique_ptr<model::Checkpoint> checkpoint_;
};

TEST_F(ShardedCalibrationTest, ShardedHessiansEqualUnshardedWithinOneMillionth) {
  const std::vector<std::vector<std::string>> one = CalibrateShards(1);
  for (int n : {2, 3}) {
    const std::vector<std::vector<std::string>> sharded = CalibrateShards(n);
    for (int layer = 0; layer < 2; ++layer) {
      ASSERT_EQ(sharded[layer].size(), static_cast<size_t>(n));
      for (const char* name : format::kHessianNames) {
        absl::StatusOr<Eigen::MatrixXd> ref =
            model_io::ReadShardedHessian(one[layer], name, options_);
        absl::StatusOr<Eigen::MatrixXd> got =
            model_io::ReadShardedHessian(sharded[layer], name, options_);
        ASSERT_TRUE(ref.ok() && got.ok()) << ref.status() << got.status();
        const double rel = (*got - *ref).norm() / ref->norm();
        EXPECT_LT(rel, 1e-6) << "n=" << n << " layer " << layer << " " << name;
        EXPECT_LT((*got - *ref).cwiseAbs().maxCoeff(), 1e-6 * ref->cwiseAbs().maxCoeff())
            << "n=" << n << " layer " << layer << " " << name;
        // A shard alone is a different estimate: the test is not vacuous.
        absl::StatusOr<Eigen::MatrixXd> first =
            model_io::ReadShardedHessian({sharded[layer][0]}, name, options_);
        ASSERT_TRUE(first.ok());
        EXPECT_GT((*first - *ref).norm() / ref->norm(), 1e-3) << name;
      }
    }
  }
}

TEST_F(ShardedCalibrationTest, ShardOutsideTheRangeIsRefused) {
  CalibrateRequest request;
  request.input_uri = model_dir_ + "/calibration.safetensors";
  request.hessians_uri = tmp_.Join("h.safetensors");
  request.shard = 3;
  request.num_shards = 3;
  absl::StatusOr<CalibrateResult> io = Calibrate(*checkpoint_, request, StepEnvironment{options_});
  ASSERT_FALSE(io.ok());
  EXPECT_NE(io.status().message().find("shard 3 is outside [0, 3)"), std::string::npos)
      << io.status();
}

}  // namespace
}  // namespace caldera::pipeline
