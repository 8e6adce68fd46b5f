// The architecture of a Llama-family checkpoint, parsed from config.json.
#ifndef CALDERA_CORE_MODEL_MODEL_CONFIG_H_
#define CALDERA_CORE_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::model {

// The architectures we can run, as named in config.json "architectures".
inline constexpr const char* kSupportedArchitectures[] = {
    "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
    "Qwen3ForCausalLM", "MixtralForCausalLM", "Qwen3MoeForCausalLM"};

// Where a mixture-of-experts block keeps its router and experts.
enum class MoeLayout {
  kNone,     // a dense SwiGLU MLP (mlp.gate_proj/up_proj/down_proj)
  kMixtral,  // block_sparse_moe.gate, block_sparse_moe.experts.E.w1 (gate) / w3 (up) / w2 (down)
  kQwen3Moe  // mlp.gate, mlp.experts.E.gate_proj / up_proj / down_proj
};

// Upper bound on config.json's expert count (DeepSeek-V3 has 256, Qwen3-MoE 128).
inline constexpr int64_t kMaxExperts = 1024;

struct RopeScaling {
  std::string type;  // "" (none), "llama3", "linear"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2: always)
  // RMSNorm over each head of q and of k before the rotary embedding, with
  // weights self_attn.q_norm / k_norm [head_dim] shared by the heads (Qwen3).
  bool qk_norm = false;

  // Mixture of experts (every block sparse; num_experts == 0: dense MLP). Each
  // token's router logits x·routerᵀ [num_experts] go through a softmax, the
  // top num_experts_per_tok experts run, and their outputs are summed with the
  // chosen probabilities as weights, divided by their sum when norm_topk_prob
  // (Mixtral: always; Qwen3-MoE: config.json's norm_topk_prob).
  MoeLayout moe = MoeLayout::kNone;
  int64_t num_experts = 0;            // num_local_experts (Mixtral), num_experts (Qwen3-MoE)
  int64_t num_experts_per_tok = 0;    // top-k
  int64_t moe_intermediate_size = 0;  // each expert's width (Mixtral: intermediate_size)
  bool norm_topk_prob = false;
  bool is_moe() const { return moe != MoeLayout::kNone; }

  // Names of tensors in the Hugging Face layout.
  std::string LayerPrefix(int64_t layer) const;  // "model.layers.3."
};

// Parses and validates config.json. `name` is used in messages. Unsupported
// architectures name themselves and list the supported ones.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json, absl::string_view name);

// The seven linear modules of a decoder block, in execution order, with their
// tensor name suffix relative to LayerPrefix(): "self_attn.q_proj", ...
struct LinearModule {
  const char* name;     // "q_proj"
  const char* suffix;   // "self_attn.q_proj"
  const char* hessian;  // which calibration Hessian it uses: q_proj, o_proj, gate_proj, down_proj
};
inline constexpr LinearModule kLinearModules[] = {
    {"q_proj", "self_attn.q_proj", "q_proj"},    {"k_proj", "self_attn.k_proj", "q_proj"},
    {"v_proj", "self_attn.v_proj", "q_proj"},    {"o_proj", "self_attn.o_proj", "o_proj"},
    {"gate_proj", "mlp.gate_proj", "gate_proj"}, {"up_proj", "mlp.up_proj", "gate_proj"},
    {"down_proj", "mlp.down_proj", "down_proj"},
};

// One linear module of a decoder block of a given config: its name in plans,
// artifacts, reports and Hessians files ("q_proj", or "experts.3.gate_proj" for
// expert 3 of a mixture), its tensor name suffix relative to LayerPrefix()
// ("self_attn.q_proj", "block_sparse_moe.experts.3.w1"), the Hessian it uses
// ("q_proj", "experts.3.gate_proj", ...) and its kind (the kLinearModules name
// it plays the part of: "gate_proj" for an expert's gate).
struct BlockLinear {
  std::string name;
  std::string suffix;
  std::string hessian;
  std::string kind;
};
// The block's linears in execution order: kLinearModules for a dense model; for
// a mixture, q/k/v/o then each expert's gate, up, down (expert 0 first). The
// router is not among them (it stays dense).
std::vector<BlockLinear> BlockLinears(const ModelConfig& config);
// The entry of BlockLinears(config) named `name`; nullopt when there is none.
std::optional<BlockLinear> FindBlockLinear(const ModelConfig& config, absl::string_view name);
// The kLinearModules name `module` plays the part of: itself for a dense
// module, "gate_proj" for "experts.3.gate_proj"; "" when it is neither.
std::string LinearKind(absl::string_view module);
// The expert index of "experts.E.<kind>", or -1.
int64_t ExpertIndex(absl::string_view module);
// The router's tensor name suffix ("block_sparse_moe.gate"); "" for a dense model.
std::string RouterSuffix(const ModelConfig& config);

// Expected [out, in] shape of a linear module's weight (dense names or
// "experts.E.<kind>"); empty for an unknown module.
std::vector<int64_t> LinearShape(const ModelConfig& config, absl::string_view module);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_MODEL_CONFIG_H_
