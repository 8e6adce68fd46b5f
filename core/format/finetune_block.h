// The fine-tuned block file (docs/format/finetune-block.md): what a
// finetune(layer) task writes besides its tuned matrix artifacts — the block's
// tuned RMSNorm weights, under their checkpoint names, and the block's loss
// report — and report.json's per-block "finetune" entries. One writer and one
// checked reader.
//   - tensors: "<layer prefix>input_layernorm.weight" and
//     "<layer prefix>post_attention_layernorm.weight" in the input's dtype
//     (absent when the block kept its input or norms were not tuned);
//   - metadata: format = "caldera.finetune_block.v1", "report" (JSON below).
#ifndef CALDERA_CORE_FORMAT_FINETUNE_BLOCK_H_
#define CALDERA_CORE_FORMAT_FINETUNE_BLOCK_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/format/safetensors.h"
#include "nlohmann/json.hpp"

namespace caldera::format {

inline constexpr char kFinetuneBlockFormat[] = "caldera.finetune_block.v1";

// One block's fine-tuning: mean squared errors of the block's output against
// its target, on the training and the held-out sequences, before and after.
struct FinetuneBlockReport {
  int64_t layer = 0;
  int64_t steps = 0;          // Adam steps run (every phase)
  double train_before = 0;    // training sequences, as the block came in
  double holdout_before = 0;  // held-out sequences, as the block came in
  double holdout_after = 0;   // held-out sequences, as written
  bool kept_input = false;    // tuning did not help: nothing replaced
  int64_t modules_tuned = 0;  // tuned matrix artifacts written
};

nlohmann::json FinetuneBlockReportToJson(const FinetuneBlockReport& r);
// Checked reading; INVALID_ARGUMENT naming `where` and the key.
absl::StatusOr<FinetuneBlockReport> FinetuneBlockReportFromJson(const nlohmann::json& j,
                                                                const std::string& where);

struct FinetuneBlockFile {
  FinetuneBlockReport report;
  NamedTensors norms;  // full tensor names -> tuned values
};

absl::StatusOr<std::string> SerializeFinetuneBlock(FinetuneBlockFile file);
// Checks the format tag and the report; reads the tensors.
absl::StatusOr<FinetuneBlockFile> ReadFinetuneBlock(const SafetensorsReader& reader);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_FINETUNE_BLOCK_H_
