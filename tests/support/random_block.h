// A small random decoder block (weights, norms, optional q/k/v biases) and
// its config, for tests of the block forward and its runners that need no
// checkpoint. Deterministic for a seed.
#ifndef CALDERA_TESTS_SUPPORT_RANDOM_BLOCK_H_
#define CALDERA_TESTS_SUPPORT_RANDOM_BLOCK_H_

#include <cstdint>
#include <random>

#include "core/model/llama_block.h"
#include "core/model/model_config.h"

namespace caldera::testing {

// hidden 64 = 4 heads of 16 over 2 key/value heads, MLP 96.
inline model::ModelConfig SmallBlockConfig(bool attention_bias) {
  model::ModelConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 1;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 32;
  c.max_position_embeddings = 256;
  c.attention_bias = attention_bias;
  return c;
}

// Rows × cols values, normal with standard deviation `scale`.
inline model::RowMatrixF RandomRows(int64_t rows, int64_t cols, float scale, std::mt19937* rng) {
  std::normal_distribution<float> normal(0.0f, scale);
  model::RowMatrixF m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = normal(*rng);
  return m;
}

inline model::BlockWeights RandomBlock(const model::ModelConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const int64_t in = c.intermediate_size;
  model::BlockWeights w;
  const float s = 0.15f;
  w.q = RandomRows(q, h, s, &rng);
  w.k = RandomRows(kv, h, s, &rng);
  w.v = RandomRows(kv, h, s, &rng);
  w.o = RandomRows(h, q, s, &rng);
  w.gate = RandomRows(in, h, s, &rng);
  w.up = RandomRows(in, h, s, &rng);
  w.down = RandomRows(h, in, s, &rng);
  w.input_norm = (RandomRows(h, 1, 0.1f, &rng).array() + 1.0f).matrix();
  w.post_norm = (RandomRows(h, 1, 0.1f, &rng).array() + 1.0f).matrix();
  if (c.attention_bias) {
    w.q_bias = RandomRows(q, 1, 0.1f, &rng);
    w.k_bias = RandomRows(kv, 1, 0.1f, &rng);
    w.v_bias = RandomRows(kv, 1, 0.1f, &rng);
  }
  return w;
}

}  // namespace caldera::testing

#endif  // CALDERA_TESTS_SUPPORT_RANDOM_BLOCK_H_
