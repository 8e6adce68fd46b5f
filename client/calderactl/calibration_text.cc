#include "client/calderactl/calibration_text.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/format/tokens.h"
#include "core/model/model_config.h"
#include "core/tokenizer/tokenizer.h"
#include "model_io/text_tokens.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::cli {
namespace {

constexpr int64_t kDefaultSeqLen = 512;
constexpr int64_t kDefaultSamples = 128;

}  // namespace

void AddCalibrationTextFlags(CLI::App* cmd, CalibrationTextFlags* f) {
  cmd->add_option("--calibration-text", f->text,
                  "instead of --calibration: a text file (.txt, or .jsonl with a \"text\" "
                  "field) tokenized here with the model's own tokenizer; the token file goes to "
                  "--calibration when given, else to <out>.calibration.safetensors");
  cmd->add_option("--calibration-seq-len", f->seq_len,
                  absl::StrCat("tokens per calibration sample with --calibration-text (default ",
                               kDefaultSeqLen, ", at most the model's max_position_embeddings)"));
  cmd->add_option("--calibration-samples", f->samples,
                  absl::StrCat("calibration samples with --calibration-text (default ",
                               kDefaultSamples, ", or every window of a shorter text)"));
  cmd->add_option("--calibration-seed", f->seed,
                  "draw the --calibration-text windows at random with this seed (default: the "
                  "first ones)");
}

absl::Status ResolveCalibrationText(const CalibrationTextFlags& f, job::JobSpec* spec,
                                    const storage::StorageOptions& options) {
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
  int64_t seq_len = f.seq_len;
  if (seq_len == 0) {
    seq_len = config->max_position_embeddings > 0
                  ? std::min(kDefaultSeqLen, config->max_position_embeddings)
                  : kDefaultSeqLen;
  }
  int64_t samples = f.samples;
  if (samples == 0 && seq_len >= 2) {
    const int64_t windows = static_cast<int64_t>(ids->size()) / seq_len;
    samples = std::min(kDefaultSamples, windows);
    if (windows > 0 && windows < kDefaultSamples) {
      std::fprintf(stderr,
                   "calibration: %s gives %lld windows of %lld tokens, fewer than the default "
                   "%lld samples; using them all\n",
                   f.text.c_str(), static_cast<long long>(windows), static_cast<long long>(seq_len),
                   static_cast<long long>(kDefaultSamples));
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
  std::fprintf(stderr, "calibration: %s -> %lld samples x %lld tokens (%s) at %s\n", f.text.c_str(),
               static_cast<long long>(tokens->samples), static_cast<long long>(tokens->seq_len),
               file.c_str(), dest.c_str());
  spec->calibration = dest;
  return absl::OkStatus();
}

}  // namespace caldera::cli
