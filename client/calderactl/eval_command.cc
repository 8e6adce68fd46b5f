// calderactl eval: perplexity of a model on a token set.
#include <cstdio>

#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/model/head_sharing_plan.h"
#include "nlohmann/json.hpp"

namespace caldera::cli {
namespace {

struct EvalFlags {
  std::string model, tokens;
  bool json = false;
  int64_t batch = 1;
  double share_heads = 0;
};

int RunEval(const EvalFlags& f) {
  const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt = OpenCheckpointAt(f.model, options);
  if (!ckpt.ok()) return ReportError("eval", ckpt.status());
  if (f.share_heads != 0) {
    // DirectShare alone: the model with its most similar head groups aliased,
    // no quantization (the weights stay as stored).
    absl::StatusOr<model::HeadSharing> plan =
        model::PlanCheckpointHeadSharing(**ckpt, f.share_heads);
    if (!plan.ok()) return ReportError("eval", plan.status());
    if (!f.json) {
      std::fprintf(stderr, "eval: --share-heads %g aliases %zu head groups\n", f.share_heads,
                   plan->shares.size());
    }
    (*ckpt)->SetHeadSharing(std::make_shared<const model::HeadSharing>(*std::move(plan)));
  }
  absl::StatusOr<model::TokenSet> tokens = LoadTokensAt(f.tokens, (*ckpt)->config(), options);
  if (!tokens.ok()) return ReportError("eval", tokens.status());
  model::RunOptions run;
  run.batch_sequences = f.batch;
  if (!f.json) {
    run.progress = [](int64_t done, int64_t total, const std::string&) {
      std::fprintf(stderr, "eval: layer %lld/%lld\n", static_cast<long long>(done),
                   static_cast<long long>(total));
    };
  }
  absl::StatusOr<model::EvalResult> r = model::EvaluatePerplexity(**ckpt, *tokens, run);
  if (!r.ok()) return ReportError("eval", r.status());
  if (f.json) {
    nlohmann::json j = {
        {"perplexity", r->perplexity}, {"tokens", r->predictions}, {"mean_nll", r->mean_nll}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.6f over %lld predicted tokens\n", r->perplexity,
                static_cast<long long>(r->predictions));
  }
  return kExitOk;
}

}  // namespace

void AddEvalCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Perplexity: exp(mean next-token cross-entropy over positions 1.. of every sequence). "
      "\"tokens\" in the JSON is the number of predictions, samples x (seq_len - 1)");
  cmd->add_option("--model", flags->model, "Model directory URI (path, file://, s3://)")
      ->required();
  cmd->add_option("--tokens", flags->tokens, "Token file URI (int32 input_ids [samples, seq_len])")
      ->required();
  cmd->add_flag("--json", flags->json, "Print {\"perplexity\": P, \"tokens\": N}");
  cmd->add_option("--batch", flags->batch, "Sequences per forward batch (default 1)");
  cmd->add_option("--share-heads", flags->share_heads,
                  "DirectShare alone: evaluate the model with this fraction in [0, 1] of its "
                  "attention head groups aliased to the most similar group of an earlier layer "
                  "(default 0 = as stored; a checkpoint's own head_sharing.json always applies)");
  cmd->callback([flags, exit_code] { *exit_code = RunEval(*flags); });
}

}  // namespace caldera::cli
