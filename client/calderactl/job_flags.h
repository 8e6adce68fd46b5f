// The job flags shared by `calderactl submit` and `calderactl compress` (the
// same names, defaults and help text for both). The values land in a
// job::JobSpec, whose member initialisers are the defaults the help texts print.
#ifndef CALDERA_CLIENT_CALDERACTL_JOB_FLAGS_H_
#define CALDERA_CLIENT_CALDERACTL_JOB_FLAGS_H_

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "client/calderactl/calibration_text.h"
#include "job/job_spec.h"

namespace caldera::cli {

struct JobFlags {
  job::JobSpec spec;  // starts at the defaults; flags overwrite what they name
  // --method, --quantizer, --incoherence, --ttlora-init, --calibration-mode,
  // --hidden-dtype as given (empty: not given); ParseJobFlagNames sets spec's
  // enums from them.
  job::SettingNames names;
  // --calibration-text: resolved into spec.calibration by
  // ResolveCalibrationText before the job is created.
  CalibrationTextFlags calibration_text;
  // The options whose defaults --serve vllm changes when they are not given
  // (ParseJobFlagNames); set by AddJobFlags.
  CLI::Option* q_bits = nullptr;
  CLI::Option* lr_bits = nullptr;
  CLI::Option* q_group_size = nullptr;
};

// Registers the job flags on `cmd`; values land in `*flags` (must outlive cmd).
void AddJobFlags(CLI::App* cmd, JobFlags* flags);

// Sets flags->spec's enums from flags->names (job::ApplySettingNames):
// INVALID_ARGUMENT naming the flag and the valid names for an unknown one.
// With --serve vllm, the settings not given on the command line take the
// served defaults: --quantizer int, --q-bits 4, --lr-bits 16 (the rest is
// then checked by job::ValidateServe).
absl::Status ParseJobFlagNames(JobFlags* flags);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_JOB_FLAGS_H_
