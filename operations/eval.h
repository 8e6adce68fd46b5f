// Eval: perplexity of a model on a token set, or on a text file with the
// WikiText-2 protocol (text: the whole text tokenized once with the model's
// own tokenizer, cut into non-overlapping windows of seq_len, every full
// window evaluated); optionally a second (baseline) model on the same
// tokens. `calderactl eval` and the Python package's eval() call it.
#ifndef CALDERA_OPERATIONS_EVAL_H_
#define CALDERA_OPERATIONS_EVAL_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/model_runner.h"
#include "operations/listener.h"
#include "storage/storage_options.h"

namespace caldera::operations {

// The window length of text evaluation when none is given (at most the
// model's max_position_embeddings).
inline constexpr int64_t kDefaultEvalTextSeqLen = 2048;

struct EvalOptions {
  std::string model;     // model directory URI (a CALDERA or dense checkpoint)
  std::string tokens;    // a token file; exactly one of tokens and text
  std::string text;      // a text file (.txt, or .jsonl with a "text" field)
  std::string baseline;  // also evaluate this model on the same tokens; "" = none
  int64_t seq_len = 0;   // text windows; 0 = kDefaultEvalTextSeqLen capped by the model
  int64_t samples = 0;   // text: only the first N windows; 0 = all
  int64_t batch = 1;     // sequences per forward batch
  // DirectShare alone: this fraction in [0, 1] of attention head groups
  // aliased to the most similar group of an earlier layer; 0 = as stored.
  double share_heads = 0;
};

struct EvalResult {
  model::EvalResult model;  // perplexity, mean_nll, predictions
  int64_t windows = 0;      // sequences evaluated
  int64_t seq_len = 0;
  int64_t shared_head_groups = 0;  // with share_heads
  std::optional<model::EvalResult> baseline;
};

// Progress: one step per decoder layer of each model evaluated. Errors:
// INVALID_ARGUMENT for bad options (naming the calderactl flag), the model's
// and storage's errors as they come.
absl::StatusOr<EvalResult> Eval(const EvalOptions& options, const storage::StorageOptions& storage,
                                const Listener& listener);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_EVAL_H_
