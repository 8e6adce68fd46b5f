// The fine-tune step: recovery fine-tuning of a finished compressed
// checkpoint, block after block (core/finetune/block_tuner.h), rewriting the
// checkpoint's shards in place with the tuned records and norms. The stored
// format, tensor names, shapes and dtypes do not change (so neither do the
// stored bits, config.json, the index or report.json's bit counts).
//
// Block ℓ's inputs are the calibration sequences through the embedding and
// the already tuned compressed blocks 0..ℓ−1 (as the sequential calibration
// feeds it); its target is the original model's states after block ℓ
// (`target_from_original_states`, the default: the block also corrects the
// error it inherits, as AutoRound does; perplexity 4.61 against 4.88 at 3.5
// bits on the bundled model) or the original block ℓ's output on the
// compressed inputs.
//
// It holds every calibration state of one block in memory (two copies), so
// it is sized for models whose calibration states fit. It is what `calderactl
// finetune` runs on an existing checkpoint; a job with finetune_steps runs
// the same tuning as finetune(layer) tasks (finetune_block_step.h). Deterministic (the same
// bytes from the same checkpoint), but not idempotent: each shard is
// replaced atomically, yet a run killed between shards leaves some tuned,
// and running it again tunes the tuned ones; start again from compress's
// output.
#ifndef CALDERA_PIPELINE_FINETUNE_STEP_H_
#define CALDERA_PIPELINE_FINETUNE_STEP_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/finetune/block_tuner.h"
#include "pipeline/step_environment.h"

namespace caldera::pipeline {

struct FineTuneRequest {
  // The compressed checkpoint (written by finalize); its shards are rewritten.
  std::string checkpoint_uri;
  // The model it was compressed from, and the calibration tokens.
  std::string original_model_uri;
  std::string calibration_uri;
  finetune::FineTuneOptions options;
  bool target_from_original_states = true;
  // Called after each block (may be empty): layer, its report.
  std::function<void(int64_t, const finetune::BlockTuneReport&)> progress;
};

struct FineTuneResult {
  std::vector<finetune::BlockTuneReport> blocks;  // one per layer
  int64_t modules_tuned = 0;                      // records rewritten
  IoCounts io;
};

// Runs `weights` over every sequence (`seq_len` rows each) of `states`, in place.
void RunBlockOverSequences(const model::ModelConfig& config, const model::BlockWeights& weights,
                           int64_t seq_len, model::RowMatrixF* states);

// `record` (tensors named relative to the module) as a trainable linear, when
// its reconstruction is `dense`, the weight the model computes with (not, e.g.,
// with aliased heads inserted); nullopt otherwise.
absl::StatusOr<std::optional<finetune::TunableLinear>> TunableIfExact(
    const NamedTensors& record, const model::RowMatrixF& dense);

absl::StatusOr<FineTuneResult> FineTune(const FineTuneRequest& request, const StepEnvironment& env);

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_FINETUNE_STEP_H_
