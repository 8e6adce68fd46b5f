// The architecture of a Llama-family checkpoint, parsed from config.json.
#ifndef CALDERA_CORE_MODEL_MODEL_CONFIG_H_
#define CALDERA_CORE_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::model {

// The architectures we can run, as named in config.json "architectures".
inline constexpr const char* kSupportedArchitectures[] = {"LlamaForCausalLM", "MistralForCausalLM",
                                                          "Qwen2ForCausalLM", "Qwen3ForCausalLM"};

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

// Expected [out, in] shape of a linear module's weight.
std::vector<int64_t> LinearShape(const ModelConfig& config, absl::string_view module);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_MODEL_CONFIG_H_
