#include "client/calderactl/model_inputs.h"

#include <cstdio>

#include "client/calderactl/exit_codes.h"
#include "core/decompose/record.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::cli {

absl::StatusOr<std::unique_ptr<model::Checkpoint>> OpenCheckpointAt(
    const std::string& uri, const storage::StorageOptions& options) {
  model::FileOpener opener = [uri, options](const std::string& name) {
    return storage::OpenObjectSource(storage::JoinKey(uri, name), options);
  };
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
      model::Checkpoint::Open(std::move(opener), uri);
  // Compressed checkpoints hold CALDERA records instead of dense weights.
  if (ckpt.ok()) (*ckpt)->SetLinearReconstructor(decompose::CalderaReconstructor());
  return ckpt;
}

absl::StatusOr<model::TokenSet> LoadTokensAt(const std::string& uri,
                                             const model::ModelConfig& config,
                                             const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = storage::OpenObjectSource(uri, options);
  if (!src.ok()) return src.status();
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      SafetensorsReader::Open(*std::move(src));
  if (!reader.ok()) return reader.status();
  return model::LoadTokens(**reader, config);
}

int ReportError(const char* command, const absl::Status& status) {
  std::fprintf(stderr, "calderactl %s: error: %s\n", command,
               std::string(status.message()).c_str());
  return ExitCodeFor(status);
}

}  // namespace caldera::cli
