// Recovery fine-tuning of one compressed decoder block against a target
// output: Adam on what stays continuous once Q's codes are fixed (Q's scales,
// the low-rank factors L and R, optionally the two RMSNorm weights),
// minimising the block output's mean squared error over minibatches of
// calibration sequences, with the last sequences held out to stop early and
// to report; the codes of symmetric uniform Q move too (AutoRound's learned
// rounding: signed gradient steps on offsets, anchored at the stored codes).
// Then the codes are fixed, L is quantized to its stored precision while R,
// the scales and norms train a little longer, then R while the scales and
// norms do (each phase scale_phase · steps), and the records are exported with
// unchanged stored bits. If the held-out error of the exported block is not
// below that of the block as it came in, the input is kept.
//
// Deterministic for a seed (its own mt19937_64; Eigen's products).
#ifndef CALDERA_CORE_FINETUNE_BLOCK_TUNER_H_
#define CALDERA_CORE_FINETUNE_BLOCK_TUNER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <optional>

#include "absl/status/statusor.h"
#include "core/finetune/tunable_linear.h"
#include "core/model/llama_block.h"
#include "core/model/model_config.h"

namespace caldera::finetune {

struct FineTuneOptions {
  int steps = 0;              // Adam steps of the first phase; 0: off
  double lr = 1e-2;           // relative: each tensor steps by lr · its RMS
  double holdout = 0.125;     // share of the sequences held out (at least one)
  int batch_sequences = 8;    // sequences per step
  int eval_every = 10;        // steps between held-out evaluations
  int patience = 10;          // evaluations without improvement before stopping
  bool tune_norms = true;     // train the block's two RMSNorm weights too
  double scale_phase = 0.25;  // steps after L, R are quantized, as a share of `steps`
  bool tune_rounding = true;  // learned rounding of symmetric uniform Q
  // Signed-gradient step of the offsets; 0: min(4 / steps, 0.02) with linear_decay
  // (measured, 3.5-bit uniform g32 on stories260K: perplexity 4.58 against 4.75
  // at 1 / steps), 1 / steps without.
  double round_lr = 0;
  // Both rates fall linearly to 0 over each phase (AutoRound's schedule);
  // measured 4.58 against 4.70 with constant rates (and 4.87 with 4 / steps).
  bool linear_decay = true;
  uint64_t seed = 42;
  // Polled before every step (may be empty): when it returns true, TuneBlock
  // ends CANCELLED (a cancelled job, a lost lease).
  std::function<bool()> cancelled;
};

struct BlockTuneReport {
  double train_before = 0;    // mean squared error on the training sequences
  double holdout_before = 0;  // on the held-out sequences, as the block came in
  double holdout_tuned = 0;   // after the first phase (L and R still continuous)
  double holdout_after = 0;   // on the held-out sequences, the exported block
  int steps = 0;              // steps run (both phases)
  bool kept_input = false;    // tuning did not help: the input records are kept
};

struct BlockTuneResult {
  std::array<std::optional<NamedTensors>, 7> records;  // exported, for the modules given
  model::BlockWeights weights;                         // the block as exported
  BlockTuneReport report;
};

// `x`, `target`: [sequences · seq_len, hidden]. `weights`: the block as it
// came in (dense; its biases are kept). `linears[i]` (kLinearModules order):
// the module's record, or nullopt for a module that stays as in `weights`.
absl::StatusOr<BlockTuneResult> TuneBlock(const model::ModelConfig& config, int64_t seq_len,
                                          const model::RowMatrixF& x,
                                          const model::RowMatrixF& target,
                                          const model::BlockWeights& weights,
                                          std::array<std::optional<TunableLinear>, 7> linears,
                                          const FineTuneOptions& options);

}  // namespace caldera::finetune

#endif  // CALDERA_CORE_FINETUNE_BLOCK_TUNER_H_
