#include "operations/eval.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/head_sharing_plan.h"
#include "core/tokenizer/tokenizer.h"
#include "model_io/model_inputs.h"
#include "model_io/text_tokens.h"

namespace caldera::operations {
namespace {

// The windows of options.text, tokenized with the tokenizer of the model (or
// of the baseline when the model has none).
absl::StatusOr<model::TokenSet> TextTokens(const EvalOptions& f, const model::ModelConfig& config,
                                           const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok =
      model_io::OpenModelTokenizer(f.model, options);
  if (!tok.ok() && !f.baseline.empty()) tok = model_io::OpenModelTokenizer(f.baseline, options);
  if (!tok.ok()) return tok.status();
  absl::StatusOr<std::vector<int32_t>> ids =
      model_io::TokenizeTextFile(**tok, f.text, "text", /*add_special=*/true, options);
  if (!ids.ok()) return ids.status();
  const int64_t seq_len =
      model_io::TextWindowLength(f.seq_len, kDefaultEvalTextSeqLen, config.max_position_embeddings);
  if (config.max_position_embeddings > 0 && seq_len > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("--seq-len ", seq_len,
                                                   " exceeds the model's max_position_embeddings ",
                                                   config.max_position_embeddings));
  }
  return model_io::CutWindows(*ids, seq_len, f.samples, std::nullopt,
                              absl::StrCat("--text ", f.text));
}

}  // namespace

absl::StatusOr<EvalResult> Eval(const EvalOptions& f, const storage::StorageOptions& options,
                                const Listener& listener) {
  if (f.tokens.empty() == f.text.empty()) {
    return absl::InvalidArgumentError(
        "give exactly one of --tokens (a token file) and --text (a text file)");
  }
  EvalResult result;
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
      model_io::OpenCheckpointAt(f.model, options);
  if (!ckpt.ok()) return ckpt.status();
  if (f.share_heads != 0) {
    // DirectShare alone: the model with its most similar head groups aliased,
    // no quantization (the weights stay as stored).
    absl::StatusOr<model::HeadSharing> plan =
        model::PlanCheckpointHeadSharing(**ckpt, f.share_heads);
    if (!plan.ok()) return plan.status();
    result.shared_head_groups = static_cast<int64_t>(plan->shares.size());
    listener.Note(absl::StrCat("eval: --share-heads ", f.share_heads, " aliases ",
                               result.shared_head_groups, " head groups"));
    (*ckpt)->SetHeadSharing(std::make_shared<const model::HeadSharing>(*std::move(plan)));
  }
  absl::StatusOr<model::TokenSet> tokens =
      f.text.empty() ? model_io::LoadTokensAt(f.tokens, (*ckpt)->config(), options)
                     : TextTokens(f, (*ckpt)->config(), options);
  if (!tokens.ok()) return tokens.status();
  result.windows = tokens->samples;
  result.seq_len = tokens->seq_len;
  model::RunOptions run;
  run.batch_sequences = f.batch;
  if (listener.progress) {
    run.progress = [&listener](int64_t done, int64_t total, const std::string&) {
      listener.Progress(done, total, absl::StrCat("layer ", done, "/", total));
    };
  }
  absl::StatusOr<model::EvalResult> r = model::EvaluatePerplexity(**ckpt, *tokens, run);
  if (!r.ok()) return r.status();
  result.model = *r;
  if (!f.baseline.empty()) {
    ckpt->reset();  // one model in memory at a time
    absl::StatusOr<std::unique_ptr<model::Checkpoint>> b =
        model_io::OpenCheckpointAt(f.baseline, options);
    if (!b.ok()) return b.status();
    absl::StatusOr<model::EvalResult> br = model::EvaluatePerplexity(**b, *tokens, run);
    if (!br.ok()) return br.status();
    result.baseline = *br;
  }
  return result;
}

}  // namespace caldera::operations
