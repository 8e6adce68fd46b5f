// The CUDA backend's own kernels, device code only: compiled by nvcc into a
// fat binary (sm_80, sm_90 and PTX) that is embedded in the library and
// loaded at backend creation with cudaLibraryLoadData (kernels.cc), so that
// nothing here links the CUDA runtime into the process (cuda_libraries.h
// says why). extern "C" names: kernels.cc looks them up by name.
#include <cstdint>

#include "core/backend/kernels/e8p_search.h"
#include "core/backend/kernels/hadamard_butterfly.h"

namespace {

// One thread per butterfly of stage h: (vector, block, pair).
template <typename T>
__device__ void Stage(T* x, int64_t count, int64_t n, int64_t p, int64_t vec_stride,
                      int64_t elem_stride, int64_t h) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t pairs = p / 2, blocks = n / p;
  if (id >= count * blocks * pairs) return;
  const int64_t pair = id % pairs, blk = (id / pairs) % blocks, v = id / (pairs * blocks);
  caldera::backend::kernels::StageButterfly(x + v * vec_stride + blk * p * elem_stride,
                                            elem_stride, h, pair);
}

// One thread per element: scratch = the K-block mix of x.
template <typename T>
__device__ void Mix(const T* x, T* scratch, int64_t count, int64_t n, int64_t p,
                    int64_t vec_stride, int64_t elem_stride, int k, const T* hk) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= count * n) return;
  const int64_t v = id / n, i = id % n, l = i % p;
  const int b = static_cast<int>(i / p);
  scratch[id] =
      caldera::backend::kernels::MixElement(x + v * vec_stride, elem_stride, p, k, hk, l, b);
}

// x = scale · (scratch, or x itself when scratch is null).
template <typename T>
__device__ void Scale(T* x, const T* scratch, int64_t count, int64_t n, int64_t vec_stride,
                      int64_t elem_stride, T scale) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= count * n) return;
  const int64_t v = id / n, i = id % n;
  T& dst = x[v * vec_stride + i * elem_stride];
  dst = (scratch != nullptr ? scratch[id] : dst) * scale;
}

}  // namespace

extern "C" {

__global__ void caldera_hadamard_stage_f(float* x, int64_t count, int64_t n, int64_t p,
                                         int64_t vec_stride, int64_t elem_stride, int64_t h) {
  Stage(x, count, n, p, vec_stride, elem_stride, h);
}
__global__ void caldera_hadamard_stage_d(double* x, int64_t count, int64_t n, int64_t p,
                                         int64_t vec_stride, int64_t elem_stride, int64_t h) {
  Stage(x, count, n, p, vec_stride, elem_stride, h);
}
__global__ void caldera_hadamard_mix_f(const float* x, float* scratch, int64_t count, int64_t n,
                                       int64_t p, int64_t vec_stride, int64_t elem_stride, int k,
                                       const float* hk) {
  Mix(x, scratch, count, n, p, vec_stride, elem_stride, k, hk);
}
__global__ void caldera_hadamard_mix_d(const double* x, double* scratch, int64_t count, int64_t n,
                                       int64_t p, int64_t vec_stride, int64_t elem_stride, int k,
                                       const double* hk) {
  Mix(x, scratch, count, n, p, vec_stride, elem_stride, k, hk);
}
__global__ void caldera_hadamard_scale_f(float* x, const float* scratch, int64_t count, int64_t n,
                                         int64_t vec_stride, int64_t elem_stride, float scale) {
  Scale(x, scratch, count, n, vec_stride, elem_stride, scale);
}
__global__ void caldera_hadamard_scale_d(double* x, const double* scratch, int64_t count,
                                         int64_t n, int64_t vec_stride, int64_t elem_stride,
                                         double scale) {
  Scale(x, scratch, count, n, vec_stride, elem_stride, scale);
}

__global__ void caldera_e8p_nearest(caldera::backend::kernels::E8pTablesView tables,
                                    const float* x, int64_t count, uint16_t* codes, float* out) {
  const int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v >= count) return;
  float xv[8], pt[8];
  for (int i = 0; i < 8; ++i) xv[i] = x[8 * v + i];
  codes[v] = caldera::backend::kernels::E8pNearestBody(tables, xv, pt);
  for (int i = 0; i < 8; ++i) out[8 * v + i] = pt[i];
}

}  // extern "C"
