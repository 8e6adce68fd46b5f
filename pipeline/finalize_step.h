// The finalize step: the decompose steps' artifacts + the uncompressed tensors
// -> the output checkpoint (docs/format/checkpoint.md): one shard of
// uncompressed tensors (copied unchanged) and one shard per layer of records,
// config.json with quantization_config, the index, and report.json written
// LAST (a checkpoint without report.json is not done).
#ifndef CALDERA_PIPELINE_FINALIZE_STEP_H_
#define CALDERA_PIPELINE_FINALIZE_STEP_H_

#include <vector>

#include "absl/status/status.h"
#include "core/format/module_report.h"
#include "core/model/checkpoint.h"
#include "job/job_spec.h"
#include "pipeline/step_environment.h"

namespace caldera::pipeline {

struct FinalizeRequest {
  job::JobSpec spec;  // spec.out is where the checkpoint goes
  // One report per compressed matrix, its `artifact` the task's artifact URI,
  // in any order (sorted here by layer and module, so the bytes do not
  // depend on the order the decompositions finished in). Under
  // --target-bits each block's candidates are chosen here
  // (ResolveBudgetChoices), as the sequential calibration chose them.
  std::vector<format::ModuleReport> modules;
  double seconds = 0;  // the job's wall time so far, for report.json
  // Recovery fine-tuning (finetune tasks): their tuned artifacts, each
  // replacing the chosen artifact of its matrix, and their block files,
  // whose norms replace the input's and whose loss reports go to
  // report.json's "finetune" (pipeline/tuned_block.h).
  std::vector<std::string> tuned_artifacts;
  std::vector<std::string> finetune_blocks;
};

// Writes the checkpoint, then reads the first and last compressed layers back
// through the path eval uses (FAILED_PRECONDITION when they do not decode)
// before report.json.
absl::Status Finalize(const model::Checkpoint& checkpoint, const FinalizeRequest& request,
                      const StepEnvironment& env);

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_FINALIZE_STEP_H_
