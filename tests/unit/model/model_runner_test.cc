#include "core/model/model_runner.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>

#include "absl/status/status.h"
#include "core/model/block_runner.h"
#include "core/model/test_model.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"
#include "tests/support/random_block.h"
#include "tests/support/subprocess.h"

namespace caldera::model {
namespace {

std::string FixtureDir() {
  absl::StatusOr<std::string> p = testing::FixturePath("stories260K");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : "";
}

std::unique_ptr<Checkpoint> OpenFixture() {
  const std::string dir = FixtureDir();
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt =
      Checkpoint::Open(LocalDirectoryOpener(dir), dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  return ckpt.ok() ? *std::move(ckpt) : nullptr;
}

TokenSet LoadFixtureTokens(const Checkpoint& ckpt, const std::string& file) {
  auto reader = SafetensorsReader::OpenFile(FixtureDir() + "/" + file);
  EXPECT_TRUE(reader.ok()) << reader.status();
  absl::StatusOr<TokenSet> t = LoadTokens(**reader, ckpt.config());
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

TEST(ModelRunnerTest, FixturePerplexityMatchesReferenceWithinPointOnePercent) {
  std::unique_ptr<Checkpoint> ckpt = OpenFixture();
  ASSERT_NE(ckpt, nullptr);
  TokenSet tokens = LoadFixtureTokens(*ckpt, "eval.safetensors");
  EXPECT_EQ(tokens.samples, 64);
  EXPECT_EQ(tokens.seq_len, 256);
  absl::StatusOr<EvalResult> r = EvaluatePerplexity(*ckpt, tokens, RunOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->predictions, 64 * 255);
  // Reference from models/stories260K/README.md (independent float32 implementation).
  constexpr double kReference = 3.667005;
  EXPECT_NEAR(r->perplexity, kReference, kReference * 1e-3) << r->perplexity;
}

}  // namespace
}  // namespace caldera::model

namespace caldera::model {
namespace {

// Compares our logits for the first `n` sequences with the numpy reference.
void ExpectLogitsMatchReference(const std::string& model_dir, const std::string& tokens_path, int n,
                                double tol) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt =
      Checkpoint::Open(LocalDirectoryOpener(model_dir), model_dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto reader = SafetensorsReader::OpenFile(tokens_path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  absl::StatusOr<TokenSet> all = LoadTokens(**reader, (*ckpt)->config());
  ASSERT_TRUE(all.ok()) << all.status();
  TokenSet few = *all;
  few.samples = n;
  few.ids.resize(static_cast<size_t>(n * few.seq_len));
  absl::StatusOr<RowMatrixF> ours = ComputeLogits(**ckpt, few, RunOptions{});
  ASSERT_TRUE(ours.ok()) << ours.status();

  testing::TempDir tmp;
  const std::string out = tmp.Join("ref.f64");
  const std::string cmd = testing::PythonPath() + " " +
                          testing::SourcePath("tests/tools/llama_reference.py") + " '" + model_dir +
                          "' '" + tokens_path + "' " + std::to_string(n) + " '" + out + "'";
  ASSERT_EQ(testing::RunCommand(cmd), 0) << cmd;
  std::ifstream f(out, std::ios::binary);
  std::vector<double> ref(static_cast<size_t>(ours->size()));
  f.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * 8));
  ASSERT_TRUE(f) << "reference output has the wrong size";
  double max_err = 0;
  for (int64_t r = 0; r < ours->rows(); ++r) {
    for (int64_t c = 0; c < ours->cols(); ++c) {
      max_err = std::max(max_err, std::abs((*ours)(r, c) - ref[r * ours->cols() + c]));
    }
  }
  EXPECT_LT(max_err, tol) << model_dir;
}

TEST(ModelReferenceTest, FixtureLogitsMatchNumpyReference) {
  const std::string dir = FixtureDir();
  ExpectLogitsMatchReference(dir, dir + "/eval.safetensors", 3, 1e-4);
}

struct GeneratedCase {
  const char* label;
  TestModelOptions options;
};

TEST(ModelReferenceTest, GeneratedVariantsMatchNumpyReference) {
  std::vector<GeneratedCase> cases;
  TestModelOptions qwen;
  qwen.architecture = "Qwen2ForCausalLM";
  qwen.tie_word_embeddings = false;
  cases.push_back({"qwen2 bias, untied lm_head", qwen});
  TestModelOptions llama3;
  llama3.llama3_rope_scaling = true;
  llama3.rope_theta = 500000.0;
  llama3.num_kv_heads = 1;
  llama3.shards = 2;
  cases.push_back({"llama3 rope scaling, MQA, sharded", llama3});
  TestModelOptions bf16;
  bf16.dtype = DType::kBF16;
  bf16.architecture = "MistralForCausalLM";
  cases.push_back({"bf16 mistral", bf16});
  TestModelOptions qwen3;
  qwen3.architecture = "Qwen3ForCausalLM";
  qwen3.head_dim = 32;  // wider than hidden_size / num_heads, as Qwen3's 128 often is
  qwen3.rope_theta = 1000000.0;
  cases.push_back({"qwen3 q/k head norms, explicit head_dim", qwen3});
  TestModelOptions mixtral;
  mixtral.architecture = "MixtralForCausalLM";
  mixtral.intermediate_size = 48;  // each expert's width
  mixtral.num_experts = 4;
  mixtral.num_experts_per_tok = 2;
  cases.push_back({"mixtral: 4 experts, top-2, renormalised", mixtral});
  TestModelOptions qwen3_moe;
  qwen3_moe.architecture = "Qwen3MoeForCausalLM";
  qwen3_moe.num_experts = 6;
  qwen3_moe.num_experts_per_tok = 3;
  qwen3_moe.moe_intermediate_size = 24;
  qwen3_moe.tie_word_embeddings = false;
  cases.push_back({"qwen3-moe: 6 experts, top-3, not renormalised", qwen3_moe});
  qwen3_moe.norm_topk_prob = true;
  qwen3_moe.num_experts_per_tok = 2;
  cases.push_back({"qwen3-moe: top-2, norm_topk_prob", qwen3_moe});
  TestModelOptions f16;
  f16.dtype = DType::kF16;
  f16.num_kv_heads = 4;
  cases.push_back({"f16 MHA", f16});
  for (const GeneratedCase& c : cases) {
    SCOPED_TRACE(c.label);
    testing::TempDir dir;
    ASSERT_TRUE(WriteTestModel(c.options, dir.Join("m")).ok());
    ASSERT_TRUE(
        WriteTestTokens(2, 96, c.options.vocab_size, 5, dir.Join("tokens.safetensors")).ok());
    ExpectLogitsMatchReference(dir.Join("m"), dir.Join("tokens.safetensors"), 2, 1e-4);
  }
}

}  // namespace
}  // namespace caldera::model

namespace caldera::model {
namespace {

TokenSet Slice(const TokenSet& t, int64_t first, int64_t count) {
  TokenSet s;
  s.samples = count;
  s.seq_len = t.seq_len;
  s.ids.assign(t.ids.begin() + first * t.seq_len, t.ids.begin() + (first + count) * t.seq_len);
  return s;
}

std::vector<BlockHessians> Calibrate(const Checkpoint& ckpt, const TokenSet& tokens,
                                     int64_t batch_sequences) {
  std::vector<BlockHessians> out;
  RunOptions options;
  options.batch_sequences = batch_sequences;
  absl::Status s = CalibrateLayers(ckpt, tokens, 0, ckpt.config().num_layers - 1, options,
                                   [&](int64_t, BlockHessians& h) {
                                     out.push_back(h);
                                     return absl::OkStatus();
                                   });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

TEST(CalibrationTest, HessiansAreSymmetricPsdAndMatchDirectProducts) {
  std::unique_ptr<Checkpoint> ckpt = OpenFixture();
  ASSERT_NE(ckpt, nullptr);
  TokenSet tokens = Slice(LoadFixtureTokens(*ckpt, "calibration.safetensors"), 0, 8);
  std::vector<BlockHessians> h = Calibrate(*ckpt, tokens, 3);  // batches span sequences
  ASSERT_EQ(h.size(), 5u);
  for (const BlockHessians& b : h) {
    EXPECT_EQ(b.tokens, 8 * 256);
    for (const Eigen::MatrixXd* m : {&b.q_proj, &b.o_proj, &b.gate_proj, &b.down_proj}) {
      EXPECT_LT((*m - m->transpose()).norm(), 1e-12 * m->norm());
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(*m);
      EXPECT_GT(eig.eigenvalues().minCoeff(), -1e-9 * eig.eigenvalues().maxCoeff());
      EXPECT_GT(m->trace(), 0);
    }
  }
  // Layer 0's q/k/v input is RMSNorm(embedding): compute X^T X directly.
  absl::StatusOr<RowMatrixF> emb = EmbedTokens(*ckpt, tokens);
  ASSERT_TRUE(emb.ok());
  absl::StatusOr<BlockWeights> w0 = LoadBlock(*ckpt, 0);
  ASSERT_TRUE(w0.ok());
  RowMatrixF x;
  RmsNorm(*emb, w0->input_norm, ckpt->config().rms_norm_eps, &x);
  const Eigen::MatrixXd direct = x.cast<double>().transpose() * x.cast<double>();
  EXPECT_LT((h[0].q_proj - direct).norm(), 1e-5 * direct.norm());
}

TEST(CalibrationTest, ShardsSumToTheUnshardedResult) {
  std::unique_ptr<Checkpoint> ckpt = OpenFixture();
  ASSERT_NE(ckpt, nullptr);
  TokenSet all = Slice(LoadFixtureTokens(*ckpt, "calibration.safetensors"), 0, 6);
  // With one sequence per forward batch (the default), every sequence's
  // activations are computed by the same GEMM shapes whatever the sharding, so
  // the only difference is the float64 summation order of the Hessians.
  std::vector<BlockHessians> whole = Calibrate(*ckpt, all, 1);
  std::vector<BlockHessians> a = Calibrate(*ckpt, Slice(all, 0, 2), 1);
  std::vector<BlockHessians> b = Calibrate(*ckpt, Slice(all, 2, 4), 1);
  ASSERT_EQ(whole.size(), a.size());
  for (size_t l = 0; l < whole.size(); ++l) {
    BlockHessians sum = a[l];
    sum.Add(b[l]);
    EXPECT_EQ(sum.tokens, whole[l].tokens);
    EXPECT_LT((sum.down_proj - whole[l].down_proj).norm(), 1e-13 * whole[l].down_proj.norm());
    EXPECT_LT((sum.o_proj - whole[l].o_proj).norm(), 1e-13 * whole[l].o_proj.norm());
    EXPECT_LT((sum.q_proj - whole[l].q_proj).norm(), 1e-13 * whole[l].q_proj.norm());
  }
}

TEST(TokensTest, BadTokenFilesGiveClearErrors) {
  std::unique_ptr<Checkpoint> ckpt = OpenFixture();
  ASSERT_NE(ckpt, nullptr);
  testing::TempDir dir;
  auto check = [&](Tensor t, const char* name, const char* expect) {
    SafetensorsWriter w;
    ASSERT_TRUE(w.Add(name, std::move(t)).ok());
    ASSERT_TRUE(w.WriteFile(dir.Join("t.safetensors")).ok());
    auto r = SafetensorsReader::OpenFile(dir.Join("t.safetensors"));
    ASSERT_TRUE(r.ok());
    absl::Status s = LoadTokens(**r, ckpt->config()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(expect), std::string::npos) << s;
  };
  std::vector<int32_t> ids = {1, 5, 600, 2};
  check(*Tensor::FromValues<int32_t>({2, 2}, ids), "input_ids", "token id 600 at sample 1");
  check(*Tensor::Zeros(DType::kI32, {0, 4}), "input_ids", "is empty");
  check(*Tensor::Zeros(DType::kI32, {1, 513}), "input_ids", "exceed the model's");
  check(*Tensor::Zeros(DType::kF32, {1, 4}), "input_ids", "expected I32");
  check(*Tensor::Zeros(DType::kI32, {1, 4}), "tokens", "no 'input_ids' tensor");
}

}  // namespace
}  // namespace caldera::model

namespace caldera::model {
namespace {

// Counts what RunLayer asks of a runner, running the CPU one underneath.
class CountingRunner final : public BlockRunner {
 public:
  CountingRunner(std::unique_ptr<BlockRunner> inner, int* forwards, int* flushes)
      : inner_(std::move(inner)), forwards_(forwards), flushes_(flushes) {}
  absl::Status Forward(RowMatrixF* hidden) override {
    ++*forwards_;
    return inner_->Forward(hidden);
  }
  absl::Status Flush() override {
    ++*flushes_;
    return inner_->Flush();
  }

