// The calibrate step: block ℓ of the original model on the calibration states
// entering it -> the block's four normalised Hessians and the states entering
// block ℓ+1 (docs/format/hessians.md, docs/format/hidden-states.md).
#ifndef CALDERA_PIPELINE_CALIBRATE_STEP_H_
#define CALDERA_PIPELINE_CALIBRATE_STEP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/tensor/dtype.h"
#include "job/memory_estimate.h"
#include "pipeline/step_environment.h"

namespace caldera::pipeline {

// One calibrate task: what it reads, what it writes, how.
struct CalibrateRequest {
  int64_t layer = 0;
  // The calibration tokens when layer == 0, else the hidden-states file
  // written by calibrate(layer-1).
  std::string input_uri;
  // Where the Hessians file goes: F64 tensors q_proj, o_proj, gate_proj,
  // down_proj, each Σ xᵀx / tokens.
  std::string hessians_uri;
  // Where the states entering block layer+1 go; empty: not written (last layer).
  std::string hidden_out_uri;
  // Sequential calibration (calibration_mode "sequential"): for layer > 0,
  // `input_uri` holds the states entering block layer-1 and
  // `previous_artifacts` the artifacts of its decompositions; block layer-1
  // runs with those compressed weights (CompressedBlock) to make the states
  // entering `layer`, which are the ones written to `hidden_out_uri`. Layer 0
  // writes the embedded tokens.
  bool sequential = false;
  std::vector<std::string> previous_artifacts;
  // With fine-tuning: finetune(layer-1)'s tuned artifacts and block file
  // (empty: none), applied over `previous_artifacts` (pipeline/tuned_block.h).
  std::vector<std::string> previous_tuned_artifacts;
  std::string previous_block_uri;
  // Sharded calibration (num_shards > 1): layer 0 calibrates the samples of
  // shard `shard` only (job::ShardSamples); later layers read that shard's
  // hidden states, so nothing else changes. The Hessians file then holds the
  // shard's moments normalised by its own token count.
  int shard = 0;
  int num_shards = 1;
  // How the states written to `hidden_out_uri` are stored (F32 or BF16);
  // either is read back.
  DType hidden_dtype = DType::kF32;
};

struct CalibrateResult {
  IoCounts io;
};

// Runs `request` on `checkpoint`. The block forward and its Hessians run on
// env.compute (ComputeBackend::PrepareBlock; null: the CPU).
//
// Streaming: hidden states are read (ranged reads) and written (a local
// temporary file, uploaded at the end; model_io/hidden_states_stream.h) in
// chunks of whole sequences of about job::kCalibrateChunkBytes, and the block
// runs one sequence at a time, so the task's memory is the block's weights,
// its Hessians and one chunk, whatever the number of tokens
// (job/memory_estimate.h sizes tasks the same way).
absl::StatusOr<CalibrateResult> Calibrate(const model::Checkpoint& checkpoint,
                                          const CalibrateRequest& request,
                                          const StepEnvironment& env);

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_CALIBRATE_STEP_H_
