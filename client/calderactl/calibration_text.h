// --calibration-text of `calderactl compress` and `submit`: a text file (.txt
// or .jsonl) that this client tokenizes with the model's own tokenizer
// (model_io/text_tokens.h) into the calibration token file the job reads.
//
// The token file goes to --calibration when that is given too, else beside
// the output: "<out>.calibration.safetensors" (apart from --out, which must
// not hold inputs; on the same storage, so remote workers read it too).
// Windows: --calibration-seq-len (default 512, at most the model's
// max_position_embeddings), --calibration-samples (default 128, or every
// window when the text has fewer), the first ones or drawn with
// --calibration-seed.
#ifndef CALDERA_CLIENT_CALDERACTL_CALIBRATION_TEXT_H_
#define CALDERA_CLIENT_CALDERACTL_CALIBRATION_TEXT_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "job/job_spec.h"
#include "storage/storage_options.h"

namespace caldera::cli {

struct CalibrationTextFlags {
  std::string text;
  int64_t seq_len = 0;  // 0: min(512, max_position_embeddings)
  int64_t samples = 0;  // 0: min(128, windows)
  std::optional<uint64_t> seed;
};

// Registers --calibration-text, --calibration-seq-len, --calibration-samples
// and --calibration-seed on `cmd`; values land in `*flags` (must outlive cmd).
void AddCalibrationTextFlags(CLI::App* cmd, CalibrationTextFlags* flags);

// With --calibration-text: tokenizes it and sets spec->calibration to the
// token file written (printing where to stderr). Without: checks that
// --calibration is given. INVALID_ARGUMENT for neither, bad text or a
// model without a tokenizer; storage errors as they come.
absl::Status ResolveCalibrationText(const CalibrationTextFlags& flags, job::JobSpec* spec,
                                    const storage::StorageOptions& options);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_CALIBRATION_TEXT_H_
