// Calibration from text (calderactl --calibration-text of compress and
// submit, the Python package's calibration_text=): a text file (.txt or
// .jsonl) tokenized with the model's own tokenizer (model_io/text_tokens.h)
// into the calibration token file the job reads.
//
// The token file goes to spec->calibration when that is given too, else
// beside the output: "<out>.calibration.safetensors" (apart from the output,
// which must not hold inputs; on the same storage, so remote workers read it
// too). Windows: seq_len (default 512, at most the model's
// max_position_embeddings), samples (default 128, or every window when the
// text has fewer), the first ones or drawn with seed.
#ifndef CALDERA_OPERATIONS_CALIBRATION_TEXT_H_
#define CALDERA_OPERATIONS_CALIBRATION_TEXT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "job/job_spec.h"
#include "operations/listener.h"
#include "storage/storage_options.h"

namespace caldera::operations {

inline constexpr int64_t kDefaultCalibrationSeqLen = 512;
inline constexpr int64_t kDefaultCalibrationSamples = 128;

struct CalibrationText {
  std::string text;     // empty: spec->calibration is a token file
  int64_t seq_len = 0;  // 0: min(kDefaultCalibrationSeqLen, max_position_embeddings)
  int64_t samples = 0;  // 0: min(kDefaultCalibrationSamples, windows)
  std::optional<uint64_t> seed;
};

// With text: tokenizes it and sets spec->calibration to the token file
// written (a note says where). Without: checks that spec->calibration is
// given. INVALID_ARGUMENT for neither, bad text or a model without a
// tokenizer; storage errors as they come.
absl::Status ResolveCalibrationText(const CalibrationText& text, job::JobSpec* spec,
                                    const storage::StorageOptions& options,
                                    const Listener& listener);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_CALIBRATION_TEXT_H_
