// calderactl make-test-model: a random Llama-architecture checkpoint and token
// file, for demos and tests on machines without a real model.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/model/model_config.h"
#include "core/model/test_model.h"

namespace caldera::cli {
namespace {

struct MakeFlags {
  model::TestModelOptions model;
  std::string out, dtype = "f32", tokens_out;
  bool untied = false;
  int64_t samples = 16, seq_len = 64;
};

int RunMake(MakeFlags f) {
  if (f.dtype == "f16") {
    f.model.dtype = DType::kF16;
  } else if (f.dtype == "bf16") {
    f.model.dtype = DType::kBF16;
  } else if (f.dtype != "f32") {
    return ReportError("make-test-model",
                       absl::InvalidArgumentError("--dtype must be f32, f16 or bf16"));
  }
  f.model.tie_word_embeddings = !f.untied;
  if (f.model.num_heads <= 0 || f.model.hidden_size % f.model.num_heads != 0 ||
      f.model.num_kv_heads <= 0 || f.model.num_heads % f.model.num_kv_heads != 0 ||
      (f.model.hidden_size / f.model.num_heads) % 2 != 0) {
    return ReportError("make-test-model",
                       absl::InvalidArgumentError(
                           "--hidden must be a multiple of --heads with an even head size, and "
                           "--heads a multiple of --kv-heads"));
  }
  if (f.model.num_experts < 1 || f.model.num_experts > model::kMaxExperts ||
      f.model.num_experts_per_tok < 1 || f.model.num_experts_per_tok > f.model.num_experts ||
      f.model.moe_intermediate_size < 1) {
    return ReportError("make-test-model",
                       absl::InvalidArgumentError(absl::StrCat(
                           "--experts must be in [1, ", model::kMaxExperts,
                           "], --experts-per-token in [1, --experts] and --moe-intermediate "
                           "positive")));
  }
  if (absl::Status s = model::WriteTestModel(f.model, f.out); !s.ok()) {
    return ReportError("make-test-model", s);
  }
  std::printf("wrote %s\n", f.out.c_str());
  if (!f.tokens_out.empty()) {
    if (absl::Status s = model::WriteTestTokens(f.samples, f.seq_len, f.model.vocab_size,
                                                f.model.seed + 1, f.tokens_out);
        !s.ok()) {
      return ReportError("make-test-model", s);
    }
    std::printf("wrote %s\n", f.tokens_out.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddMakeTestModelCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<MakeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "make-test-model", "Write a random Llama-architecture checkpoint (and optionally tokens)");
  cmd->add_option("--out", f->out, "Output directory")->required();
  cmd->add_option("--arch", f->model.architecture,
                  "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
                  "MixtralForCausalLM or Qwen3MoeForCausalLM");
  cmd->add_option("--experts", f->model.num_experts, "experts per block (mixtures only)");
  cmd->add_option("--experts-per-token", f->model.num_experts_per_tok,
                  "experts each token is routed to (mixtures only)");
  cmd->add_option("--moe-intermediate", f->model.moe_intermediate_size,
                  "each expert's width (Qwen3MoeForCausalLM; Mixtral's is --intermediate)");
  cmd->add_flag("--norm-topk-prob", f->model.norm_topk_prob,
                "Qwen3MoeForCausalLM: renormalise the top-k routing weights");
  cmd->add_flag("--starve-last-expert", f->model.starve_last_expert,
                "the last expert's router row is the mean of the others' (with "
                "--experts-per-token 1 no token reaches it; for tests)");
  cmd->add_option("--head-dim", f->model.head_dim,
                  "head_dim written to config.json (default: hidden / heads, not written)");
  cmd->add_option("--hidden", f->model.hidden_size, "hidden_size");
  cmd->add_option("--intermediate", f->model.intermediate_size, "intermediate_size");
  cmd->add_option("--layers", f->model.num_layers, "num_hidden_layers");
  cmd->add_option("--heads", f->model.num_heads, "num_attention_heads");
  cmd->add_option("--kv-heads", f->model.num_kv_heads, "num_key_value_heads");
  cmd->add_option("--vocab", f->model.vocab_size, "vocab_size");
  cmd->add_option("--dtype", f->dtype, "f32, f16 or bf16");
  cmd->add_flag("--bias", f->model.attention_bias, "q/k/v biases");
  cmd->add_flag("--untied", f->untied, "separate lm_head");
  cmd->add_flag("--llama3-rope", f->model.llama3_rope_scaling, "Llama-3 rope_scaling");
  cmd->add_option("--shards", f->model.shards, "number of safetensors shards");
  cmd->add_option("--seed", f->model.seed, "random seed");
  cmd->add_option("--tokens-out", f->tokens_out, "Also write a token file here");
  cmd->add_option("--samples", f->samples, "sequences in the token file");
  cmd->add_option("--seq-len", f->seq_len, "tokens per sequence");
  cmd->callback([f, exit_code] { *exit_code = RunMake(*f); });
}

}  // namespace caldera::cli
