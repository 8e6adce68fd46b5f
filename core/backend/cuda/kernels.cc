#include "core/backend/cuda/kernels.h"

#include "absl/strings/str_cat.h"

namespace caldera::cuda {
namespace {

// caldera_kernels_fatbin: kernels.cu compiled by nvcc -fatbin, as bin2c
// writes it (CMakeLists.txt).
#include "core/backend/cuda/kernels_fatbin.inc"

constexpr int kThreads = 256;

}  // namespace

absl::StatusOr<std::unique_ptr<KernelModule>> KernelModule::Load(const CudaLibraries& lib) {
  cudaLibrary_t library = nullptr;
  if (absl::Status s = CudaStatus(lib,
                                  lib.cudaLibraryLoadData(&library, caldera_kernels_fatbin, nullptr,
                                                          nullptr, 0, nullptr, nullptr, 0),
                                  "cudaLibraryLoadData(kernels)");
      !s.ok())
    return s;
  std::unique_ptr<KernelModule> m(new KernelModule(lib, library));
  const struct {
    cudaKernel_t* slot;
    const char* name;
  } wanted[] = {{&m->k_.stage_f, "caldera_hadamard_stage_f"},
                {&m->k_.stage_d, "caldera_hadamard_stage_d"},
                {&m->k_.mix_f, "caldera_hadamard_mix_f"},
                {&m->k_.mix_d, "caldera_hadamard_mix_d"},
                {&m->k_.scale_f, "caldera_hadamard_scale_f"},
                {&m->k_.scale_d, "caldera_hadamard_scale_d"},
                {&m->k_.e8p, "caldera_e8p_nearest"},
                {&m->k_.rmsnorm, "caldera_rmsnorm_rows"},
                {&m->k_.rope, "caldera_rope"},
                {&m->k_.softmax, "caldera_causal_softmax"},
                {&m->k_.swiglu, "caldera_swiglu"},
                {&m->k_.add_bias, "caldera_add_bias"},
                {&m->k_.add_lower, "caldera_add_lower_f64"}};
  for (const auto& w : wanted) {
    if (absl::Status s = CudaStatus(lib, lib.cudaLibraryGetKernel(w.slot, library, w.name),
                                    absl::StrCat("cudaLibraryGetKernel(", w.name, ")"));
        !s.ok())
      return s;
  }
  return m;
}

KernelModule::~KernelModule() {
  if (library_ != nullptr) lib_.cudaLibraryUnload(library_);
}

cudaError_t KernelModule::Launch(cudaKernel_t kernel, int64_t work, void** args,
                                 cudaStream_t stream) const {
  const dim3 grid(static_cast<unsigned>((work + kThreads - 1) / kThreads));
  const dim3 block(kThreads);
  if (cudaError_t e = lib_.cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, block,
                                            args, 0, stream);
      e != cudaSuccess) {
    return e;
  }
  return lib_.cudaGetLastError();
}

template <typename T>
cudaError_t KernelModule::HadamardT(T* x, int64_t count, int64_t n, int64_t vec_stride,
                                    int64_t elem_stride, int k, const T* hk, T* scratch, T scale,
                                    cudaKernel_t stage, cudaKernel_t mix, cudaKernel_t scale_kernel,
                                    cudaStream_t stream) const {
  if (count == 0 || n == 0) return cudaSuccess;
  int64_t p = n / k;
  for (int64_t h = 1; h < p; h *= 2) {
    void* args[] = {&x, &count, &n, &p, &vec_stride, &elem_stride, &h};
    if (cudaError_t e = Launch(stage, count * (n / 2), args, stream); e != cudaSuccess) return e;
  }
  if (k > 1) {
    const T* cx = x;
    void* args[] = {&cx, &scratch, &count, &n, &p, &vec_stride, &elem_stride, &k, &hk};
    if (cudaError_t e = Launch(mix, count * n, args, stream); e != cudaSuccess) return e;
  }
  const T* src = k > 1 ? scratch : nullptr;
  void* args[] = {&x, &src, &count, &n, &vec_stride, &elem_stride, &scale};
  return Launch(scale_kernel, count * n, args, stream);
}

cudaError_t KernelModule::Hadamard(float* x, int64_t count, int64_t n, int64_t vec_stride,
                                   int64_t elem_stride, int k, const float* hk, float* scratch,
                                   float scale, cudaStream_t stream) const {
  return HadamardT(x, count, n, vec_stride, elem_stride, k, hk, scratch, scale, k_.stage_f,
                   k_.mix_f, k_.scale_f, stream);
}

cudaError_t KernelModule::Hadamard(double* x, int64_t count, int64_t n, int64_t vec_stride,
                                   int64_t elem_stride, int k, const double* hk, double* scratch,
                                   double scale, cudaStream_t stream) const {
  return HadamardT(x, count, n, vec_stride, elem_stride, k, hk, scratch, scale, k_.stage_d,
                   k_.mix_d, k_.scale_d, stream);
}

cudaError_t KernelModule::E8pNearest(backend::kernels::E8pTablesView tables, const float* x,
                                     int64_t count, uint16_t* codes, float* out,
                                     cudaStream_t stream) const {
  if (count == 0) return cudaSuccess;
  void* args[] = {&tables, &x, &count, &codes, &out};
  return Launch(k_.e8p, count, args, stream);
}

cudaError_t KernelModule::RmsNormRows(const float* x, const float* weight, int64_t rows, int64_t n,
                                      double eps, float* out, cudaStream_t stream) const {
  if (rows == 0) return cudaSuccess;
  void* args[] = {&x, &weight, &rows, &n, &eps, &out};
  return Launch(k_.rmsnorm, rows, args, stream);
}

cudaError_t KernelModule::Rope(float* x, const float* cos_table, const float* sin_table,
                               int64_t tokens, int64_t seq_len, int64_t heads, int64_t d,
                               cudaStream_t stream) const {
  const int64_t work = tokens * heads * (d / 2);
  if (work == 0) return cudaSuccess;
  void* args[] = {&x, &cos_table, &sin_table, &tokens, &seq_len, &heads, &d};
  return Launch(k_.rope, work, args, stream);
}

cudaError_t KernelModule::CausalSoftmax(float* scores, int64_t rows, int64_t seq_len,
                                        cudaStream_t stream) const {
  if (rows == 0) return cudaSuccess;
  void* args[] = {&scores, &rows, &seq_len};
  return Launch(k_.softmax, rows, args, stream);
}

cudaError_t KernelModule::SwiGlu(float* gate, const float* up, int64_t count,
                                 cudaStream_t stream) const {
  if (count == 0) return cudaSuccess;
  void* args[] = {&gate, &up, &count};
  return Launch(k_.swiglu, count, args, stream);
}

cudaError_t KernelModule::AddBias(float* x, const float* bias, int64_t rows, int64_t n,
                                  cudaStream_t stream) const {
  if (rows * n == 0) return cudaSuccess;
  void* args[] = {&x, &bias, &rows, &n};
  return Launch(k_.add_bias, rows * n, args, stream);
}

cudaError_t KernelModule::AddLowerF64(const float* src, int64_t n, double* dst,
                                      cudaStream_t stream) const {
  if (n == 0) return cudaSuccess;
  void* args[] = {&src, &n, &dst};
  return Launch(k_.add_lower, n * n, args, stream);
}

}  // namespace caldera::cuda
