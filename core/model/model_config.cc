#include "core/model/model_config.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/bounded_quote.h"
#include "nlohmann/json.hpp"

namespace caldera::model {
namespace {

using Json = nlohmann::json;

absl::Status Bad(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

bool GetInt(const Json& j, const char* key, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return false;
  *out = it->get<int64_t>();
  return true;
}

}  // namespace

std::string ModelConfig::LayerPrefix(int64_t layer) const {
  return absl::StrCat("model.layers.", layer, ".");
}

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json, absl::string_view name) {
  Json j = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad(name, "config.json is not a JSON object");
  ModelConfig c;
  auto arch = j.find("architectures");
  if (arch == j.end() || !arch->is_array() || arch->empty() || !(*arch)[0].is_string()) {
    return Bad(name, "missing \"architectures\" (expected e.g. [\"LlamaForCausalLM\"])");
  }
  c.architecture = (*arch)[0].get<std::string>();
  bool supported = false;
  for (const char* a : kSupportedArchitectures) supported |= c.architecture == a;
  if (!supported) {
    return Bad(name, absl::StrCat("unsupported architecture '", BoundedQuote(c.architecture),
                                  "'; supported: ", absl::StrJoin(kSupportedArchitectures, ", ")));
  }
  struct Field {
    const char* key;
    int64_t* out;
  };
  for (Field f :
       {Field{"hidden_size", &c.hidden_size}, Field{"intermediate_size", &c.intermediate_size},
        Field{"num_hidden_layers", &c.num_layers}, Field{"num_attention_heads", &c.num_heads},
        Field{"vocab_size", &c.vocab_size}}) {
    if (!GetInt(j, f.key, f.out) || *f.out <= 0) {
      return Bad(name, absl::StrCat("\"", f.key, "\" must be a positive integer"));
    }
  }
  if (!GetInt(j, "num_key_value_heads", &c.num_kv_heads)) c.num_kv_heads = c.num_heads;
  if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0) {
    return Bad(name, absl::StrCat("num_attention_heads ", c.num_heads,
                                  " is not a multiple of num_key_value_heads ", c.num_kv_heads));
  }
  if (!GetInt(j, "head_dim", &c.head_dim)) {
    if (c.hidden_size % c.num_heads != 0) {
      return Bad(name, "hidden_size is not a multiple of num_attention_heads");
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) {
    return Bad(name, absl::StrCat("head_dim ", c.head_dim, " must be positive and even"));
  }
  if (!GetInt(j, "max_position_embeddings", &c.max_position_embeddings)) {
    c.max_position_embeddings = 2048;
  }
  if (auto it = j.find("rms_norm_eps"); it != j.end() && it->is_number()) {
    c.rms_norm_eps = it->get<double>();
  }
  if (auto it = j.find("rope_theta"); it != j.end() && it->is_number()) {
    c.rope_theta = it->get<double>();
  }
  if (auto it = j.find("tie_word_embeddings"); it != j.end() && it->is_boolean()) {
    c.tie_word_embeddings = it->get<bool>();
  }
  if (auto it = j.find("attention_bias"); it != j.end() && it->is_boolean()) {
    c.attention_bias = it->get<bool>();
  }
  if (c.architecture == "Qwen2ForCausalLM") c.attention_bias = true;
  c.qk_norm = c.architecture == "Qwen3ForCausalLM";
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) {
    const Json& rs = *it;
    std::string type;
    if (auto t = rs.find("rope_type"); t != rs.end() && t->is_string())
      type = t->get<std::string>();
    if (auto t = rs.find("type"); type.empty() && t != rs.end() && t->is_string()) {
      type = t->get<std::string>();
    }
    if (type != "llama3" && type != "linear" && type != "default") {
      return Bad(name, absl::StrCat("unsupported rope_scaling type '", BoundedQuote(type),
                                    "'; supported: llama3, linear, default"));
    }
    c.rope_scaling.type = type == "default" ? "" : type;
    auto num = [&](const char* k, double* out) {
      if (auto v = rs.find(k); v != rs.end() && v->is_number()) *out = v->get<double>();
    };
    num("factor", &c.rope_scaling.factor);
    num("low_freq_factor", &c.rope_scaling.low_freq_factor);
    num("high_freq_factor", &c.rope_scaling.high_freq_factor);
    if (auto v = rs.find("original_max_position_embeddings"); v != rs.end() && v->is_number()) {
      c.rope_scaling.original_max_position_embeddings = v->get<int64_t>();
    }
    if (c.rope_scaling.factor <= 0) return Bad(name, "rope_scaling.factor must be positive");
  }
  return c;
}

std::vector<int64_t> LinearShape(const ModelConfig& c, absl::string_view module) {
  const int64_t q_out = c.num_heads * c.head_dim;
  const int64_t kv_out = c.num_kv_heads * c.head_dim;
  if (module == "q_proj") return {q_out, c.hidden_size};
  if (module == "k_proj" || module == "v_proj") return {kv_out, c.hidden_size};
  if (module == "o_proj") return {c.hidden_size, q_out};
  if (module == "gate_proj" || module == "up_proj") return {c.intermediate_size, c.hidden_size};
  if (module == "down_proj") return {c.hidden_size, c.intermediate_size};
  return {};
}

}  // namespace caldera::model
