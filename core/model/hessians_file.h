// A block's accumulated calibration moments (BlockHessians) in the form of
// the Hessians file (core/format/hessians.h, docs/format/hessians.md). The one
// conversion used by both writers (the worker's calibrate task and
// `calderactl calibrate`), so they write the same numbers.
#ifndef CALDERA_CORE_MODEL_HESSIANS_FILE_H_
#define CALDERA_CORE_MODEL_HESSIANS_FILE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/format/hessians.h"
#include "core/model/llama_block.h"

namespace caldera::model {

// F64 tensors H · (1 / tokens) of block `layer`'s symmetrised moments.
// INVALID_ARGUMENT when h.tokens < 1.
absl::StatusOr<format::Hessians> NormalisedHessians(const BlockHessians& h, int64_t layer);
// The same, consuming `h`: each accumulator is scaled in place and freed once
// converted, so at most one matrix is held twice.
absl::StatusOr<format::Hessians> NormalisedHessians(BlockHessians&& h, int64_t layer);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_HESSIANS_FILE_H_
