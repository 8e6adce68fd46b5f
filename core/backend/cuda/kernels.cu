#include "core/backend/cuda/kernels.h"
#include "core/backend/kernels/e8p_search.h"
#include "core/backend/kernels/hadamard_butterfly.h"

namespace caldera::cuda {
namespace {

constexpr int kThreads = 256;

int64_t Blocks(int64_t work) { return (work + kThreads - 1) / kThreads; }

// One thread per butterfly of stage h: (vector, block, pair).
template <typename T>
__global__ void StageKernel(T* x, int64_t count, int64_t n, int64_t p, int64_t vec_stride,
                            int64_t elem_stride, int64_t h) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t pairs = p / 2, blocks = n / p;
  if (id >= count * blocks * pairs) return;
  const int64_t pair = id % pairs, blk = (id / pairs) % blocks, v = id / (pairs * blocks);
  backend::kernels::StageButterfly(x + v * vec_stride + blk * p * elem_stride, elem_stride, h,
                                   pair);
}

// One thread per element: scratch = the K-block mix of x.
template <typename T>
__global__ void MixKernel(const T* x, T* scratch, int64_t count, int64_t n, int64_t p,
                          int64_t vec_stride, int64_t elem_stride, int k, const T* hk) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= count * n) return;
  const int64_t v = id / n, i = id % n, l = i % p;
  const int b = static_cast<int>(i / p);
  scratch[id] = backend::kernels::MixElement(x + v * vec_stride, elem_stride, p, k, hk, l, b);
}

// x = scale · (scratch, or x itself when scratch is null).
template <typename T>
__global__ void ScaleKernel(T* x, const T* scratch, int64_t count, int64_t n, int64_t vec_stride,
                            int64_t elem_stride, T scale) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= count * n) return;
  const int64_t v = id / n, i = id % n;
  T& dst = x[v * vec_stride + i * elem_stride];
  dst = (scratch != nullptr ? scratch[id] : dst) * scale;
}

template <typename T>
cudaError_t Hadamard(T* x, int64_t count, int64_t n, int64_t vec_stride, int64_t elem_stride, int k,
                     const T* hk, T* scratch, T scale, cudaStream_t stream) {
  if (count == 0 || n == 0) return cudaSuccess;
  const int64_t p = n / k;
  for (int64_t h = 1; h < p; h *= 2) {
    StageKernel<<<Blocks(count * (n / 2)), kThreads, 0, stream>>>(x, count, n, p, vec_stride,
                                                                  elem_stride, h);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  if (k > 1) {
    MixKernel<<<Blocks(count * n), kThreads, 0, stream>>>(x, scratch, count, n, p, vec_stride,
                                                          elem_stride, k, hk);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  ScaleKernel<<<Blocks(count * n), kThreads, 0, stream>>>(x, k > 1 ? scratch : nullptr, count, n,
                                                          vec_stride, elem_stride, scale);
  return cudaGetLastError();
}

__global__ void E8pKernel(backend::kernels::E8pTablesView tables, const float* x, int64_t count,
                          uint16_t* codes, float* out) {
  const int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v >= count) return;
  float xv[8], pt[8];
  for (int i = 0; i < 8; ++i) xv[i] = x[8 * v + i];
  codes[v] = backend::kernels::E8pNearestBody(tables, xv, pt);
  for (int i = 0; i < 8; ++i) out[8 * v + i] = pt[i];
}

}  // namespace

cudaError_t LaunchHadamard(float* x, int64_t count, int64_t n, int64_t vec_stride,
                           int64_t elem_stride, int k, const float* hk, float* scratch, float scale,
                           cudaStream_t stream) {
  return Hadamard(x, count, n, vec_stride, elem_stride, k, hk, scratch, scale, stream);
}

cudaError_t LaunchHadamard(double* x, int64_t count, int64_t n, int64_t vec_stride,
                           int64_t elem_stride, int k, const double* hk, double* scratch,
                           double scale, cudaStream_t stream) {
  return Hadamard(x, count, n, vec_stride, elem_stride, k, hk, scratch, scale, stream);
}

cudaError_t LaunchE8pNearest(backend::kernels::E8pTablesView tables, const float* x, int64_t count,
                             uint16_t* codes, float* out, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  E8pKernel<<<Blocks(count), kThreads, 0, stream>>>(tables, x, count, codes, out);
  return cudaGetLastError();
}

}  // namespace caldera::cuda
