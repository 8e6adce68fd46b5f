// calderactl eval: perplexity of a model on a token set, or on a text file
// with the WikiText-2 protocol (--text: the whole text tokenized once with
// the model's own tokenizer, cut into non-overlapping windows of --seq-len,
// every full window evaluated). --baseline-model evaluates a second model
// (the original, uncompressed one) on the same tokens.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "nlohmann/json.hpp"
#include "operations/eval.h"

namespace caldera::cli {
namespace {

struct EvalFlags {
  operations::EvalOptions options;
  bool json = false;
};

int RunEval(const EvalFlags& f) {
  const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
  operations::Listener listener;
  if (!f.json) {
    listener.progress = [](int64_t done, int64_t total, const std::string&) {
      std::fprintf(stderr, "eval: layer %lld/%lld\n", static_cast<long long>(done),
                   static_cast<long long>(total));
    };
    listener.note = [](const std::string& text) { std::fprintf(stderr, "%s\n", text.c_str()); };
  }
  absl::StatusOr<operations::EvalResult> r = operations::Eval(f.options, options, listener);
  if (!r.ok()) return ReportError("eval", r.status());
  if (f.json) {
    nlohmann::json j = {{"perplexity", r->model.perplexity},
                        {"tokens", r->model.predictions},
                        {"mean_nll", r->model.mean_nll},
                        {"windows", r->windows},
                        {"seq_len", r->seq_len}};
    if (r->baseline.has_value()) {
      j["baseline"] = {{"perplexity", r->baseline->perplexity},
                       {"mean_nll", r->baseline->mean_nll}};
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.6f over %lld predicted tokens (%lld windows of %lld)\n",
                r->model.perplexity, static_cast<long long>(r->model.predictions),
                static_cast<long long>(r->windows), static_cast<long long>(r->seq_len));
    if (r->baseline.has_value()) {
      std::printf("baseline perplexity %.6f (%s); ratio %.4f\n", r->baseline->perplexity,
                  f.options.baseline.c_str(), r->model.perplexity / r->baseline->perplexity);
    }
  }
  return kExitOk;
}

}  // namespace

void AddEvalCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<EvalFlags>();
  operations::EvalOptions* o = &flags->options;
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Perplexity: exp(mean next-token cross-entropy over positions 1.. of every sequence). "
      "\"tokens\" in the JSON is the number of predictions, samples x (seq_len - 1). With "
      "--text, the WikiText-2 protocol: the text tokenized once with the model's tokenizer and "
      "cut into non-overlapping windows of --seq-len");
  cmd->add_option("--model", o->model, "Model directory URI (path, file://, s3://)")->required();
  cmd->add_option("--tokens", o->tokens, "Token file URI (int32 input_ids [samples, seq_len])");
  cmd->add_option("--text", o->text,
                  "instead of --tokens: a text file (.txt, or .jsonl with a \"text\" field), "
                  "tokenized with the model's tokenizer");
  cmd->add_option(
      "--seq-len", o->seq_len,
      absl::StrCat("window length with --text (default ", operations::kDefaultEvalTextSeqLen,
                   ", at most max_position_embeddings)"));
  cmd->add_option("--samples", o->samples,
                  "with --text: evaluate only the first N windows (default all)");
  cmd->add_option("--baseline-model", o->baseline,
                  "also evaluate this model (e.g. the original, uncompressed one) on the same "
                  "tokens");
  cmd->add_flag("--json", flags->json,
                "Print {\"perplexity\": P, \"tokens\": N, \"mean_nll\", \"windows\", "
                "\"seq_len\"[, \"baseline\": {...}]}");
  cmd->add_option("--batch", o->batch, "Sequences per forward batch (default 1)");
  cmd->add_option("--share-heads", o->share_heads,
                  "DirectShare alone: evaluate the model with this fraction in [0, 1] of its "
                  "attention head groups aliased to the most similar group of an earlier layer "
                  "(default 0 = as stored; a checkpoint's own head_sharing.json always applies)");
  cmd->callback([flags, exit_code] { *exit_code = RunEval(*flags); });
}

}  // namespace caldera::cli
