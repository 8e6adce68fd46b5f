// What a finetune(layer) task hands on (docs/format/finetune-block.md): its
// tuned matrix artifacts, which replace the artifacts the block's budget
// allocation chose, and its block file (tuned RMSNorm weights and the loss
// report). The sequential calibration of the next block (CompressedBlock) and
// finalize both apply them through these functions, so both see the same
// block.
#ifndef CALDERA_PIPELINE_TUNED_BLOCK_H_
#define CALDERA_PIPELINE_TUNED_BLOCK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/format/finetune_block.h"
#include "core/format/module_report.h"
#include "core/model/llama_block.h"
#include "core/model/model_config.h"
#include "storage/storage_options.h"

namespace caldera::pipeline {

// Replaces each report of `reports` whose matrix (ModuleReport::name) has a
// tuned artifact in `tuned_uris` by that artifact's report (its `artifact`
// the tuned URI). Call it after ResolveBudgetChoices. INVALID_ARGUMENT for a
// tuned artifact of a matrix `reports` does not hold.
absl::Status ApplyTunedArtifacts(const std::vector<std::string>& tuned_uris,
                                 const storage::StorageOptions& options,
                                 std::vector<format::ModuleReport>* reports);

// The block file at `uri`, checked.
absl::StatusOr<format::FinetuneBlockFile> ReadFinetuneBlockAt(
    const std::string& uri, const storage::StorageOptions& options);

// Sets `weights`' RMSNorm weights of block `layer` from `block`'s tensors
// (those it holds; a tensor of another name or size is INVALID_ARGUMENT).
absl::Status ApplyTunedNorms(const format::FinetuneBlockFile& block,
                             const model::ModelConfig& config, int64_t layer,
                             model::BlockWeights* weights);

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_TUNED_BLOCK_H_
