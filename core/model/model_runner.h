// Running a whole checkpoint layer by layer over a token set: embedding,
// calibration (per-block Hessians), logits and perplexity. Memory is bounded by
// the hidden states of the token set plus one decoder block.
#ifndef CALDERA_CORE_MODEL_MODEL_RUNNER_H_
#define CALDERA_CORE_MODEL_MODEL_RUNNER_H_

#include <functional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"
#include "core/format/tokens.h"
#include "core/model/block_runner.h"
#include "core/model/checkpoint.h"
#include "core/model/llama_block.h"

namespace caldera::model {

// Token ids [samples, seq_len], as stored in an `input_ids` tensor (the token
// file format is owned by core/format/tokens.h, docs/format/tokens.md).
using format::TokenSet;

// Reads and validates `input_ids` (I32 or I64, rank 2, non-empty, ids within
// the vocabulary, seq_len <= max_position_embeddings). Messages name the file
// and the first offending id.
absl::StatusOr<TokenSet> LoadTokens(const SafetensorsReader& reader, const ModelConfig& config);

// Progress: (step done, steps total, what).
using ProgressFn = std::function<void(int64_t, int64_t, const std::string&)>;

struct RunOptions {
  // Sequences per forward batch inside a layer. With 1, each sequence's
  // activations are bitwise independent of which other sequences are in the
  // run, so Hessians of sample shards add up to the unsharded result (up to
  // float64 summation order).
  int64_t batch_sequences = 1;
  ProgressFn progress;  // may be empty
  // Where each block runs (a compute backend's PrepareBlock); empty: on this
  // thread's CPU (MakeCpuBlockRunner).
  PrepareBlockFn prepare_block;
};

// Embeddings of every token: [samples*seq_len, hidden_size].
absl::StatusOr<RowMatrixF> EmbedTokens(const Checkpoint& checkpoint, const TokenSet& tokens);

// The embedding table [vocab, hidden_size] in float32, and the rows of `ids`
// gathered from it into `out` ([ids.size(), hidden_size]): EmbedTokens in
// pieces, for embedding a token set chunk by chunk. Ids must be in range
// (LoadTokens checks them).
absl::StatusOr<RowMatrixF> ReadEmbeddingTable(const Checkpoint& checkpoint);
void EmbedIds(const RowMatrixF& table, std::span<const int32_t> ids, RowMatrixF* out);

// Runs block `layer` over all of `hidden` (in place), in batches of sequences,
// accumulating Hessians when `hessians` is not null (symmetrised on return).
absl::Status RunLayer(const Checkpoint& checkpoint, const BlockWeights& weights, int64_t seq_len,
                      const RunOptions& options, RowMatrixF* hidden, BlockHessians* hessians);

// Calibrates layers [first, last]: runs blocks 0..last, and for each layer in
// range calls `sink(layer, hessians)` with the Hessian sums (not yet divided
// by the token count).
absl::Status CalibrateLayers(const Checkpoint& checkpoint, const TokenSet& tokens, int64_t first,
                             int64_t last, const RunOptions& options,
                             const std::function<absl::Status(int64_t, BlockHessians&)>& sink);

struct EvalResult {
  double perplexity = 0;
  double mean_nll = 0;
  int64_t predictions = 0;  // samples * (seq_len - 1)
};

// exp(mean next-token cross-entropy over positions 1..seq_len-1 of every sequence).
absl::StatusOr<EvalResult> EvaluatePerplexity(const Checkpoint& checkpoint, const TokenSet& tokens,
                                              const RunOptions& options);

// Logits [samples*seq_len, vocab] (small inputs only; for tests and tools).
absl::StatusOr<RowMatrixF> ComputeLogits(const Checkpoint& checkpoint, const TokenSet& tokens,
                                         const RunOptions& options);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_MODEL_RUNNER_H_
