// Opening models and token sets named by storage URIs (paths, file://, s3://):
// the seam between object storage (storage/) and the core's model and format
// readers, so storage/ stays object storage only. Shared by calderactl's model
// subcommands, the pipeline's steps and the submit-time validation of
// jobs (job/job_validation.h).
#ifndef CALDERA_MODEL_IO_MODEL_INPUTS_H_
#define CALDERA_MODEL_IO_MODEL_INPUTS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"
#include "core/model/checkpoint.h"
#include "core/model/model_runner.h"
#include "storage/storage_options.h"

namespace caldera::model_io {

// A checkpoint directory at `uri` read through object storage: config.json and
// safetensors headers at open, tensors on request. Compressed checkpoints
// (CALDERA records instead of dense weights) are reconstructed on read; a
// head_sharing.json beside config.json (docs/format/head-sharing.md) is
// parsed and installed (Checkpoint::SetHeadSharing), so aliased attention
// heads read as their sources'.
absl::StatusOr<std::unique_ptr<model::Checkpoint>> OpenCheckpointAt(
    const std::string& uri, const storage::StorageOptions& options);

// A safetensors file at `uri` (header read and validated, tensors on request).
absl::StatusOr<std::unique_ptr<SafetensorsReader>> OpenSafetensorsAt(
    const std::string& uri, const storage::StorageOptions& options);

// The `input_ids` of the safetensors file at `uri`, validated against `config`.
absl::StatusOr<model::TokenSet> LoadTokensAt(const std::string& uri,
                                             const model::ModelConfig& config,
                                             const storage::StorageOptions& options);

}  // namespace caldera::model_io

#endif  // CALDERA_MODEL_IO_MODEL_INPUTS_H_
