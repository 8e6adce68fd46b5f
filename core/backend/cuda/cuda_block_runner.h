// The CUDA backend's calibration forward (backend::BlockRunner; experimental:
// compiled and host-tested, not yet run on a GPU). PrepareBlock uploads the
// block's weights, norms, biases and rotary table once and, for a
// calibration, allocates the four Hessian sums in float64 on the device;
// each Forward uploads one chunk of activations, runs the block with cuBLAS
// (the seven projections, the attention products batched over sequences)
// and the kernels of kernels.h (RMSNorm, RoPE, causal softmax, SwiGLU,
// biases), adds each Hessian input's float32 SSYRK into the float64 sums as
// the CPU does per chunk, and downloads the activations. Flush downloads the
// sums, adds them into the host Hessians and zeroes them on the device.
//
// Device memory: the block's weights, the sums (when calibrating) and one
// n × n float32 SSYRK scratch, then the chunk's activations and one head's
// scores per sequence; an allocation that fails is RESOURCE_EXHAUSTED naming
// its bytes.
#ifndef CALDERA_CORE_BACKEND_CUDA_CUDA_BLOCK_RUNNER_H_
#define CALDERA_CORE_BACKEND_CUDA_CUDA_BLOCK_RUNNER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/backend/cuda/cuda_libraries.h"
#include "core/backend/cuda/kernels.h"

namespace caldera::cuda {

// What a runner computes with; all of it owned by the backend, which must
// outlive the runner (the runner enqueues on `stream` and synchronizes it).
struct CudaContext {
  const CudaLibraries* lib = nullptr;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  const KernelModule* kernels = nullptr;
  int device = 0;
};

absl::StatusOr<std::unique_ptr<backend::BlockRunner>> PrepareCudaBlock(
    const CudaContext& context, const model::ModelConfig& config,
    const model::BlockWeights& weights, int64_t seq_len, model::BlockHessians* hessians);

}  // namespace caldera::cuda

#endif  // CALDERA_CORE_BACKEND_CUDA_CUDA_BLOCK_RUNNER_H_
