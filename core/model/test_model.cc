#include "core/model/test_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <span>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/format/safetensors.h"
#include "core/format/tokens.h"
#include "core/util/splitmix64.h"
#include "nlohmann/json.hpp"

namespace caldera::model {
namespace {

absl::StatusOr<Tensor> RandomTensor(std::vector<int64_t> shape, double scale, DType dtype,
                                    SplitMix64* rng) {
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kF32, std::move(shape));
  if (!t.ok()) return t;
  for (float& v : t->mutable_data<float>()) v = static_cast<float>(scale * rng->Symmetric());
  return t->ConvertTo(dtype);
}

absl::StatusOr<Tensor> NormWeight(int64_t n, DType dtype, SplitMix64* rng) {
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kF32, {n});
  if (!t.ok()) return t;
  for (float& v : t->mutable_data<float>()) v = static_cast<float>(1.0 + 0.1 * rng->Symmetric());
  return t->ConvertTo(dtype);
}

}  // namespace

absl::Status WriteTestModel(const TestModelOptions& o, const std::string& directory) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", directory, ": ", ec.message()));
  const bool bias = o.attention_bias || o.architecture == "Qwen2ForCausalLM";
  const int64_t head_dim = o.head_dim > 0 ? o.head_dim : o.hidden_size / o.num_heads;
  const bool mixtral = o.architecture == "MixtralForCausalLM";
  const bool qwen3_moe = o.architecture == "Qwen3MoeForCausalLM";
  const bool qk_norm = o.architecture == "Qwen3ForCausalLM" || qwen3_moe;
  nlohmann::ordered_json config = {
      {"architectures", {o.architecture}},
      {"model_type", o.architecture == "Qwen2ForCausalLM"     ? "qwen2"
                     : o.architecture == "Qwen3ForCausalLM"   ? "qwen3"
                     : o.architecture == "MistralForCausalLM" ? "mistral"
                     : mixtral                                ? "mixtral"
                     : qwen3_moe                              ? "qwen3_moe"
                                                              : "llama"},
      {"hidden_size", o.hidden_size},
      {"intermediate_size", o.intermediate_size},
      {"num_hidden_layers", o.num_layers},
      {"num_attention_heads", o.num_heads},
      {"num_key_value_heads", o.num_kv_heads},
      {"vocab_size", o.vocab_size},
      {"max_position_embeddings", o.max_position_embeddings},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", o.rope_theta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", o.tie_word_embeddings},
      {"torch_dtype", o.dtype == DType::kBF16  ? "bfloat16"
                      : o.dtype == DType::kF16 ? "float16"
                                               : "float32"}};
  if (bias && o.architecture != "Qwen2ForCausalLM") config["attention_bias"] = true;
  if (o.head_dim > 0) config["head_dim"] = o.head_dim;
  if (mixtral) {
    config["num_local_experts"] = o.num_experts;
    config["num_experts_per_tok"] = o.num_experts_per_tok;
    config["router_jitter_noise"] = 0.0;
    config["output_router_logits"] = false;
  }
  if (qwen3_moe) {
    config["num_experts"] = o.num_experts;
    config["num_experts_per_tok"] = o.num_experts_per_tok;
    config["moe_intermediate_size"] = o.moe_intermediate_size;
    config["norm_topk_prob"] = o.norm_topk_prob;
    config["decoder_sparse_step"] = 1;
    config["mlp_only_layers"] = nlohmann::ordered_json::array();
    config["output_router_logits"] = false;
    if (o.head_dim == 0) config["head_dim"] = head_dim;  // Qwen3-MoE's config default is 128
  }
  if (o.llama3_rope_scaling) {
    config["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0},
                              {"original_max_position_embeddings", 64}};
  }
  {
    std::ofstream f(directory + "/config.json");
    f << config.dump(2) << "\n";
    if (!f) return absl::InternalError(absl::StrCat("cannot write ", directory, "/config.json"));
  }

  SplitMix64 rng(o.seed);
  const int shards = std::max(1, o.shards);
  std::vector<SafetensorsWriter> writers(shards);
  CheckpointIndex index;
  int64_t total = 0;
  auto add = [&](int shard, const std::string& name, absl::StatusOr<Tensor> t) -> absl::Status {
    if (!t.ok()) return t.status();
    total += static_cast<int64_t>(t->nbytes());
    index.weight_map[name] = absl::StrFormat("model-%05d-of-%05d.safetensors", shard + 1, shards);
    return writers[shard].Add(name, *std::move(t));
  };
  const double in_scale = 1.0 / std::sqrt(static_cast<double>(o.hidden_size));
  const double mlp_scale = 1.0 / std::sqrt(static_cast<double>(o.intermediate_size));
  const int64_t q_out = o.num_heads * head_dim, kv_out = o.num_kv_heads * head_dim;
  absl::Status s = add(0, "model.embed_tokens.weight",
                       RandomTensor({o.vocab_size, o.hidden_size}, 1.0, o.dtype, &rng));
  for (int64_t l = 0; s.ok() && l < o.num_layers; ++l) {
    const int shard = static_cast<int>(l * shards / std::max<int64_t>(1, o.num_layers));
    const std::string p = absl::StrCat("model.layers.", l, ".");
    struct Item {
      std::string name;
      std::vector<int64_t> shape;
      double scale;
    };
    std::vector<Item> items = {{"self_attn.q_proj.weight", {q_out, o.hidden_size}, in_scale},
                               {"self_attn.k_proj.weight", {kv_out, o.hidden_size}, in_scale},
                               {"self_attn.v_proj.weight", {kv_out, o.hidden_size}, in_scale},
                               {"self_attn.o_proj.weight", {o.hidden_size, q_out}, in_scale}};
    if (mixtral || qwen3_moe) {
      // The router, then each expert's gate, up and down (Mixtral: w1, w3, w2).
      const int64_t width = mixtral ? o.intermediate_size : o.moe_intermediate_size;
      const double expert_scale = 1.0 / std::sqrt(static_cast<double>(width));
      const std::string m = mixtral ? "block_sparse_moe." : "mlp.";
      items.push_back({m + "gate.weight", {o.num_experts, o.hidden_size}, 4 * in_scale});
      for (int64_t e = 0; e < o.num_experts; ++e) {
        const std::string x = absl::StrCat(m, "experts.", e, ".");
        items.push_back(
            {x + (mixtral ? "w1" : "gate_proj") + ".weight", {width, o.hidden_size}, in_scale});
        items.push_back(
            {x + (mixtral ? "w3" : "up_proj") + ".weight", {width, o.hidden_size}, in_scale});
        items.push_back(
            {x + (mixtral ? "w2" : "down_proj") + ".weight", {o.hidden_size, width}, expert_scale});
      }
    } else {
      items.push_back({"mlp.gate_proj.weight", {o.intermediate_size, o.hidden_size}, in_scale});
      items.push_back({"mlp.up_proj.weight", {o.intermediate_size, o.hidden_size}, in_scale});
      items.push_back({"mlp.down_proj.weight", {o.hidden_size, o.intermediate_size}, mlp_scale});
    }
    if (bias) {
      items.push_back({"self_attn.q_proj.bias", {q_out}, 0.1});
      items.push_back({"self_attn.k_proj.bias", {kv_out}, 0.1});
      items.push_back({"self_attn.v_proj.bias", {kv_out}, 0.1});
    }
    s = add(shard, p + "input_layernorm.weight", NormWeight(o.hidden_size, o.dtype, &rng));
    if (s.ok()) {
      s = add(shard, p + "post_attention_layernorm.weight",
              NormWeight(o.hidden_size, o.dtype, &rng));
    }
    for (const Item& it : items) {
      if (!s.ok()) break;
      absl::StatusOr<Tensor> t = RandomTensor(it.shape, it.scale, DType::kF32, &rng);
      if (t.ok() && o.starve_last_expert && absl::EndsWith(it.name, "gate.weight") &&
          it.shape[0] == o.num_experts && o.num_experts > 1) {
        // Row E-1 = mean of rows 0 .. E-2.
        std::span<float> d = t->mutable_data<float>();
        const int64_t e = o.num_experts - 1, h = it.shape[1];
        for (int64_t c = 0; c < h; ++c) {
          double sum = 0;
          for (int64_t r = 0; r < e; ++r) sum += d[r * h + c];
          d[e * h + c] = static_cast<float>(sum / static_cast<double>(e));
        }
      }
      if (t.ok()) t = t->ConvertTo(o.dtype);
      s = add(shard, p + it.name, std::move(t));
    }
    if (s.ok() && qk_norm)
      s = add(shard, p + "self_attn.q_norm.weight", NormWeight(head_dim, o.dtype, &rng));
    if (s.ok() && qk_norm)
      s = add(shard, p + "self_attn.k_norm.weight", NormWeight(head_dim, o.dtype, &rng));
  }
  if (s.ok()) s = add(shards - 1, "model.norm.weight", NormWeight(o.hidden_size, o.dtype, &rng));
  if (s.ok() && !o.tie_word_embeddings) {
    s = add(shards - 1, "lm_head.weight",
            RandomTensor({o.vocab_size, o.hidden_size}, in_scale, o.dtype, &rng));
  }
  if (!s.ok()) return s;
  if (shards == 1) return writers[0].WriteFile(directory + "/model.safetensors");
  for (int i = 0; i < shards; ++i) {
    s = writers[i].WriteFile(
        absl::StrFormat("%s/model-%05d-of-%05d.safetensors", directory, i + 1, shards));
    if (!s.ok()) return s;
  }
  index.metadata["total_size"] = absl::StrCat(total);
  std::ofstream f(directory + "/model.safetensors.index.json");
  f << SerializeCheckpointIndex(index);
  return f ? absl::OkStatus() : absl::InternalError("cannot write the index");
}

absl::Status WriteTestTokens(int64_t samples, int64_t seq_len, int64_t vocab_size, uint64_t seed,
                             const std::string& path) {
  format::TokenSet tokens{samples, seq_len, {}};
  tokens.ids.resize(static_cast<size_t>(samples * seq_len));
  SplitMix64 rng(seed);
  for (int64_t i = 0; i < samples * seq_len; ++i) {
    tokens.ids[i] = i % seq_len == 0 ? 1 : static_cast<int32_t>(rng.Next() % vocab_size);
  }
  return format::WriteTokenFile(tokens, path);
}

}  // namespace caldera::model
