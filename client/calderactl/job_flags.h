// The job flags shared by `calderactl submit` and `calderactl compress` (the
// same names, defaults and help text for both). The values land in a
// job::JobSpec, whose member initialisers are the defaults the help texts print.
#ifndef CALDERA_CLIENT_CALDERACTL_JOB_FLAGS_H_
#define CALDERA_CLIENT_CALDERACTL_JOB_FLAGS_H_

#include <CLI/CLI.hpp>

#include "client/calderactl/calibration_text.h"
#include "job/job_spec.h"

namespace caldera::cli {

struct JobFlags {
  job::JobSpec spec;  // starts at the defaults; flags overwrite what they name
  // --calibration-text: resolved into spec.calibration by
  // ResolveCalibrationText before the job is created.
  CalibrationTextFlags calibration_text;
};

// Registers the job flags on `cmd`; values land in `*flags` (must outlive cmd).
void AddJobFlags(CLI::App* cmd, JobFlags* flags);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_JOB_FLAGS_H_
