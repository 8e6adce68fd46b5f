// The CUDA libraries the backend calls -- the runtime (libcudart), cuBLAS and
// cuSOLVER -- loaded at run time with dlopen(RTLD_LOCAL) instead of linked,
// and the few functions the backend calls resolved into tables of function
// pointers. A CudaLibraries object owns the handles and dlcloses them when it
// is destroyed; nothing CUDA is mapped into a process until one is loaded, so
// a CPU-only run (and every process that never asks for a GPU) is exactly the
// process it was before the CUDA backend existed.
//
// Why not link them (the civetweb problem): every shared library loaded at
// program start puts its thread-local storage into glibc's *static* TLS
// block, and glibc carves that block out of the stack of every thread it
// creates, including threads created with an explicit stack size (glibc bug
// 11787). Debian's civetweb (behind prometheus-cpp's metrics endpoint) starts
// its threads with 100 KiB stacks (USE_STACK_SIZE=102400). The worker's
// static TLS is already ~64 KiB (OpenBLAS alone takes 60 KiB), so
//   - libcudart (4 KiB TLS, 4 KiB aligned) leaves the request thread too
//     little stack: the first scrape overflows it (SIGSEGV in mg_printf);
//   - libcublasLt, which libcublas and libcusolver need (92 KiB TLS), makes
//     the static TLS larger than the stack itself: pthread_create fails with
//     EINVAL, civetweb logs "Cannot create threads: error 22" and
//     CivetServer throws "null context when constructing CivetServer".
// Found by preloading each library into caldera-worker (LD_PRELOAD) and
// stopping in gdb: no symbol is interposed (none of the CUDA libraries
// exports a symbol civetweb defines or imports), nothing binds the port, no
// signal handler changes. A library loaded later with dlopen gets *dynamic*
// TLS (allocated per thread on first use, not on the stack; none of these
// libraries is built with the initial-exec model, DF_STATIC_TLS) and the
// static block never grows after start-up, so loading them here leaves every
// thread stack as it was. worker_metrics_cuda_test.py and
// cuda_libraries_test.cc check both halves.
//
// Thread-safety: a loaded object is immutable; its tables may be used from
// any thread (the CUDA functions themselves are thread-safe as documented).
#ifndef CALDERA_CORE_BACKEND_CUDA_CUDA_LIBRARIES_H_
#define CALDERA_CORE_BACKEND_CUDA_CUDA_LIBRARIES_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::cuda {

// The sonames dlopen looks for (searched as dlopen searches: RUNPATH,
// LD_LIBRARY_PATH, ld.so.cache, then `fallback_dir` when it is not empty).
// The defaults are those of the toolkit this build was compiled with.
struct LibraryNames {
  std::string cudart;
  std::string cublas;
  std::string cusolver;
  std::string fallback_dir;  // the toolkit's library folder at build time
};
LibraryNames DefaultLibraryNames();

// One dlopen handle (RTLD_NOW | RTLD_LOCAL); dlclose when destroyed.
class SharedLibrary {
 public:
  // FAILED_PRECONDITION naming the soname, dlerror() and the fix (`what`
  // says what the library is, e.g. "cuBLAS").
  static absl::StatusOr<SharedLibrary> Open(const std::string& soname,
                                            const std::string& fallback_dir,
                                            absl::string_view what);
  SharedLibrary() = default;
  SharedLibrary(SharedLibrary&& o) noexcept;
  SharedLibrary& operator=(SharedLibrary&& o) noexcept;
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;
  ~SharedLibrary();

  // The address of `symbol`; FAILED_PRECONDITION naming the symbol, the
  // library and the fix when it is missing.
  absl::StatusOr<void*> Symbol(const char* symbol) const;
  const std::string& name() const { return name_; }

 private:
  void* handle_ = nullptr;
  std::string name_;
};

