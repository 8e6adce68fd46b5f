#include "client/calderactl/finetune_flags.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace caldera::cli {

void AddFineTuneFlags(CLI::App* cmd, FineTuneFlags* f) {
  cmd->add_option("--finetune-steps", f->options.steps,
                  "recovery fine-tuning after compression: Adam steps per block on Q's scales, "
                  "L, R and the norms against each block's output on the calibration data "
                  "(0 = off, the default)");
  cmd->add_option("--finetune-lr", f->options.lr,
                  absl::StrCat("fine-tuning learning rate, relative to each tensor's RMS (default ",
                               f->options.lr, ")"));
  cmd->add_option("--finetune-holdout", f->options.holdout,
                  absl::StrCat("share of the calibration sequences held out to stop early and to "
                               "report (default ",
                               f->options.holdout, ")"));
  cmd->add_option("--finetune-batch", f->options.batch_sequences,
                  absl::StrCat("calibration sequences per fine-tuning step (default ",
                               f->options.batch_sequences, ")"));
  cmd->add_option("--finetune-patience", f->options.patience,
                  absl::StrCat("held-out evaluations (every ", f->options.eval_every,
                               " steps) without improvement before a block stops (default ",
                               f->options.patience, ")"));
  cmd->add_option("--finetune-round-lr", f->options.round_lr,
                  "signed-gradient step of the learned rounding offsets (default 4 / steps; "
                  "1 / steps with --finetune-constant-lr)");
  cmd->add_flag("--finetune-constant-lr{false}", f->options.linear_decay,
                "constant learning rates (default: they fall linearly to 0 over each phase, "
                "AutoRound's schedule)");
  cmd->add_flag("--finetune-no-rounding", f->no_rounding,
                "keep Q's codes as stored (no learned rounding)");
  cmd->add_option("--finetune-target", f->target,
                  "what each block is tuned to reproduce: original-states (the default: the "
                  "original model's states after the block, so it also corrects the error it "
                  "inherits, as AutoRound does; measured better) or block (the original block's "
                  "output on the compressed model's states)");
}

absl::Status ValidateFineTuneFlags(const FineTuneFlags& f) {
  if (f.options.steps < 0 || f.options.steps > 1000000) {
    return absl::InvalidArgumentError("--finetune-steps must be in [0, 1000000]");
  }
  if (!std::isfinite(f.options.lr) || f.options.lr <= 0 || f.options.lr > 1) {
    return absl::InvalidArgumentError("--finetune-lr must be in (0, 1]");
  }
  if (!std::isfinite(f.options.holdout) || f.options.holdout <= 0 || f.options.holdout >= 1) {
    return absl::InvalidArgumentError("--finetune-holdout must be in (0, 1)");
  }
  if (f.options.batch_sequences < 1 || f.options.patience < 1) {
    return absl::InvalidArgumentError("--finetune-batch and --finetune-patience must be >= 1");
  }
  if (!std::isfinite(f.options.round_lr) || f.options.round_lr < 0 || f.options.round_lr > 1) {
    return absl::InvalidArgumentError("--finetune-round-lr must be in [0, 1]");
  }
  if (f.target != "block" && f.target != "original-states") {
    return absl::InvalidArgumentError("--finetune-target must be block or original-states");
  }
  return absl::OkStatus();
}

absl::StatusOr<pipeline::FineTuneResult> RunFineTune(const FineTuneFlags& f,
                                                     const std::string& checkpoint,
                                                     const std::string& original,
                                                     const std::string& calibration,
                                                     const storage::StorageOptions& options) {
  if (absl::Status s = ValidateFineTuneFlags(f); !s.ok()) return s;
  pipeline::FineTuneRequest request;
  request.checkpoint_uri = checkpoint;
  request.original_model_uri = original;
  request.calibration_uri = calibration;
  request.options = f.options;
  request.options.tune_rounding = !f.no_rounding;
  request.target_from_original_states = f.target == "original-states";
  const auto start = std::chrono::steady_clock::now();
  request.progress = [&](int64_t layer, const finetune::BlockTuneReport& r) {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr,
                 "finetune: block %lld: held-out error %.4g -> %.4g (%.4g before L, R were "
                 "re-quantized; %d steps%s), %.1f s\n",
                 static_cast<long long>(layer), r.holdout_before, r.holdout_after, r.holdout_tuned,
                 r.steps, r.kept_input ? ", input kept" : "", s);
  };
  return pipeline::FineTune(request, pipeline::StepEnvironment(options));
}

}  // namespace caldera::cli
