// calderactl finetune: recovery fine-tuning of a compressed checkpoint in
// place (pipeline::FineTune): each block's Q scales, L, R and norms tuned
// against the original block's output on the calibration data, with stored
// bits unchanged. `calderactl compress --finetune-steps N` runs the same
// after the job.
#include <cstdio>
#include <memory>
#include <string>

#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/finetune_flags.h"
#include "client/calderactl/model_inputs.h"
#include "storage/storage_options.h"

namespace caldera::cli {
namespace {

struct Flags {
  std::string model, original, calibration;
  FineTuneFlags finetune;
};

int Run(Flags f) {
  if (f.finetune.options.steps == 0) f.finetune.options.steps = 200;
  const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
  absl::StatusOr<pipeline::FineTuneResult> r =
      RunFineTune(f.finetune, f.model, f.original, f.calibration, options);
  if (!r.ok()) return ReportError("finetune", r.status());
  std::printf("fine-tuned %lld modules in %zu blocks of %s\n",
              static_cast<long long>(r->modules_tuned), r->blocks.size(), f.model.c_str());
  return kExitOk;
}

}  // namespace

void AddFineTuneCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "finetune",
      "Recovery fine-tuning of a compressed checkpoint, in place: per block, Adam on Q's "
      "scales, L, R and the RMSNorm weights against the original block's output on the "
      "calibration tokens; L and R re-quantized to their stored precision, so the stored bits "
      "do not change");
  cmd->add_option("--model", flags->model, "the compressed checkpoint (rewritten)")->required();
  cmd->add_option("--original", flags->original, "the model it was compressed from")->required();
  cmd->add_option("--calibration", flags->calibration, "calibration token file")->required();
  AddFineTuneFlags(cmd, &flags->finetune);
  cmd->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace caldera::cli
