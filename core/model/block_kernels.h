// The calibration forward's per-row and per-element bodies (the decoder
// block of llama_block.h): the rotary embedding of one pair, the causal
// softmax of one row of attention scores, SwiGLU of one element and RMSNorm
// of one row. model::BlockForward runs the first three on the host (so they
// are the CPU's own operations, not copies of them) and the CUDA backend's
// kernels (core/backend/cuda/kernels.cu) run all four on the device. The
// host's RMSNorm (model::RmsNorm) sums with Eigen's vectorised reduction, so
// RmsNormRow agrees with it within float rounding, not bit for bit.
//
// Host and device differ in expf (the device's is not correctly rounded) and
// nothing else: products and sums are single IEEE operations (util/hd.h).
#ifndef CALDERA_CORE_MODEL_BLOCK_KERNELS_H_
#define CALDERA_CORE_MODEL_BLOCK_KERNELS_H_

#include <math.h>

#include <cstdint>

#include "core/util/hd.h"

namespace caldera::model::kernels {

// Rotates the pair (v[i], v[i + half]) of one head's vector by the angle
// whose cosine and sine are c and s.
CALDERA_HD inline void RopeRotatePair(float* v, int64_t i, int64_t half, float c, float s) {
  const float a = v[i], b = v[i + half];
  v[i] = HdSub(HdMul(a, c), HdMul(b, s));
  v[i + half] = HdAdd(HdMul(b, c), HdMul(a, s));
}

// Row i of the causal softmax, in place: row[0..i] ← exp(row[j] − max) /
// Σ exp (the sum in double), row[i+1..len) ← 0.
CALDERA_HD inline void CausalSoftmaxRow(float* row, int64_t i, int64_t len) {
  float mx = -INFINITY;
  for (int64_t j = 0; j <= i; ++j) mx = row[j] > mx ? row[j] : mx;
  double sum = 0;
  for (int64_t j = 0; j <= i; ++j) {
    row[j] = expf(HdSub(row[j], mx));
    sum += static_cast<double>(row[j]);
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j <= i; ++j) row[j] = HdMul(row[j], inv);
  for (int64_t j = i + 1; j < len; ++j) row[j] = 0.0f;
}

// SwiGLU of one element: silu(g) · u = g / (1 + exp(−g)) · u.
CALDERA_HD inline float SwiGlu(float g, float u) {
  return HdMul(HdDiv(g, HdAdd(1.0f, expf(-g))), u);
}

// RMSNorm of one row of n values: out = x / sqrt(mean(x²) + eps) · weight
// (the mean in double, as model::RmsNorm).
CALDERA_HD inline void RmsNormRow(const float* x, const float* weight, int64_t n, double eps,
                                  float* out) {
  double sum_sq = 0;
  for (int64_t j = 0; j < n; ++j) sum_sq += static_cast<double>(x[j]) * static_cast<double>(x[j]);
  const float scale = static_cast<float>(1.0 / sqrt(sum_sq / static_cast<double>(n) + eps));
  for (int64_t j = 0; j < n; ++j) out[j] = HdMul(HdMul(x[j], scale), weight[j]);
}

}  // namespace caldera::model::kernels

#endif  // CALDERA_CORE_MODEL_BLOCK_KERNELS_H_