 private:
  std::unique_ptr<BlockRunner> inner_;
  int* forwards_;
  int* flushes_;
};

TEST(BlockRunnerTest, CpuRunnerIsBlockForwardBitForBit) {
  for (bool bias : {false, true}) {
    const ModelConfig c = testing::SmallBlockConfig(bias);
    const BlockWeights w = testing::RandomBlock(c, 7);
    std::mt19937 rng(3);
    const int64_t seq_len = 24;
    const RowMatrixF input = testing::RandomRows(3 * seq_len, c.hidden_size, 1.0f, &rng);

    RowMatrixF expected = input;
    BlockHessians expected_h = BlockHessians::Zeros(c);
    BlockForward(c, w, MakeRopeTable(c, seq_len), seq_len, &expected, &expected_h);

    BlockHessians h = BlockHessians::Zeros(c);
    absl::StatusOr<std::unique_ptr<BlockRunner>> runner = MakeCpuBlockRunner(c, w, seq_len, &h);
    ASSERT_TRUE(runner.ok()) << runner.status();
    RowMatrixF got = input;
    ASSERT_TRUE((*runner)->Forward(&got).ok());
    ASSERT_TRUE((*runner)->Flush().ok());
    EXPECT_EQ(got, expected);
    EXPECT_EQ(h.tokens, 3 * seq_len);
    EXPECT_EQ(h.q_proj, expected_h.q_proj);
    EXPECT_EQ(h.o_proj, expected_h.o_proj);
    EXPECT_EQ(h.gate_proj, expected_h.gate_proj);
    EXPECT_EQ(h.down_proj, expected_h.down_proj);
    EXPECT_GT(h.down_proj.norm(), 0);

    // Not whole sequences, or the wrong width: a message, nothing run.
    RowMatrixF ragged = input.topRows(seq_len + 1);
    absl::Status s = (*runner)->Forward(&ragged);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("whole sequences of 24"), std::string::npos) << s;
    RowMatrixF narrow = input.leftCols(8);
    EXPECT_EQ((*runner)->Forward(&narrow).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(h.tokens, 3 * seq_len);
  }
  EXPECT_EQ(
      MakeCpuBlockRunner(testing::SmallBlockConfig(false),
                         testing::RandomBlock(testing::SmallBlockConfig(false), 1), 0, nullptr)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(BlockRunnerTest, CalibrationRunsEveryBlockThroughThePreparedRunner) {
  std::unique_ptr<Checkpoint> ckpt = OpenFixture();
  ASSERT_NE(ckpt, nullptr);
  TokenSet tokens = Slice(LoadFixtureTokens(*ckpt, "calibration.safetensors"), 0, 4);
  const std::vector<BlockHessians> expected = Calibrate(*ckpt, tokens, 2);

  int prepared = 0, forwards = 0, flushes = 0;
  RunOptions options;
  options.batch_sequences = 2;
  options.prepare_block = [&](const ModelConfig& c, const BlockWeights& w, int64_t seq_len,
                              BlockHessians* h) -> absl::StatusOr<std::unique_ptr<BlockRunner>> {
    ++prepared;
    absl::StatusOr<std::unique_ptr<BlockRunner>> cpu = MakeCpuBlockRunner(c, w, seq_len, h);
    if (!cpu.ok()) return cpu.status();
    return std::make_unique<CountingRunner>(*std::move(cpu), &forwards, &flushes);
  };
  std::vector<BlockHessians> got;
  absl::Status s = CalibrateLayers(*ckpt, tokens, 0, ckpt->config().num_layers - 1, options,
                                   [&](int64_t, BlockHessians& h) {
                                     got.push_back(h);
                                     return absl::OkStatus();
                                   });
  ASSERT_TRUE(s.ok()) << s;
  const int layers = static_cast<int>(ckpt->config().num_layers);
  EXPECT_EQ(prepared, layers);
  EXPECT_EQ(forwards, 2 * layers);  // 4 sequences in batches of 2
  EXPECT_EQ(flushes, layers);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t l = 0; l < got.size(); ++l) {
    EXPECT_EQ(got[l].tokens, expected[l].tokens);
    EXPECT_EQ(got[l].q_proj, expected[l].q_proj);
    EXPECT_EQ(got[l].down_proj, expected[l].down_proj);
  }

  // A runner that cannot be prepared (a device out of memory) fails the run
  // with its own error.
  options.prepare_block = [](const ModelConfig&, const BlockWeights&, int64_t,
                             BlockHessians*) -> absl::StatusOr<std::unique_ptr<BlockRunner>> {
    return absl::ResourceExhaustedError("cudaMalloc(123 bytes): out of memory");
  };
  s = CalibrateLayers(*ckpt, tokens, 0, 0, options,
                      [](int64_t, BlockHessians&) { return absl::OkStatus(); });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
}

}  // namespace
}  // namespace caldera::model
