// The Walsh-Hadamard butterflies of transform::HadamardTransform as plain
// bodies over strided vectors, for the CUDA kernels and the host tests. A
// vector of length n = K·p is K blocks of p elements, element i at
// base[i·stride]; the power-of-two part transforms each block in place with
// log2(p) stages of butterflies (a, c) → (a + c, a − c), stage h pairing i
// and i + h. The order of stages is HadamardTransform's, and every element of
// a stage depends only on two elements of the stage before, so a device that
// runs a stage's butterflies in any order gets the CPU's bits.
#ifndef CALDERA_CORE_BACKEND_KERNELS_HADAMARD_BUTTERFLY_H_
#define CALDERA_CORE_BACKEND_KERNELS_HADAMARD_BUTTERFLY_H_

#include <cstdint>

#include "core/util/hd.h"

namespace caldera::backend::kernels {

// One butterfly: (a, c) → (a + c, a − c).
template <typename T>
CALDERA_HD inline void Butterfly(T* a, T* c) {
  const T av = *a, cv = *c;
  *a = av + cv;
  *c = av - cv;
}

// Butterfly number `pair` (0 .. p/2 − 1) of stage h (1, 2, 4, ... p/2) of
// one block starting at `block` (elements block[i·stride]).
template <typename T>
CALDERA_HD inline void StageButterfly(T* block, int64_t stride, int64_t h, int64_t pair) {
  const int64_t i = (pair / h) * 2 * h + pair % h;  // the lower index of the pair
  Butterfly(block + i * stride, block + (i + h) * stride);
}

// The whole power-of-two transform of one block of p elements (host
// reference of the per-stage kernel: same stages, same order).
template <typename T>
CALDERA_HD inline void FwhtBlock(T* block, int64_t stride, int64_t p) {
  for (int64_t h = 1; h < p; h *= 2) {
    for (int64_t pair = 0; pair < p / 2; ++pair) StageButterfly(block, stride, h, pair);
  }
}

// Element (l, b) of the K-block mix of one vector: the vector seen as a
// p × K matrix Y (block a is column a) times hk (K × K, ±1, row-major
// hk[a·K + b]; the caller passes H_K or its transpose):
// Σ_a Y(l, a)·hk(a, b), summed in order of a.
template <typename T>
CALDERA_HD inline T MixElement(const T* vec, int64_t stride, int64_t p, int k, const T* hk,
                               int64_t l, int b) {
  T sum = 0;
  for (int a = 0; a < k; ++a) sum += vec[(a * p + l) * stride] * hk[a * k + b];
  return sum;
}

}  // namespace caldera::backend::kernels

#endif  // CALDERA_CORE_BACKEND_KERNELS_HADAMARD_BUTTERFLY_H_
