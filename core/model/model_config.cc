#include "core/model/model_config.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
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

// The mixture-of-experts keys of MixtralForCausalLM and Qwen3MoeForCausalLM;
// nothing for the dense architectures.
absl::Status ParseMoe(const Json& j, absl::string_view name, ModelConfig* c) {
  const bool mixtral = c->architecture == "MixtralForCausalLM";
  if (!mixtral && c->architecture != "Qwen3MoeForCausalLM") return absl::OkStatus();
  c->moe = mixtral ? MoeLayout::kMixtral : MoeLayout::kQwen3Moe;
  const char* experts_key = mixtral ? "num_local_experts" : "num_experts";
  if (!GetInt(j, experts_key, &c->num_experts) || c->num_experts < 1 ||
      c->num_experts > kMaxExperts) {
    return Bad(name, absl::StrCat("\"", experts_key, "\" must be an integer in [1, ", kMaxExperts,
                                  "] for ", c->architecture,
                                  "; set it to the checkpoint's number of experts per layer"));
  }
  if (!GetInt(j, "num_experts_per_tok", &c->num_experts_per_tok) || c->num_experts_per_tok < 1 ||
      c->num_experts_per_tok > c->num_experts) {
    return Bad(
        name, absl::StrCat("\"num_experts_per_tok\" must be an integer in [1, ", experts_key, " = ",
                           c->num_experts, "]: how many experts each token is routed to"));
  }
  if (mixtral) {
    c->moe_intermediate_size = c->intermediate_size;
    c->norm_topk_prob = true;  // Mixtral always renormalises the top-k probabilities
    return absl::OkStatus();
  }
  if (!GetInt(j, "moe_intermediate_size", &c->moe_intermediate_size) ||
      c->moe_intermediate_size < 1) {
    return Bad(name,
               "\"moe_intermediate_size\" must be a positive integer (each expert's MLP width)");
  }
  if (auto it = j.find("norm_topk_prob"); it != j.end()) {
    if (!it->is_boolean()) return Bad(name, "\"norm_topk_prob\" must be true or false");
    c->norm_topk_prob = it->get<bool>();
  }
  // Only the layout where every block is sparse: decoder_sparse_step 1 and no
  // mlp_only_layers (what the released Qwen3-MoE checkpoints use).
  int64_t step = 1;
  if (j.contains("decoder_sparse_step") &&
      (!GetInt(j, "decoder_sparse_step", &step) || step != 1)) {
    return Bad(name,
               "\"decoder_sparse_step\" other than 1 (dense blocks between sparse ones) is not "
               "supported; only checkpoints whose every block is a mixture of experts are");
  }
  if (auto it = j.find("mlp_only_layers");
      it != j.end() && !(it->is_null() || (it->is_array() && it->empty()))) {
    return Bad(name,
               "\"mlp_only_layers\" must be empty: checkpoints with dense blocks among the "
               "sparse ones are not supported");
  }
  return absl::OkStatus();
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
  c.qk_norm = c.architecture == "Qwen3ForCausalLM" || c.architecture == "Qwen3MoeForCausalLM";
  if (absl::Status s = ParseMoe(j, name, &c); !s.ok()) return s;
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

std::vector<BlockLinear> BlockLinears(const ModelConfig& c) {
  std::vector<BlockLinear> out;
  for (const LinearModule& m : kLinearModules) {
    if (c.is_moe() && absl::StartsWith(m.suffix, "mlp.")) break;  // the MLP comes last
    out.push_back({m.name, m.suffix, m.hessian, m.name});
  }
  if (!c.is_moe()) return out;
  const bool mixtral = c.moe == MoeLayout::kMixtral;
  for (int64_t e = 0; e < c.num_experts; ++e) {
    const std::string p = absl::StrCat(mixtral ? "block_sparse_moe" : "mlp", ".experts.", e, ".");
    const std::string n = absl::StrCat("experts.", e, ".");
    out.push_back(
        {n + "gate_proj", p + (mixtral ? "w1" : "gate_proj"), n + "gate_proj", "gate_proj"});
    out.push_back({n + "up_proj", p + (mixtral ? "w3" : "up_proj"), n + "gate_proj", "up_proj"});
    out.push_back(
        {n + "down_proj", p + (mixtral ? "w2" : "down_proj"), n + "down_proj", "down_proj"});
  }
  return out;
}

std::optional<BlockLinear> FindBlockLinear(const ModelConfig& c, absl::string_view name) {
  const int64_t e = ExpertIndex(name);
  if (e >= c.num_experts || (e < 0 && absl::StartsWith(name, "experts."))) return std::nullopt;
  for (const BlockLinear& l : BlockLinears(c)) {
    // Each expert has three entries after the four attention ones.
    if (e >= 0 && l.name.size() != name.size()) continue;
    if (l.name == name) return l;
  }
  return std::nullopt;
}

int64_t ExpertIndex(absl::string_view module) {
  if (!absl::ConsumePrefix(&module, "experts.")) return -1;
  const size_t dot = module.find('.');
  int64_t e = 0;
  if (dot == absl::string_view::npos || dot == 0 || dot > 6 ||
      !absl::SimpleAtoi(module.substr(0, dot), &e) || e < 0 || e >= kMaxExperts) {
    return -1;
  }
  return absl::StrCat(e) == module.substr(0, dot) ? e : -1;  // no "+3" or "03"
}

std::string LinearKind(absl::string_view module) {
  if (ExpertIndex(module) >= 0) {
    module = module.substr(module.find('.', 8) + 1);
    if (module != "gate_proj" && module != "up_proj" && module != "down_proj") return "";
    return std::string(module);
  }
  for (const LinearModule& m : kLinearModules) {
    if (module == m.name) return m.name;
  }
  return "";
}

std::string RouterSuffix(const ModelConfig& c) {
  switch (c.moe) {
    case MoeLayout::kMixtral:
      return "block_sparse_moe.gate";
    case MoeLayout::kQwen3Moe:
      return "mlp.gate";
    case MoeLayout::kNone:
      break;
  }
  return "";
}

std::vector<int64_t> LinearShape(const ModelConfig& c, absl::string_view module) {
  if (ExpertIndex(module) >= 0) {
    if (ExpertIndex(module) >= c.num_experts) return {};
    const std::string kind = LinearKind(module);
    if (kind == "gate_proj" || kind == "up_proj") return {c.moe_intermediate_size, c.hidden_size};
    if (kind == "down_proj") return {c.hidden_size, c.moe_intermediate_size};
    return {};
  }
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