// The functions the backend calls. Members are named as the CUDA headers
// name the functions after their macros (cublasCreate is cublasCreate_v2),
// so `lib.cublasCreate(...)` reads as the plain call does.
#define CALDERA_CUDART_FUNCTIONS(X) \
  X(cudaGetDeviceCount)             \
  X(cudaGetDeviceProperties)        \
  X(cudaSetDevice)                  \
  X(cudaMemGetInfo)                 \
  X(cudaGetErrorName)               \
  X(cudaGetErrorString)             \
  X(cudaGetLastError)               \
  X(cudaStreamCreateWithFlags)      \
  X(cudaStreamDestroy)              \
  X(cudaStreamSynchronize)          \
  X(cudaMalloc)                     \
  X(cudaFree)                       \
  X(cudaMemcpy2DAsync)              \
  X(cudaMemsetAsync)                \
  X(cudaLibraryLoadData)            \
  X(cudaLibraryUnload)              \
  X(cudaLibraryGetKernel)           \
  X(cudaLaunchKernel)

#define CALDERA_CUBLAS_FUNCTIONS(X) \
  X(cublasCreate)                   \
  X(cublasDestroy)                  \
  X(cublasSetStream)                \
  X(cublasSetMathMode)              \
  X(cublasGetStatusName)            \
  X(cublasGetStatusString)          \
  X(cublasSgemm)                    \
  X(cublasSgemmStridedBatched)      \
  X(cublasSsyrk)                    \
  X(cublasDgemm)                    \
  X(cublasDsyrk)                    \
  X(cublasStrmm)                    \
  X(cublasStrsm)

#define CALDERA_CUSOLVER_FUNCTIONS(X) \
  X(cusolverDnCreate)                 \
  X(cusolverDnDestroy)                \
  X(cusolverDnSetStream)              \
  X(cusolverDnDpotrf_bufferSize)      \
  X(cusolverDnDpotrf)

#define CALDERA_CUDA_MEMBER(fn) decltype(&::fn) fn = nullptr;

class CudaLibraries {
 public:
  // Loads the runtime and, with `with_math`, cuBLAS and cuSOLVER (the probe
  // first asks the runtime for a device and maps the 700 MB of math
  // libraries only when there is one). FAILED_PRECONDITION naming the
  // library or symbol that is missing and the fix.
  static absl::StatusOr<std::unique_ptr<CudaLibraries>> Load(
      bool with_math = true, const LibraryNames& names = DefaultLibraryNames());

  CudaLibraries(const CudaLibraries&) = delete;
  CudaLibraries& operator=(const CudaLibraries&) = delete;
  ~CudaLibraries() = default;  // the libraries close in reverse order

  bool has_math() const { return cublasCreate != nullptr && cusolverDnCreate != nullptr; }

  CALDERA_CUDART_FUNCTIONS(CALDERA_CUDA_MEMBER)
  CALDERA_CUBLAS_FUNCTIONS(CALDERA_CUDA_MEMBER)
  CALDERA_CUSOLVER_FUNCTIONS(CALDERA_CUDA_MEMBER)

 private:
  CudaLibraries() = default;
  // Closed in reverse order: cuSOLVER, cuBLAS, then the runtime.
  SharedLibrary cudart_, cublas_, cusolver_;
};

#undef CALDERA_CUDA_MEMBER

// OK, or an error naming the call and the runtime's reason (RESOURCE_EXHAUSTED
// for out-of-memory, so a scheduler can retry elsewhere; INTERNAL otherwise).
absl::Status CudaStatus(const CudaLibraries& lib, cudaError_t e, absl::string_view call);

// OK, or INTERNAL naming the cuBLAS call and cuBLAS's name for the status.
absl::Status CublasStatus(const CudaLibraries& lib, cublasStatus_t s, absl::string_view call);

}  // namespace caldera::cuda

#endif  // CALDERA_CORE_BACKEND_CUDA_CUDA_LIBRARIES_H_
