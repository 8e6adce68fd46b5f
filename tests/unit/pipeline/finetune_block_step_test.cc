// The finetune(layer) task's step on the stories260K fixture: block 0
// calibrated and decomposed by the pipeline's own steps (uniform 3-bit LDLQ),
// then fine-tuned. An attempt that is stopped part-way (a killed or cancelled
// task) ends CANCELLED; the retry, in a new attempt directory, writes the
// same bytes as an undisturbed attempt; the tuned artifacts keep the records'
// tensors, shapes and dtypes and their reports.
#include "pipeline/finetune_block_step.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/format/finetune_block.h"
#include "core/format/matrix_artifact.h"
#include "core/format/safetensors.h"
#include "core/format/tokens.h"
#include "core/model/model_config.h"
#include "gtest/gtest.h"
#include "model_io/model_inputs.h"
#include "pipeline/calibrate_step.h"
#include "pipeline/decompose_step.h"
#include "storage/storage_options.h"
#include "tests/support/fixtures.h"

namespace caldera::pipeline {
namespace {

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class FinetuneBlockStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> p = testing::FixturePath("stories260K/model.safetensors");
    ASSERT_TRUE(p.ok()) << p.status();
    spec_.model = p->substr(0, p->rfind('/'));
    spec_.out = tmp_.Join("out");
    spec_.method = decompose::Method::kLdlq;
    spec_.quantizer = quant::Quantizer::kUniform;
    spec_.q_bits = 3;
    spec_.finetune_steps = 10;
    absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
        model_io::OpenCheckpointAt(spec_.model, options_);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ckpt_ = *std::move(ckpt);
    // 16 calibration sequences of 64 tokens: seconds, not a minute.
    absl::StatusOr<model::TokenSet> all =
        model_io::LoadTokensAt(spec_.model + "/calibration.safetensors", ckpt_->config(), options_);
    ASSERT_TRUE(all.ok()) << all.status();
    format::TokenSet cut;
    cut.samples = 16;
    cut.seq_len = 64;
    for (int64_t s = 0; s < cut.samples; ++s) {
      cut.ids.insert(cut.ids.end(), all->ids.begin() + s * all->seq_len,
                     all->ids.begin() + s * all->seq_len + 64);
    }
    spec_.calibration = tmp_.Join("calibration.safetensors");
    ASSERT_TRUE(format::WriteTokenFile(cut, spec_.calibration).ok());
    // Block 0 as the sequential job calibrates it: its Hessians and the
    // embedded tokens (the states entering it).
    CalibrateRequest c;
    c.layer = 0;
    c.input_uri = spec_.calibration;
    c.hessians_uri = tmp_.Join("h0.safetensors");
    c.hidden_out_uri = tmp_.Join("x0.safetensors");
    c.sequential = true;
    absl::StatusOr<CalibrateResult> cal = Calibrate(*ckpt_, c, StepEnvironment(options_));
    ASSERT_TRUE(cal.ok()) << cal.status();
    request_.spec = spec_;
    request_.layer = 0;
    request_.input_uris = {c.hidden_out_uri};
    for (const model::LinearModule& m : model::kLinearModules) {
      DecomposeRequest d;
      d.layer = 0;
      d.module = m.name;
      d.hessians_uris = {c.hessians_uri};
      d.spec = spec_;
      d.artifact_uri = tmp_.Join(std::string(m.name) + ".safetensors");
      absl::StatusOr<DecomposeResult> done = Decompose(*ckpt_, d, StepEnvironment(options_));
      ASSERT_TRUE(done.ok()) << done.status();
      request_.artifact_uris.push_back(d.artifact_uri);
    }
  }

  // The request writing into attempt directory `dir`.
  FinetuneBlockRequest InDir(const std::string& dir) const {
    std::filesystem::create_directories(dir);
    FinetuneBlockRequest r = request_;
    for (const model::LinearModule& m : model::kLinearModules) {
      r.tuned_artifact_uris.push_back(dir + "/" + m.name + ".safetensors");
    }
    r.block_uri = dir + "/block.safetensors";
    r.original_states_out_uri = dir + "/original_states.safetensors";
    return r;
  }

