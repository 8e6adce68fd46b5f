// Opening models and token sets named by storage URIs (file paths, file://,
// s3://) for the model subcommands.
#ifndef CALDERA_CLIENT_CALDERACTL_MODEL_INPUTS_H_
#define CALDERA_CLIENT_CALDERACTL_MODEL_INPUTS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/model_runner.h"
#include "storage/storage_options.h"

namespace caldera::cli {

// A checkpoint directory at `uri`, read through object storage.
absl::StatusOr<std::unique_ptr<model::Checkpoint>> OpenCheckpointAt(
    const std::string& uri, const storage::StorageOptions& options);

// The `input_ids` of the safetensors file at `uri`, validated against `config`.
absl::StatusOr<model::TokenSet> LoadTokensAt(const std::string& uri,
                                             const model::ModelConfig& config,
                                             const storage::StorageOptions& options);

// Prints "calderactl <command>: error: <message>" to stderr and returns the
// exit code for the status.
int ReportError(const char* command, const absl::Status& status);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_MODEL_INPUTS_H_
