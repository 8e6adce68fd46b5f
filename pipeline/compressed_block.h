// Block ℓ's weights with its linears replaced by their compressed versions,
// rebuilt from the decompose steps' artifacts through the record reader that
// eval and export use. The sequential calibration runs the previous block
// this way, so later blocks calibrate on the states the compressed model makes.
#ifndef CALDERA_PIPELINE_COMPRESSED_BLOCK_H_
#define CALDERA_PIPELINE_COMPRESSED_BLOCK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/llama_block.h"
#include "pipeline/step_environment.h"
#include "storage/storage_options.h"

namespace caldera::pipeline {

// Block `layer` of `checkpoint` with the linears of `artifacts` (artifact
// URIs of that layer) replaced. Under --target-bits each matrix is the
// candidate its block's allocation chooses (ResolveBudgetChoices), as finalize
// will choose. Aliased heads (--share-heads) come from the source layer's
// weights. `io` (not null) gains the bytes read.
absl::StatusOr<model::BlockWeights> CompressedBlock(const model::Checkpoint& checkpoint,
                                                    int64_t layer,
                                                    const std::vector<std::string>& artifacts,
                                                    const storage::StorageOptions& options,
                                                    IoCounts* io);

// The same, after recovery fine-tuning: `tuned_artifacts` (finetune(layer)'s
// artifacts) replace the chosen ones, and the block file at `block_uri` (when
// not empty) sets the tuned norms (pipeline/tuned_block.h).
absl::StatusOr<model::BlockWeights> CompressedBlock(
    const model::Checkpoint& checkpoint, int64_t layer, const std::vector<std::string>& artifacts,
    const std::vector<std::string>& tuned_artifacts, const std::string& block_uri,
    const storage::StorageOptions& options, IoCounts* io);

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_COMPRESSED_BLOCK_H_
