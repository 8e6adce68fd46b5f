// The CUDA backend's own kernels, device code only: compiled by nvcc into a
// fat binary (sm_80, sm_90 and PTX) that is embedded in the library and
// loaded at backend creation with cudaLibraryLoadData (kernels.cc), so that
// nothing here links the CUDA runtime into the process (cuda_libraries.h
// says why). extern "C" names: kernels.cc looks them up by name.
#include <cstdint>

#include "core/backend/kernels/e8p_search.h"
#include "core/backend/kernels/hadamard_butterfly.h"
#include "core/model/block_kernels.h"

namespace {

// One thread per butterfly of stage h: (vector, block, pair).
template <typename T>
__device__ void Stage(T* x, int64_t count, int64_t n, int64_t p, int64_t vec_stride,
                      int64_t elem_stride, int64_t h) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t pairs = p / 2, blocks = n / p;
  if (id >= count * blocks * pairs) return;
  const int64_t pair = id % pairs, blk = (id / pairs) % blocks, v = id / (pairs * blocks);
  caldera::backend::kernels::StageButterfly(x + v * vec_stride + blk * p * elem_stride, elem_stride,
                                            h, pair);
}

// One thread per element: scratch = the K-block mix of x.
template <typename T>
__device__ void Mix(const T* x, T* scratch, int64_t count, int64_t n, int64_t p, int64_t vec_stride,
                    int64_t elem_stride, int k, const T* hk) {
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
__global__ void caldera_hadamard_scale_d(double* x, const double* scratch, int64_t count, int64_t n,
                                         int64_t vec_stride, int64_t elem_stride, double scale) {
  Scale(x, scratch, count, n, vec_stride, elem_stride, scale);
}

__global__ void caldera_e8p_nearest(caldera::backend::kernels::E8pTablesView tables, const float* x,
                                    int64_t count, uint16_t* codes, float* out) {
  const int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v >= count) return;
  float xv[8], pt[8];
  for (int i = 0; i < 8; ++i) xv[i] = x[8 * v + i];
  codes[v] = caldera::backend::kernels::E8pNearestBody(tables, xv, pt);
  for (int i = 0; i < 8; ++i) out[8 * v + i] = pt[i];
}

// ---- The calibration forward (core/model/block_kernels.h). Activations are
// row-major [tokens, width] (column-major width × tokens for cuBLAS).

__global__ void caldera_rmsnorm_rows(const float* x, const float* weight, int64_t rows, int64_t n,
                                     double eps, float* out) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  caldera::model::kernels::RmsNormRow(x + r * n, weight, n, eps, out + r * n);
}

// One thread per (token, head, pair); cos/sin are [seq_len, d/2] row-major.
__global__ void caldera_rope(float* x, const float* cos_table, const float* sin_table,
                             int64_t tokens, int64_t seq_len, int64_t heads, int64_t d) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t half = d / 2;
  if (id >= tokens * heads * half) return;
  const int64_t i = id % half, h = (id / half) % heads, r = id / (half * heads);
  const int64_t pos = r % seq_len;
  caldera::model::kernels::RopeRotatePair(x + r * heads * d + h * d, i, half,
                                          cos_table[pos * half + i], sin_table[pos * half + i]);
}

// One thread per row of scores (rows of seq_len values, sequences stacked).
__global__ void caldera_causal_softmax(float* scores, int64_t rows, int64_t seq_len) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  caldera::model::kernels::CausalSoftmaxRow(scores + r * seq_len, r % seq_len, seq_len);
}

__global__ void caldera_swiglu(float* gate, const float* up, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  gate[i] = caldera::model::kernels::SwiGlu(gate[i], up[i]);
}

// x[r, c] += bias[c] for x [rows, n] row-major.
__global__ void caldera_add_bias(float* x, const float* bias, int64_t rows, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * n) return;
  x[i] += bias[i % n];
}

// The lower triangle (row >= column) of the n × n column-major float product
// added into the float64 sums (the upper triangle is left as it is).
__global__ void caldera_add_lower_f64(const float* src, int64_t n, double* dst) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * n) return;
  if (i % n >= i / n) dst[i] += static_cast<double>(src[i]);
}

}  // extern "C"
