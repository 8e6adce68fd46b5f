// The uniform quantizer's per-element rounding (quant::UniformQuantizer::
// QuantizeBlock) as a plain body for the CUDA kernels and the host tests:
// the code of x with step s (and group minimum mn when asymmetric) among
// `levels` levels, and its value in *v. Same operations as the CPU.
#ifndef CALDERA_CORE_BACKEND_KERNELS_UNIFORM_ROUND_H_
#define CALDERA_CORE_BACKEND_KERNELS_UNIFORM_ROUND_H_

#include <math.h>

#include "core/util/hd.h"

namespace caldera::backend::kernels {

CALDERA_HD inline int UniformRoundBody(float x, float s, float mn, int levels, bool symmetric,
                                       float* v) {
  int q;
  if (symmetric) {
    q = static_cast<int>(floorf(HdDiv(x, s))) + levels / 2;
    q = q < 0 ? 0 : (q > levels - 1 ? levels - 1 : q);
    *v = HdMul(HdAdd(static_cast<float>(q - levels / 2), 0.5f), s);
  } else {
    q = static_cast<int>(lroundf(HdDiv(HdSub(x, mn), s)));
    q = q < 0 ? 0 : (q > levels - 1 ? levels - 1 : q);
    *v = HdAdd(mn, HdMul(static_cast<float>(q), s));
  }
  return q;
}

}  // namespace caldera::backend::kernels

#endif  // CALDERA_CORE_BACKEND_KERNELS_UNIFORM_ROUND_H_
