#include "core/model/head_sharing_plan.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace caldera::model {

absl::StatusOr<HeadSharing> PlanCheckpointHeadSharing(const Checkpoint& checkpoint, double ratio) {
  if (absl::Status s = ValidateShareRatio(ratio, "--share-heads"); !s.ok()) return s;
  if (checkpoint.head_sharing() != nullptr && !checkpoint.head_sharing()->empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model ", checkpoint.name(), " already shares attention heads (", kHeadSharingFile,
        "); --share-heads needs an unshared model: give "
        "the original model, or 0"));
  }
  const ModelConfig& config = checkpoint.config();
  return PlanHeadSharing(
      config, ratio, [&](int64_t layer, absl::string_view module) -> absl::StatusOr<Tensor> {
        for (const LinearModule& m : kLinearModules) {
          if (module == m.name) {
            return checkpoint.ReadLinearWeight(config.LayerPrefix(layer) + m.suffix, m.name);
          }
        }
        return absl::InvalidArgumentError(absl::StrCat("unknown module ", module));
      });
}

}  // namespace caldera::model
