// The recovery fine-tuning flags (--finetune-steps, --finetune-lr,
// --finetune-holdout, --finetune-target) shared by `calderactl finetune` and
// `calderactl compress`, and the run both make of them
// (pipeline::FineTune on a finished checkpoint, a line per block on stderr).
#ifndef CALDERA_CLIENT_CALDERACTL_FINETUNE_FLAGS_H_
#define CALDERA_CLIENT_CALDERACTL_FINETUNE_FLAGS_H_

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "core/finetune/block_tuner.h"
#include "pipeline/finetune_step.h"
#include "storage/storage_options.h"

namespace caldera::cli {

struct FineTuneFlags {
  finetune::FineTuneOptions options;       // options.steps 0: off
  std::string target = "original-states";  // block | original-states
  bool no_rounding = false;                // --finetune-no-rounding
};

// Registers the flags on `cmd`; values land in `*flags` (must outlive cmd).
void AddFineTuneFlags(CLI::App* cmd, FineTuneFlags* flags);

// Checks the values: INVALID_ARGUMENT naming the flag.
absl::Status ValidateFineTuneFlags(const FineTuneFlags& flags);

// Fine-tunes the checkpoint at `checkpoint` (rewritten in place) against
// `original` on `calibration`, printing a line per block to stderr.
absl::StatusOr<pipeline::FineTuneResult> RunFineTune(const FineTuneFlags& flags,
                                                     const std::string& checkpoint,
                                                     const std::string& original,
                                                     const std::string& calibration,
                                                     const storage::StorageOptions& options);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_FINETUNE_FLAGS_H_
