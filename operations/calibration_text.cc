#include "operations/calibration_text.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/format/tokens.h"
#include "core/model/model_config.h"
#include "core/tokenizer/tokenizer.h"
#include "model_io/text_tokens.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::operations {

absl::Status ResolveCalibrationText(const CalibrationText& f, job::JobSpec* spec,
                                    const storage::StorageOptions& options,
                                    const Listener& listener) {
  if (f.text.empty()) {
    if (spec->calibration.empty()) {
      return absl::InvalidArgumentError(
          "--calibration (a token file) or --calibration-text (a text file) is required");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> config_text =
      storage::ReadObject(storage::JoinKey(spec->model, "config.json"), options);
  if (!config_text.ok()) return config_text.status();
  absl::StatusOr<model::ModelConfig> config =
      model::ParseModelConfig(*config_text, storage::JoinKey(spec->model, "config.json"));
  if (!config.ok()) return config.status();
  std::string file;
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok =
      model_io::OpenModelTokenizer(spec->model, options, &file);
  if (!tok.ok()) return tok.status();
  absl::StatusOr<std::vector<int32_t>> ids =
      model_io::TokenizeTextFile(**tok, f.text, "text", /*add_special=*/true, options);
  if (!ids.ok()) return ids.status();
  const int64_t seq_len = model_io::TextWindowLength(f.seq_len, kDefaultCalibrationSeqLen,
                                                     config->max_position_embeddings);
  int64_t samples = f.samples;
  if (samples == 0 && seq_len >= 2) {
    const int64_t windows = static_cast<int64_t>(ids->size()) / seq_len;
    samples = std::min(kDefaultCalibrationSamples, windows);
    if (windows > 0 && windows < kDefaultCalibrationSamples) {
      listener.Note(absl::StrCat("calibration: ", f.text, " gives ", windows, " windows of ",
                                 seq_len, " tokens, fewer than the default ",
                                 kDefaultCalibrationSamples, " samples; using them all"));
    }
  }
  absl::StatusOr<format::TokenSet> tokens = model_io::CutWindows(
      *ids, seq_len, samples, f.seed, absl::StrCat("--calibration-text ", f.text));
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::string> bytes = format::SerializeTokenFile(*tokens);
  if (!bytes.ok()) return bytes.status();
  std::string dest = spec->calibration;
  if (dest.empty()) {
    std::string out = spec->out;
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    dest = out + ".calibration.safetensors";
  }
  absl::StatusOr<storage::ObjectInfo> put = storage::WriteObject(dest, *bytes, options);
  if (!put.ok()) return put.status();
  listener.Note(absl::StrCat("calibration: ", f.text, " -> ", tokens->samples, " samples x ",
                             tokens->seq_len, " tokens (", file, ") at ", dest));
  spec->calibration = dest;
  return absl::OkStatus();
}

}  // namespace caldera::operations