  std::vector<std::string> Outputs(const FinetuneBlockRequest& r) const {
    std::vector<std::string> out;
    for (const std::string& u : r.tuned_artifact_uris) out.push_back(ReadBytes(u));
    out.push_back(ReadBytes(r.block_uri));
    out.push_back(ReadBytes(r.original_states_out_uri));
    return out;
  }

  testing::TempDir tmp_;
  storage::StorageOptions options_;
  job::JobSpec spec_;
  std::unique_ptr<model::Checkpoint> ckpt_;
  FinetuneBlockRequest request_;
};

TEST_F(FinetuneBlockStepTest, AStoppedAttemptIsRetriedToTheSameBytes) {
  const FinetuneBlockRequest first = InDir(tmp_.Join("a1"));
  absl::StatusOr<FinetuneBlockResult> a = FinetuneBlock(*ckpt_, first, StepEnvironment(options_));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->report.modules_tuned, 7);
  EXPECT_FALSE(a->report.kept_input);
  EXPECT_LT(a->report.holdout_after, a->report.holdout_before);
  // A second attempt stopped part-way (at its first tuning step: TuneBlock
  // polls the stop flag before every step).
  StepEnvironment stopping(options_);
  int polls = 0;
  stopping.cancelled = [&] { return ++polls > 1; };
  absl::StatusOr<FinetuneBlockResult> b = FinetuneBlock(*ckpt_, InDir(tmp_.Join("a2")), stopping);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kCancelled) << b.status();
  EXPECT_NE(b.status().message().find("fine-tuning was cancelled"), std::string::npos)
      << b.status();  // inside the tuning, not after it
  EXPECT_FALSE(std::filesystem::exists(tmp_.Join("a2/block.safetensors")));
  // Its retry writes what the first attempt wrote, byte for byte.
  const FinetuneBlockRequest third = InDir(tmp_.Join("a3"));
  ASSERT_TRUE(FinetuneBlock(*ckpt_, third, StepEnvironment(options_)).ok());
  const std::vector<std::string> x = Outputs(first), y = Outputs(third);
  ASSERT_EQ(x.size(), 9u);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_FALSE(x[i].empty()) << i;
    EXPECT_TRUE(x[i] == y[i]) << "output " << i << " differs between attempts";
  }
  // The tuned artifacts: same tensors, shapes and dtypes as the chosen ones,
  // other values, the same report.
  for (size_t i = 0; i < 7; ++i) {
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> in =
        SafetensorsReader::OpenFile(request_.artifact_uris[i]);
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> out =
        SafetensorsReader::OpenFile(first.tuned_artifact_uris[i]);
    ASSERT_TRUE(in.ok() && out.ok());
    ASSERT_EQ((*in)->tensors().size(), (*out)->tensors().size());
    for (size_t k = 0; k < (*in)->tensors().size(); ++k) {
      EXPECT_EQ((*in)->tensors()[k].name, (*out)->tensors()[k].name);
      EXPECT_EQ((*in)->tensors()[k].shape, (*out)->tensors()[k].shape);
      EXPECT_EQ((*in)->tensors()[k].dtype, (*out)->tensors()[k].dtype);
    }
    EXPECT_NE(ReadBytes(request_.artifact_uris[i]), x[i]) << i;
    absl::StatusOr<format::ModuleReport> r0 = format::ReadArtifactReport(**in);
    absl::StatusOr<format::ModuleReport> r1 = format::ReadArtifactReport(**out);
    ASSERT_TRUE(r0.ok() && r1.ok());
    EXPECT_EQ(r0->name, r1->name);
    EXPECT_EQ(r0->storage_bits, r1->storage_bits);
  }
  // The block file: both norms, the loss report.
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> block =
      SafetensorsReader::OpenFile(first.block_uri);
  ASSERT_TRUE(block.ok());
  absl::StatusOr<format::FinetuneBlockFile> file = format::ReadFinetuneBlock(**block);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->norms.size(), 2u);
  EXPECT_EQ(file->report.holdout_after, a->report.holdout_after);
}

}  // namespace
}  // namespace caldera::pipeline
