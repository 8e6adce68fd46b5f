#include "client/calderactl/calibration_text.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace caldera::cli {

void AddCalibrationTextFlags(CLI::App* cmd, CalibrationTextFlags* f) {
  cmd->add_option("--calibration-text", f->text,
                  "instead of --calibration: a text file (.txt, or .jsonl with a \"text\" "
                  "field) tokenized here with the model's own tokenizer; the token file goes to "
                  "--calibration when given, else to <out>.calibration.safetensors");
  cmd->add_option("--calibration-seq-len", f->seq_len,
                  absl::StrCat("tokens per calibration sample with --calibration-text (default ",
                               operations::kDefaultCalibrationSeqLen,
                               ", at most the model's max_position_embeddings)"));
  cmd->add_option(
      "--calibration-samples", f->samples,
      absl::StrCat("calibration samples with --calibration-text (default ",
                   operations::kDefaultCalibrationSamples, ", or every window of a shorter text)"));
  cmd->add_option("--calibration-seed", f->seed,
                  "draw the --calibration-text windows at random with this seed (default: the "
                  "first ones)");
}

absl::Status ResolveCalibrationText(const CalibrationTextFlags& f, job::JobSpec* spec,
                                    const storage::StorageOptions& options) {
  operations::Listener listener;
  listener.note = [](const std::string& text) { std::fprintf(stderr, "%s\n", text.c_str()); };
  return operations::ResolveCalibrationText(f, spec, options, listener);
}

}  // namespace caldera::cli
