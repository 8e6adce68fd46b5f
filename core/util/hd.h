// Shared by the CUDA kernels (nvcc) and the host tests (g++): CALDERA_HD
// marks a function __host__ __device__ under nvcc and is empty otherwise,
// and the Hd* float operations are single IEEE operations everywhere (no
// fused multiply-add on the device, whatever nvcc's -fmad; host files that
// include these bodies compile with -ffp-contract=off), so a body computes
// the same bits on the host and on the device.
#ifndef CALDERA_CORE_UTIL_HD_H_
#define CALDERA_CORE_UTIL_HD_H_

#if defined(__CUDACC__)
#define CALDERA_HD __host__ __device__
#else
#define CALDERA_HD
#endif

namespace caldera {

#if defined(__CUDA_ARCH__)
__device__ inline float HdMul(float a, float b) { return __fmul_rn(a, b); }
__device__ inline float HdAdd(float a, float b) { return __fadd_rn(a, b); }
__device__ inline float HdSub(float a, float b) { return __fsub_rn(a, b); }
__device__ inline float HdDiv(float a, float b) { return __fdiv_rn(a, b); }
#else
inline float HdMul(float a, float b) { return a * b; }
inline float HdAdd(float a, float b) { return a + b; }
inline float HdSub(float a, float b) { return a - b; }
inline float HdDiv(float a, float b) { return a / b; }
#endif

// |v| as std::fabs (clears the sign bit, so -0 becomes +0).
CALDERA_HD inline float HdAbs(float v) { return v < 0.0f ? -v : (v == 0.0f ? 0.0f : v); }

}  // namespace caldera

#endif  // CALDERA_CORE_UTIL_HD_H_
