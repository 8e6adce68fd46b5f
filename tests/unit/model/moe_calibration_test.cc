// A mixture's calibration: each expert's Hessians come from the tokens the
// router sends it, and an expert that gets none (or few) falls back on the
// layer's mean (core/model/hessians_file.h). Checked through identities that
// hold whatever the routing is (every token goes to exactly top-k experts, so
// the experts' input sums add up to top-k times the router input's), on
// models written by WriteTestModel.
#include <memory>

#include "core/format/hessians.h"
#include "core/format/safetensors.h"
#include "core/io/random_access_source.h"
#include "core/model/hessians_file.h"
#include "core/model/model_runner.h"
#include "core/model/test_model.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera::model {
namespace {

// The symmetrised Hessian sums of layer 0 of a fresh test model.
BlockHessians CalibrateLayer0(const TestModelOptions& o, int64_t samples, int64_t seq_len) {
  testing::TempDir dir;
  EXPECT_TRUE(WriteTestModel(o, dir.Join("m")).ok());
  EXPECT_TRUE(WriteTestTokens(samples, seq_len, o.vocab_size, 7, dir.Join("t.safetensors")).ok());
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt =
      Checkpoint::Open(LocalDirectoryOpener(dir.Join("m")), dir.Join("m"));
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  auto reader = SafetensorsReader::OpenFile(dir.Join("t.safetensors"));
  EXPECT_TRUE(reader.ok());
  absl::StatusOr<TokenSet> tokens = LoadTokens(**reader, (*ckpt)->config());
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  BlockHessians out;
  RunOptions options;
  options.batch_sequences = 2;
  EXPECT_TRUE(CalibrateLayers(**ckpt, *tokens, 0, 0, options, [&](int64_t, BlockHessians& h) {
                out = h;
                return absl::OkStatus();
              }).ok());
  return out;
}

double RelDiff(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return (a - b).norm() / b.norm();
}

Eigen::MatrixXd AsMatrix(const Tensor& t) {
  return Eigen::Map<const Eigen::MatrixXd>(t.data<double>().data(), t.dim(0), t.dim(1));
}

TEST(MoeCalibrationTest, ExpertInputsPartitionTheTokensTopKTimes) {
  TestModelOptions o;
  o.architecture = "Qwen3MoeForCausalLM";
  o.num_layers = 1;
  o.num_experts = 5;
  o.num_experts_per_tok = 2;
  o.moe_intermediate_size = 24;
  const BlockHessians h = CalibrateLayer0(o, 4, 32);
  ASSERT_EQ(h.expert_tokens.size(), 5u);
  int64_t pairs = 0;
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(64, 64);
  for (int64_t e = 0; e < 5; ++e) {
    pairs += h.expert_tokens[e];
    sum += h.expert_gate[e];
    EXPECT_EQ(h.expert_down[e].rows(), 24);
  }
  EXPECT_EQ(h.tokens, 4 * 32);
  EXPECT_EQ(pairs, 2 * h.tokens);  // each token reaches exactly two experts
  // Float32 products over different row subsets, summed in float64.
  EXPECT_LT(RelDiff(sum, 2 * h.gate_proj), 1e-6);
  EXPECT_EQ(h.down_proj.size(), 0);  // a mixture has no dense down input
}

TEST(MoeCalibrationTest, StarvedExpertFallsBackOnTheLayerMean) {
  TestModelOptions o;
  o.architecture = "MixtralForCausalLM";
  o.num_layers = 1;
  o.num_experts = 3;
  o.num_experts_per_tok = 1;
  o.intermediate_size = 40;
  o.starve_last_expert = true;
  BlockHessians h = CalibrateLayer0(o, 4, 32);
  ASSERT_EQ(h.expert_tokens.size(), 3u);
  EXPECT_EQ(h.expert_tokens[2], 0);
  EXPECT_EQ(h.expert_tokens[0] + h.expert_tokens[1], h.tokens);
  ASSERT_GE(h.expert_tokens[0], kExpertPriorTokens);
  ASSERT_GE(h.expert_tokens[1], kExpertPriorTokens);
  const double n = static_cast<double>(h.tokens);
  const Eigen::MatrixXd gate_mean = h.gate_proj / n;
  const Eigen::MatrixXd own0 = h.expert_gate[0] / static_cast<double>(h.expert_tokens[0]);
  const Eigen::MatrixXd down_mean = (h.expert_down[0] + h.expert_down[1]) / n;
  absl::StatusOr<format::Hessians> f = NormalisedHessians(std::move(h), 0);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->experts.size(), 3u);
  EXPECT_EQ(f->experts[2].tokens, 0);
  EXPECT_EQ(f->experts[2].prior_share, 1.0);
  EXPECT_EQ(f->experts[0].prior_share, 0.0);
  EXPECT_LT(RelDiff(AsMatrix(f->experts[2].gate), gate_mean), 1e-15);
  EXPECT_LT(RelDiff(AsMatrix(f->experts[2].down), down_mean), 1e-15);
  EXPECT_LT(RelDiff(AsMatrix(f->experts[0].gate), own0), 1e-15);
  EXPECT_LT(RelDiff(AsMatrix(f->matrices[3]), down_mean), 1e-15);

