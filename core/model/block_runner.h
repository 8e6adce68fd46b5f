// A decoder block prepared for repeated forwards over chunks of activations
// (BlockForward, llama_block.h), so that where it runs is the preparer's
// choice: MakeCpuBlockRunner is BlockForward itself; a compute backend
// (core/backend/backend.h, ComputeBackend::PrepareBlock) may keep the
// weights, the rotary table and the Hessian sums on a device between calls.
// The config, weights and Hessians given at preparation must outlive the
// runner. Used by one thread at a time.
#ifndef CALDERA_CORE_MODEL_BLOCK_RUNNER_H_
#define CALDERA_CORE_MODEL_BLOCK_RUNNER_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/llama_block.h"
#include "core/model/model_config.h"

namespace caldera::model {

class BlockRunner {
 public:
  BlockRunner() = default;
  BlockRunner(const BlockRunner&) = delete;
  BlockRunner& operator=(const BlockRunner&) = delete;
  virtual ~BlockRunner() = default;

  // Runs the block over `hidden` (whole sequences of the prepared seq_len,
  // stacked) in place and, when the runner was prepared with Hessians, adds
  // the inputs' second moments (lower triangles) and the token count to
  // them: at once on the CPU, at the latest at Flush() elsewhere.
  // INVALID_ARGUMENT when `hidden` is not whole sequences of the block's width.
  virtual absl::Status Forward(RowMatrixF* hidden) = 0;
  // Makes every sum of the calls so far visible in the Hessians given at
  // preparation (still lower triangles: Symmetrize them when done).
  virtual absl::Status Flush() = 0;
};

// Prepares `weights` (one block of `config`) for sequences of seq_len
// tokens; `hessians` (may be null: a forward only) receives the sums.
using PrepareBlockFn = std::function<absl::StatusOr<std::unique_ptr<BlockRunner>>(
    const ModelConfig& config, const BlockWeights& weights, int64_t seq_len,
    BlockHessians* hessians)>;

// BlockForward on the calling thread (bit-identical to calling it).
absl::StatusOr<std::unique_ptr<BlockRunner>> MakeCpuBlockRunner(const ModelConfig& config,
                                                                const BlockWeights& weights,
                                                                int64_t seq_len,
                                                                BlockHessians* hessians);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_BLOCK_RUNNER_H_
