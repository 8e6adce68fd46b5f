// The CUDA backend's own kernels (kernels.cu, embedded as a fat binary):
// a KernelModule loads them with cudaLibraryLoadData through the runtime
// table (cuda_libraries.h) and unloads them when destroyed; the launchers
// enqueue on `stream` and return the launch's error, never synchronize.
// Plain C++ over device pointers. The per-element bodies are
// core/backend/kernels/*.h.
#ifndef CALDERA_CORE_BACKEND_CUDA_KERNELS_H_
#define CALDERA_CORE_BACKEND_CUDA_KERNELS_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "core/backend/cuda/cuda_libraries.h"
#include "core/backend/kernels/e8p_search.h"

namespace caldera::cuda {

class KernelModule {
 public:
  // The module on the current device; the error of the failing runtime call
  // (naming the kernel when one is missing). `lib` must outlive the module.
  static absl::StatusOr<std::unique_ptr<KernelModule>> Load(const CudaLibraries& lib);
  KernelModule(const KernelModule&) = delete;
  KernelModule& operator=(const KernelModule&) = delete;
  ~KernelModule();

  // The Hadamard transform of `count` vectors of length n = k·p held in x
  // (vector v element i at x[v·vec_stride + i·elem_stride]): log2(p)
  // butterfly stages per block, then (k > 1) the mix with hk (k × k
  // row-major, H_K or its transpose, on the device) through `scratch`
  // (count·n values), then the scale. float and double.
  cudaError_t Hadamard(float* x, int64_t count, int64_t n, int64_t vec_stride, int64_t elem_stride,
                       int k, const float* hk, float* scratch, float scale,
                       cudaStream_t stream) const;
  cudaError_t Hadamard(double* x, int64_t count, int64_t n, int64_t vec_stride, int64_t elem_stride,
                       int k, const double* hk, double* scratch, double scale,
                       cudaStream_t stream) const;

  // E8P nearest points of `count` 8-vectors (x, out: count × 8 row-major;
  // one thread per vector; the tables on the device).
  cudaError_t E8pNearest(backend::kernels::E8pTablesView tables, const float* x, int64_t count,
                         uint16_t* codes, float* out, cudaStream_t stream) const;

  // The calibration forward's steps (core/model/block_kernels.h), over
  // row-major [rows, width] activations: RMSNorm of each row into out; the
  // rotary embedding of q or k ([tokens, heads·d], position = row mod
  // seq_len; cos/sin [seq_len, d/2]); the causal softmax of each row of
  // scores ([rows, seq_len], row i of a sequence = row mod seq_len); gate ←
  // SwiGLU(gate, up); x[r, c] += bias[c]; dst += lower triangle of src
  // (n × n, float into double).
  cudaError_t RmsNormRows(const float* x, const float* weight, int64_t rows, int64_t n, double eps,
                          float* out, cudaStream_t stream) const;
  cudaError_t Rope(float* x, const float* cos_table, const float* sin_table, int64_t tokens,
                   int64_t seq_len, int64_t heads, int64_t d, cudaStream_t stream) const;
  cudaError_t CausalSoftmax(float* scores, int64_t rows, int64_t seq_len,
                            cudaStream_t stream) const;
  cudaError_t SwiGlu(float* gate, const float* up, int64_t count, cudaStream_t stream) const;
  cudaError_t AddBias(float* x, const float* bias, int64_t rows, int64_t n,
                      cudaStream_t stream) const;
  cudaError_t AddLowerF64(const float* src, int64_t n, double* dst, cudaStream_t stream) const;

 private:
  struct Kernels {
    cudaKernel_t stage_f = nullptr, stage_d = nullptr, mix_f = nullptr, mix_d = nullptr,
                 scale_f = nullptr, scale_d = nullptr, e8p = nullptr, rmsnorm = nullptr,
                 rope = nullptr, softmax = nullptr, swiglu = nullptr, add_bias = nullptr,
                 add_lower = nullptr;
  };
  KernelModule(const CudaLibraries& lib, cudaLibrary_t library) : lib_(lib), library_(library) {}
  template <typename T>
  cudaError_t HadamardT(T* x, int64_t count, int64_t n, int64_t vec_stride, int64_t elem_stride,
                        int k, const T* hk, T* scratch, T scale, cudaKernel_t stage,
                        cudaKernel_t mix, cudaKernel_t scale_kernel, cudaStream_t stream) const;
  cudaError_t Launch(cudaKernel_t kernel, int64_t work, void** args, cudaStream_t stream) const;

  const CudaLibraries& lib_;
  cudaLibrary_t library_;
  Kernels k_;
};

}  // namespace caldera::cuda

#endif  // CALDERA_CORE_BACKEND_CUDA_KERNELS_H_
