// calderactl eval: perplexity of a model on a token set, or on a text file
// with the WikiText-2 protocol (--text: the whole text tokenized once with
// the model's own tokenizer, cut into non-overlapping windows of --seq-len,
// every full window evaluated). --baseline-model evaluates a second model
// (the original, uncompressed one) on the same tokens.
#include <algorithm>
#include <cstdio>
#include <optional>

#include "absl/strings/str_cat.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/model/head_sharing_plan.h"
#include "core/tokenizer/tokenizer.h"
#include "model_io/text_tokens.h"
#include "nlohmann/json.hpp"

namespace caldera::cli {
namespace {

constexpr int64_t kDefaultTextSeqLen = 2048;

struct EvalFlags {
  std::string model, tokens, text, baseline;
  int64_t seq_len = 0, samples = 0;
  bool json = false;
  int64_t batch = 1;
  double share_heads = 0;
};

// The windows of --text, tokenized with the tokenizer of --model (or of
// --baseline-model when --model has none).
absl::StatusOr<model::TokenSet> TextTokens(const EvalFlags& f, const model::ModelConfig& config,
                                           const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok =
      model_io::OpenModelTokenizer(f.model, options);
  if (!tok.ok() && !f.baseline.empty()) tok = model_io::OpenModelTokenizer(f.baseline, options);
  if (!tok.ok()) return tok.status();
  absl::StatusOr<std::vector<int32_t>> ids =
      model_io::TokenizeTextFile(**tok, f.text, "text", /*add_special=*/true, options);
  if (!ids.ok()) return ids.status();
  int64_t seq_len = f.seq_len;
  if (seq_len == 0) {
    seq_len = config.max_position_embeddings > 0
                  ? std::min(kDefaultTextSeqLen, config.max_position_embeddings)
                  : kDefaultTextSeqLen;
  }
  if (config.max_position_embeddings > 0 && seq_len > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("--seq-len ", seq_len,
                                                   " exceeds the model's max_position_embeddings ",
                                                   config.max_position_embeddings));
  }
  return model_io::CutWindows(*ids, seq_len, f.samples, std::nullopt,
                              absl::StrCat("--text ", f.text));
}

int RunEval(const EvalFlags& f) {
  if (f.tokens.empty() == f.text.empty()) {
    return ReportError(
        "eval", absl::InvalidArgumentError("give exactly one of --tokens (a token file) and --text "
                                           "(a text file)"));
  }
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
  absl::StatusOr<model::TokenSet> tokens = f.text.empty()
                                               ? LoadTokensAt(f.tokens, (*ckpt)->config(), options)
                                               : TextTokens(f, (*ckpt)->config(), options);
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
  std::optional<model::EvalResult> base;
  if (!f.baseline.empty()) {
    ckpt->reset();  // one model in memory at a time
    absl::StatusOr<std::unique_ptr<model::Checkpoint>> b = OpenCheckpointAt(f.baseline, options);
    if (!b.ok()) return ReportError("eval", b.status());
    absl::StatusOr<model::EvalResult> br = model::EvaluatePerplexity(**b, *tokens, run);
    if (!br.ok()) return ReportError("eval", br.status());
    base = *br;
  }
  if (f.json) {
    nlohmann::json j = {{"perplexity", r->perplexity},
                        {"tokens", r->predictions},
                        {"mean_nll", r->mean_nll},
                        {"windows", tokens->samples},
                        {"seq_len", tokens->seq_len}};
    if (base.has_value()) {
      j["baseline"] = {{"perplexity", base->perplexity}, {"mean_nll", base->mean_nll}};
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.6f over %lld predicted tokens (%lld windows of %lld)\n",
                r->perplexity, static_cast<long long>(r->predictions),
                static_cast<long long>(tokens->samples), static_cast<long long>(tokens->seq_len));
    if (base.has_value()) {
      std::printf("baseline perplexity %.6f (%s); ratio %.4f\n", base->perplexity,
                  f.baseline.c_str(), r->perplexity / base->perplexity);
    }
  }
  return kExitOk;
}

}  // namespace

void AddEvalCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Perplexity: exp(mean next-token cross-entropy over positions 1.. of every sequence). "
      "\"tokens\" in the JSON is the number of predictions, samples x (seq_len - 1). With "
      "--text, the WikiText-2 protocol: the text tokenized once with the model's tokenizer and "
      "cut into non-overlapping windows of --seq-len");
  cmd->add_option("--model", flags->model, "Model directory URI (path, file://, s3://)")
      ->required();
  cmd->add_option("--tokens", flags->tokens, "Token file URI (int32 input_ids [samples, seq_len])");
  cmd->add_option("--text", flags->text,
                  "instead of --tokens: a text file (.txt, or .jsonl with a \"text\" field), "
                  "tokenized with the model's tokenizer");
  cmd->add_option("--seq-len", flags->seq_len,
                  absl::StrCat("window length with --text (default ", kDefaultTextSeqLen,
                               ", at most max_position_embeddings)"));
  cmd->add_option("--samples", flags->samples,
                  "with --text: evaluate only the first N windows (default all)");
  cmd->add_option("--baseline-model", flags->baseline,
                  "also evaluate this model (e.g. the original, uncompressed one) on the same "
                  "tokens");
  cmd->add_flag("--json", flags->json,
                "Print {\"perplexity\": P, \"tokens\": N, \"mean_nll\", \"windows\", "
                "\"seq_len\"[, \"baseline\": {...}]}");
  cmd->add_option("--batch", flags->batch, "Sequences per forward batch (default 1)");
  cmd->add_option("--share-heads", flags->share_heads,
                  "DirectShare alone: evaluate the model with this fraction in [0, 1] of its "
                  "attention head groups aliased to the most similar group of an earlier layer "
                  "(default 0 = as stored; a checkpoint's own head_sharing.json always applies)");
  cmd->callback([flags, exit_code] { *exit_code = RunEval(*flags); });
}

}  // namespace caldera::cli
