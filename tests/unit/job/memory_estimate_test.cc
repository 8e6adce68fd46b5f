#include "job/memory_estimate.h"

#include "gtest/gtest.h"

namespace caldera::job {
namespace {

model::ModelConfig Llama7B() {
  model::ModelConfig c;
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 32;
  c.head_dim = 128;
  c.vocab_size = 32000;
  return c;
}

// The documented formula, term by term, on a small shape.
TEST(MemoryEstimateTest, CalibrateFollowsTheDocumentedFormula) {
  model::ModelConfig c;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  const int64_t h = 8, a = 8, k = 4, i = 16, L = 5, T = 3 * 5;
  const int64_t w = 4 * (2 * h * a + 2 * h * k + 3 * h * i);
  const int64_t s = 8 * (2 * h * h + a * a + i * i);
  const int64_t x = 4 * T * h;
  const int64_t act = 4 * L * (6 * h + 3 * i + 2 * a + 2 * k) + 4 * 2 * L * L;
  EXPECT_EQ(EstimateCalibrateBytes(c, 3, 5), kTaskBaseBytes + 2 * w + 3 * s + 3 * x + act);
  EXPECT_EQ(EstimateDecomposeBytes(c, "down_proj"),
            kTaskBaseBytes + 4 * h * i + 4 * 8 * i * i + 6 * 8 * h * i);
}

// Sharding divides the hidden-states term: more shards, less memory per task,
// and the token-independent part (weights, Hessians) stays.
TEST(MemoryEstimateTest, ShardsShrinkTheCalibrateTaskDownToTheTokenIndependentPart) {
  const model::ModelConfig c = Llama7B();
  const int64_t one = EstimateCalibrateBytes(c, 256, 4096);
  const int64_t four = EstimateCalibrateBytes(c, LargestShardSamples(256, 4), 4096);
  EXPECT_GT(one, four);
  EXPECT_EQ(one - four, 3 * 4 * (256 - 64) * 4096 * int64_t{4096});
  // 256 x 4096 tokens: ~16 GiB of float32 hidden states, held three times.
  EXPECT_GT(one, int64_t{48} << 30);
  EXPECT_EQ(LargestShardSamples(10, 3), 4);
  EXPECT_EQ(LargestShardSamples(10, 1), 10);
}

TEST(MemoryEstimateTest, MinShardsToFitIsTheFewestThatFit) {
  const model::ModelConfig c = Llama7B();
  const int64_t limit = int64_t{24} << 30;  // a 24 GiB worker
  const int n = MinShardsToFit(c, 256, 4096, limit, 256);
  ASSERT_GT(n, 1);
  EXPECT_LE(EstimateCalibrateBytes(c, LargestShardSamples(256, n), 4096), limit);
  EXPECT_GT(EstimateCalibrateBytes(c, LargestShardSamples(256, n - 1), 4096), limit);
  EXPECT_EQ(MinShardsToFit(c, 256, 4096, int64_t{1} << 30, 256), 0);  // weights alone exceed it
  EXPECT_EQ(MinShardsToFit(c, 4, 4096, int64_t{1} << 40, 256), 1);
  EXPECT_EQ(FormatBytes(int64_t{3} << 29), "1.50 GiB");
  EXPECT_EQ(FormatBytes(int64_t{12} << 20), "12.0 MiB");
}

}  // namespace
}  // namespace caldera::job
