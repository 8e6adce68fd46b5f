// TuneBlock on a small random block whose linears are compressed records:
// the held-out error falls, the records keep their layout, the result is
// deterministic, and a block that cannot improve is kept as it came in.
#include "core/finetune/block_tuner.h"

#include <gtest/gtest.h>

#include "core/model/llama_block.h"
#include "tests/unit/finetune/finetune_test_support.h"

namespace caldera::finetune {
namespace {

using model::RowMatrixF;
using testing::RecordKind;

struct Fixture {
  model::ModelConfig config;
  int64_t seq_len = 16;
  model::BlockWeights original, compressed;
  std::array<NamedTensors, 7> records;
  RowMatrixF x, target;
};

Fixture MakeFixture() {
  Fixture f;
  model::ModelConfig& c = f.config;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.num_layers = 1;
  c.rms_norm_eps = 1e-5;
  const int64_t shapes[7][2] = {{32, 32}, {16, 32}, {16, 32}, {32, 32},
                                {48, 32}, {48, 32}, {32, 48}};
  model::RowMatrixF* dense[] = {&f.original.q,    &f.original.k,  &f.original.v,   &f.original.o,
                                &f.original.gate, &f.original.up, &f.original.down};
  f.original.input_norm = model::VectorF::Ones(32);
  f.original.post_norm = model::VectorF::Ones(32);
  f.compressed = f.original;
  model::RowMatrixF* out[] = {&f.compressed.q,   &f.compressed.k,    &f.compressed.v,
                              &f.compressed.o,   &f.compressed.gate, &f.compressed.up,
                              &f.compressed.down};
  for (int i = 0; i < 7; ++i) {
    const quant::MatrixF w = testing::RandomMatrix(shapes[i][0], shapes[i][1], 100 + i, 0.2f);
    *dense[i] = w;
    // Alternate the kinds so every parametrisation takes part.
    const RecordKind kind = i % 3 == 0   ? RecordKind::kE8pLowRank
                            : i % 3 == 1 ? RecordKind::kUniformLowRank
                                         : RecordKind::kUniformLdlq;
    f.records[i] = testing::RecordOf(w, kind);
    *out[i] = *decompose::Reconstruct(f.records[i]);
  }
  f.x = testing::RandomMatrix(64 * f.seq_len, 32, 99, 1.0f);
  f.target = f.x;
  const model::RopeTable rope = model::MakeRopeTable(c, f.seq_len);
  for (int64_t r0 = 0; r0 < f.target.rows(); r0 += f.seq_len) {
    RowMatrixF s = f.target.middleRows(r0, f.seq_len);
    model::BlockForward(c, f.original, rope, f.seq_len, &s, nullptr);
    f.target.middleRows(r0, f.seq_len) = s;
  }
  return f;
}

absl::StatusOr<BlockTuneResult> Tune(const Fixture& f, const FineTuneOptions& o) {
  std::array<std::optional<TunableLinear>, 7> linears;
  for (int i = 0; i < 7; ++i) {
    absl::StatusOr<TunableLinear> t = TunableLinear::FromRecord(f.records[i]);
    if (!t.ok()) return t.status();
    linears[i] = *std::move(t);
  }
  return TuneBlock(f.config, f.seq_len, f.x, f.target, f.compressed, std::move(linears), o);
}

FineTuneOptions Options() {
  FineTuneOptions o;
  o.steps = 40;
  o.lr = 1e-2;
  o.batch_sequences = 8;
  o.holdout = 0.125;
  o.eval_every = 5;
  return o;
}

TEST(BlockTunerTest, LowersTheHeldOutErrorAndKeepsTheLayout) {
  const Fixture f = MakeFixture();
  absl::StatusOr<BlockTuneResult> r = Tune(f, Options());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->report.kept_input);
  EXPECT_GT(r->report.steps, 0);
  EXPECT_LT(r->report.holdout_after, 0.95 * r->report.holdout_before)
      << r->report.holdout_before << " -> " << r->report.holdout_after;
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(r->records[i].has_value()) << i;
    ASSERT_EQ(r->records[i]->size(), f.records[i].size());
    for (size_t k = 0; k < f.records[i].size(); ++k) {
      EXPECT_EQ((*r->records[i])[k].second.shape(), f.records[i][k].second.shape());
      EXPECT_EQ((*r->records[i])[k].second.dtype(), f.records[i][k].second.dtype());
    }
    // The returned weights are what the exported records rebuild.
    absl::StatusOr<quant::MatrixF> w = decompose::Reconstruct(*r->records[i]);
    ASSERT_TRUE(w.ok());
    const model::RowMatrixF* mine[] = {&r->weights.q,   &r->weights.k,    &r->weights.v,
                                       &r->weights.o,   &r->weights.gate, &r->weights.up,
                                       &r->weights.down};
    EXPECT_EQ((*w - quant::MatrixF(*mine[i])).cwiseAbs().maxCoeff(), 0.0f);
  }
}

TEST(BlockTunerTest, IsDeterministic) {
  const Fixture f = MakeFixture();
  FineTuneOptions o = Options();
  o.steps = 10;
  absl::StatusOr<BlockTuneResult> a = Tune(f, o), b = Tune(f, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->report.holdout_after, b->report.holdout_after);
  EXPECT_EQ(a->weights.q, b->weights.q);
  EXPECT_EQ(a->weights.post_norm, b->weights.post_norm);
}

TEST(BlockTunerTest, KeepsTheInputWhenNothingTrains) {
  const Fixture f = MakeFixture();
  FineTuneOptions o = Options();
  o.steps = 0;
  o.tune_norms = false;
  absl::StatusOr<BlockTuneResult> r = Tune(f, o);
  ASSERT_TRUE(r.ok()) << r.status();
  // Re-quantizing L and R alone does not help: the block stays as it came.
  EXPECT_TRUE(r->report.kept_input);
  for (const auto& rec : r->records) EXPECT_FALSE(rec.has_value());
  EXPECT_EQ(r->weights.q, f.compressed.q);
}

}  // namespace
}  // namespace caldera::finetune
