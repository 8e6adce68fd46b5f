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

// An expert routed fewer than this many calibration tokens gets a Hessian
// shrunk toward the layer's mean: with n < kExpertPriorTokens tokens and raw sum
// S (Σ xᵀx over its tokens), H = (S + (kExpertPriorTokens − n) · M) /
// kExpertPriorTokens, where M is, for gate/up, the router's input moment over
// every token and, for down, the mean of all experts' down inputs over every
// (token, chosen expert) pair. An expert with no tokens gets M itself; one with
// at least kExpertPriorTokens its own moment. The share (kExpertPriorTokens −
// n) / kExpertPriorTokens is stored per expert and reported.
inline constexpr int64_t kExpertPriorTokens = 16;

// F64 tensors H · (1 / tokens) of block `layer`'s symmetrised moments, and of
// a mixture's experts (with the fallback above).
// INVALID_ARGUMENT when h.tokens < 1.
absl::StatusOr<format::Hessians> NormalisedHessians(const BlockHessians& h, int64_t layer);
// The same, consuming `h`: each accumulator is scaled in place and freed once
// converted, so at most one matrix is held twice.
absl::StatusOr<format::Hessians> NormalisedHessians(BlockHessians&& h, int64_t layer);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_HESSIANS_FILE_H_