  // The file keeps each expert's matrices, count and share.
  absl::StatusOr<std::string> bytes = format::SerializeHessians(*std::move(f));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> r = SafetensorsReader::Open(MakeMemorySource(
      "layer-0.hessians.safetensors", std::vector<uint8_t>(bytes->begin(), bytes->end())));
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<Tensor> g2 = format::ReadHessian(**r, "experts.2.gate_proj");
  ASSERT_TRUE(g2.ok()) << g2.status();
  EXPECT_LT(RelDiff(AsMatrix(*g2), gate_mean), 1e-15);
  absl::StatusOr<std::pair<int64_t, double>> t2 = format::ReadExpertTokens(**r, 2);
  ASSERT_TRUE(t2.ok()) << t2.status();
  EXPECT_EQ(t2->first, 0);
  EXPECT_EQ(t2->second, 1.0);
  EXPECT_FALSE(format::ReadExpertTokens(**r, 3).ok());
  EXPECT_FALSE(format::ReadHessian(**r, "experts.3.gate_proj").ok());
  EXPECT_FALSE(format::ReadHessian(**r, "experts.1.up_proj").ok());  // up shares gate's
}

TEST(MoeCalibrationTest, FewTokensBlendTowardTheMean) {
  // Expert 0 with n < kExpertPriorTokens tokens: (S + (16 - n)·M) / 16.
  BlockHessians h;
  h.tokens = 10;
  h.q_proj = h.gate_proj = 10 * Eigen::MatrixXd::Identity(2, 2);
  h.o_proj = Eigen::MatrixXd::Identity(2, 2);
  h.expert_gate = {4 * Eigen::MatrixXd::Ones(2, 2), Eigen::MatrixXd::Zero(2, 2)};
  h.expert_down = {Eigen::MatrixXd::Identity(3, 3), 9 * Eigen::MatrixXd::Identity(3, 3)};
  h.expert_tokens = {4, 16};
  absl::StatusOr<format::Hessians> f = NormalisedHessians(h, 0);
  ASSERT_TRUE(f.ok()) << f.status();
  // gate: (4·1 + 12·I) / 16; down: mean (1 + 9)/20 = 0.5 → (I + 12·0.5·I) / 16
  Eigen::MatrixXd gate =
      (4 * Eigen::MatrixXd::Ones(2, 2) + 12 * Eigen::MatrixXd::Identity(2, 2)) / 16;
  EXPECT_LT(RelDiff(AsMatrix(f->experts[0].gate), gate), 1e-15);
  EXPECT_LT(RelDiff(AsMatrix(f->experts[0].down), 7.0 / 16 * Eigen::MatrixXd::Identity(3, 3)),
            1e-15);
  EXPECT_EQ(f->experts[0].prior_share, 12.0 / 16);
  EXPECT_EQ(f->experts[1].prior_share, 0.0);
  EXPECT_LT(RelDiff(AsMatrix(f->experts[1].down), 9.0 / 16 * Eigen::MatrixXd::Identity(3, 3)),
            1e-15);
}

}  // namespace
}  // namespace caldera::model
