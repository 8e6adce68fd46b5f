// Launchers of the CUDA backend's own kernels (kernels.cu), plain C++ over
// device pointers so that g++-compiled code calls them. Each enqueues on
// `stream` and returns the launch's error (cudaGetLastError), never
// synchronizes. The per-element bodies are core/backend/kernels/*.h.
#ifndef CALDERA_CORE_BACKEND_CUDA_KERNELS_H_
#define CALDERA_CORE_BACKEND_CUDA_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/backend/kernels/e8p_search.h"

namespace caldera::cuda {

// The Hadamard transform of `count` vectors of length n = k·p held in x
// (vector v element i at x[v·vec_stride + i·elem_stride]): log2(p) butterfly
// stages per block, then (k > 1) the mix with hk (k × k row-major, H_K or
// its transpose, on the device) through `scratch` (count·n values), then the
// scale. float and double.
cudaError_t LaunchHadamard(float* x, int64_t count, int64_t n, int64_t vec_stride,
                           int64_t elem_stride, int k, const float* hk, float* scratch, float scale,
                           cudaStream_t stream);
cudaError_t LaunchHadamard(double* x, int64_t count, int64_t n, int64_t vec_stride,
                           int64_t elem_stride, int k, const double* hk, double* scratch,
                           double scale, cudaStream_t stream);

// E8P nearest points of `count` 8-vectors (x, out: count × 8 row-major; one
// thread per vector; the tables on the device).
cudaError_t LaunchE8pNearest(backend::kernels::E8pTablesView tables, const float* x, int64_t count,
                             uint16_t* codes, float* out, cudaStream_t stream);

}  // namespace caldera::cuda

#endif  // CALDERA_CORE_BACKEND_CUDA_KERNELS_H_
