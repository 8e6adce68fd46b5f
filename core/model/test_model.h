// Random Llama-architecture checkpoints of any size, for tests, benchmarks and
// demos on machines without a real model. Deterministic for a seed (SplitMix64,
// the same bytes on every platform).
#ifndef CALDERA_CORE_MODEL_TEST_MODEL_H_
#define CALDERA_CORE_MODEL_TEST_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "core/tensor/dtype.h"

namespace caldera::model {

struct TestModelOptions {
  // or MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM (q/k head norms),
  // MixtralForCausalLM, Qwen3MoeForCausalLM (mixtures of experts)
  std::string architecture = "LlamaForCausalLM";
  int64_t hidden_size = 64;
  int64_t intermediate_size = 128;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t head_dim = 0;  // 0 = hidden_size / num_heads; otherwise written to config.json
  int64_t vocab_size = 128;
  int64_t max_position_embeddings = 256;
  double rope_theta = 10000.0;
  bool llama3_rope_scaling = false;  // adds {"rope_type": "llama3", factor 8, orig 64}
  bool tie_word_embeddings = true;
  bool attention_bias = false;  // forced on for Qwen2
  // Mixtures only: experts per block, experts per token, each expert's width
  // (Qwen3-MoE's moe_intermediate_size; Mixtral's experts are intermediate_size
  // wide), and Qwen3-MoE's norm_topk_prob (Mixtral always renormalises).
  int64_t num_experts = 4;
  int64_t num_experts_per_tok = 2;
  int64_t moe_intermediate_size = 32;
  bool norm_topk_prob = false;
  // The last expert's router row is the mean of the others', so its logit is
  // never above the largest: with num_experts_per_tok 1 no token is routed to
  // it (a calibration set that starves an expert, for tests).
  bool starve_last_expert = false;
  DType dtype = DType::kF32;  // F32, F16 or BF16 weights
  int shards = 1;             // >1 writes model-0000k-of-0000n + index
  uint64_t seed = 1;
};

// Writes config.json and the safetensors file(s) into `directory` (created).
absl::Status WriteTestModel(const TestModelOptions& options, const std::string& directory);

// Writes a token file with int32 input_ids [samples, seq_len], ids uniform in
// [0, vocab_size), each sequence starting with id 1 (BOS).
absl::Status WriteTestTokens(int64_t samples, int64_t seq_len, int64_t vocab_size, uint64_t seed,
                             const std::string& path);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_TEST_MODEL_H_
