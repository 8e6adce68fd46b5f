// The --calibration-text flags of `calderactl compress` and `submit`: a text
// file (.txt or .jsonl) that this client tokenizes with the model's own
// tokenizer into the calibration token file the job reads
// (operations/calibration_text.h does the work and says where the file goes).
#ifndef CALDERA_CLIENT_CALDERACTL_CALIBRATION_TEXT_H_
#define CALDERA_CLIENT_CALDERACTL_CALIBRATION_TEXT_H_

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "job/job_spec.h"
#include "operations/calibration_text.h"
#include "storage/storage_options.h"

namespace caldera::cli {

using CalibrationTextFlags = operations::CalibrationText;

// Registers --calibration-text, --calibration-seq-len, --calibration-samples
// and --calibration-seed on `cmd`; values land in `*flags` (must outlive cmd).
void AddCalibrationTextFlags(CLI::App* cmd, CalibrationTextFlags* flags);

// operations::ResolveCalibrationText with its notes printed to stderr.
absl::Status ResolveCalibrationText(const CalibrationTextFlags& flags, job::JobSpec* spec,
                                    const storage::StorageOptions& options);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_CALIBRATION_TEXT_H_
