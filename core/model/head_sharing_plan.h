// The DirectShare plan of a checkpoint (head_sharing.h) from its attention
// weights: reads q/k/v/o_proj of every layer once, through
// Checkpoint::ReadLinearWeight, so it costs one pass over the attention
// weights (4 · layers matrices) and holds them as per-group vectors while
// ranking. Apart from the checkpoint's own file reads, a pure function.
#ifndef CALDERA_CORE_MODEL_HEAD_SHARING_PLAN_H_
#define CALDERA_CORE_MODEL_HEAD_SHARING_PLAN_H_

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/head_sharing.h"

namespace caldera::model {

// The sharing plan for `ratio` (INVALID_ARGUMENT outside [0, 1] or NaN,
// naming --share-heads). FAILED_PRECONDITION when `checkpoint` already has a
// head sharing installed (a checkpoint is shared once).
absl::StatusOr<HeadSharing> PlanCheckpointHeadSharing(const Checkpoint& checkpoint, double ratio);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_HEAD_SHARING_PLAN_H_
