// The finetune(layer) task's step: recovery fine-tuning of one compressed
// block inside the job (core/finetune/block_tuner.h), between the block's
// decompose tasks and the next block's calibration.
//
// Reads: the block's decompose artifacts (under --target-bits, the candidates
// the block's allocation chooses, as finalize will), the states entering the
// block on the compressed model (the calibrate tasks' hidden states, all
// shards in order) and the original model's states entering it (written by
// finetune(layer − 1); the embedded calibration tokens for layer 0). The
// target is the original block on the original states — the original model's
// states after the block — so the block also corrects the error it inherits.
//
// Writes (every key attempt-unique, job/task_plan.h): one matrix artifact per
// module — the tuned record, or the chosen artifact's bytes unchanged when
// the module is not tunable (a TT-LoRA adapter, aliased heads) or tuning did
// not lower the held-out error — then the block file (tuned norms and the
// loss report, core/format/finetune_block.h), then, unless it is the last
// layer, the original states after the block. The stored format, tensor
// names, shapes and dtypes of the records do not change.
//
// Deterministic: the same inputs give the same bytes (TuneBlock's own seeded
// generator; one thread's Eigen products), so a killed task reruns to the
// bytes the first attempt would have written.
#ifndef CALDERA_PIPELINE_FINETUNE_BLOCK_STEP_H_
#define CALDERA_PIPELINE_FINETUNE_BLOCK_STEP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/finetune/block_tuner.h"
#include "core/format/finetune_block.h"
#include "core/model/checkpoint.h"
#include "job/job_spec.h"
#include "pipeline/step_environment.h"

namespace caldera::pipeline {

struct FinetuneBlockRequest {
  job::JobSpec spec;  // calibration tokens, --target-bits, finetune settings
  int64_t layer = 0;
  std::vector<std::string> artifact_uris;  // decompose(layer, *)
  // The states entering the block, in shard order; empty: the embedded
  // calibration tokens (layer 0 of an original-mode job).
  std::vector<std::string> input_uris;
  // The original model's states entering the block; empty for layer 0.
  std::string original_states_uri;
  // Outputs: one per artifact_uris entry, the block file, the original
  // states after the block (empty: not written).
  std::vector<std::string> tuned_artifact_uris;
  std::string block_uri;
  std::string original_states_out_uri;
};

struct FinetuneBlockResult {
  format::FinetuneBlockReport report;
  IoCounts io;
};

// The tuner's settings for `spec` (steps, lr, holdout; the rest defaults).
finetune::FineTuneOptions FinetuneOptionsOf(const job::JobSpec& spec);

// `checkpoint`: the original model. INVALID_ARGUMENT when the inputs do not
// match it or each other; UNIMPLEMENTED for a model with q/k head norms.
absl::StatusOr<FinetuneBlockResult> FinetuneBlock(const model::Checkpoint& checkpoint,
                                                  const FinetuneBlockRequest& request,
                                                  const StepEnvironment& env);

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_FINETUNE_BLOCK_STEP_H_
