// The CUDA backend (experimental: compiled and host-tested, not yet run on a
// GPU). One object per device: it owns one stream, one cuBLAS and one
// cuSOLVER handle bound to that stream, and the E8P tables on the device.
// Operations copy their host operands in, compute on the stream, copy the
// results out and synchronize; every CUDA, cuBLAS and cuSOLVER error comes
// back as a Status naming the call.
//
// On the device: the calibration forward (PrepareBlock, cuda_block_runner.h),
// GEMM (cublasSgemm), GemmD (cublasDgemm), SyrkLowerD
// (cublasDsyrk), TRMM/TRSM (cublasStrmm/Strsm), CholeskyLowerD
// (cusolverDnDpotrf), the Hadamard transforms (own kernels) and E8pNearest
// (own kernel, the CPU's codes), also inside QuantizeNearest and the LDLQ
// block step, whose E8P searches it runs (MatrixQuantizer::set_e8p_search)
// while the rest of the quantizer's work stays on the CPU. Everything else
// (SpdSolve, BlockLdlD, the small SVDs and QRs, the uniform quantizer's
// rounding) runs on the CPU backend this object holds.
//
// Nothing CUDA is linked: creating the backend loads the runtime, cuBLAS and
// cuSOLVER with dlopen (cuda_libraries.h, which says why) and the kernels
// from an embedded fat binary (kernels.h); the backend owns them.
#ifndef CALDERA_CORE_BACKEND_CUDA_CUDA_BACKEND_H_
#define CALDERA_CORE_BACKEND_CUDA_CUDA_BACKEND_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"

namespace caldera::cuda {

// FAILED_PRECONDITION when a CUDA library or symbol is missing (naming it
// and the fix) or the device does not exist; the failing call's error
// otherwise.
absl::StatusOr<std::unique_ptr<backend::ComputeBackend>> CreateCudaBackend(int device);

// The device's float32 GEMM rate (GFLOP/s): cublasSgemm of n × n matrices
// already on the device, full float precision (no TF32), as benchmarks'
// yardstick. The failing call's error otherwise.
absl::StatusOr<double> MeasureDeviceSgemmGflops(int device, int64_t n = 8192);

}  // namespace caldera::cuda

#endif  // CALDERA_CORE_BACKEND_CUDA_CUDA_BACKEND_H_
