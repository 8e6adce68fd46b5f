#include "core/backend/cuda/cuda_libraries.h"

#include <dlfcn.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace caldera::cuda {
namespace {

// The name a function has after the headers' macros (cublasCreate ->
// "cublasCreate_v2"): the symbol libcublas exports.
#define CALDERA_CUDA_STR2(x) #x
#define CALDERA_CUDA_STR(x) CALDERA_CUDA_STR2(x)

std::string DlError() {
  const char* e = dlerror();
  return e != nullptr ? std::string(e) : std::string("unknown dlopen error");
}

}  // namespace

LibraryNames DefaultLibraryNames() {
  return LibraryNames{CALDERA_CUDART_SONAME, CALDERA_CUBLAS_SONAME, CALDERA_CUSOLVER_SONAME,
                      CALDERA_CUDA_LIBRARY_DIR};
}

absl::StatusOr<SharedLibrary> SharedLibrary::Open(const std::string& soname,
                                                  const std::string& fallback_dir,
                                                  absl::string_view what) {
  SharedLibrary lib;
  lib.name_ = soname;
  lib.handle_ = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib.handle_ != nullptr) return lib;
  const std::string first = DlError();
  if (!fallback_dir.empty() && soname.find('/') == std::string::npos) {
    const std::string path = absl::StrCat(fallback_dir, "/", soname);
    lib.handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib.handle_ != nullptr) return lib;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cannot load ", what, " (", soname, "): ", first,
                   "; the CUDA backend loads it when a GPU is asked for: install the CUDA ", what,
                   " library this build was compiled against and make it findable (ldconfig or "
                   "LD_LIBRARY_PATH), or run with --device cpu"));
}

SharedLibrary::SharedLibrary(SharedLibrary&& o) noexcept
    : handle_(std::exchange(o.handle_, nullptr)), name_(std::move(o.name_)) {}

SharedLibrary& SharedLibrary::operator=(SharedLibrary&& o) noexcept {
  if (this != &o) {
    if (handle_ != nullptr) dlclose(handle_);
    handle_ = std::exchange(o.handle_, nullptr);
    name_ = std::move(o.name_);
  }
  return *this;
}

SharedLibrary::~SharedLibrary() {
  if (handle_ != nullptr) dlclose(handle_);
}

absl::StatusOr<void*> SharedLibrary::Symbol(const char* symbol) const {
  if (handle_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(name_, " is not loaded"));
  }
  dlerror();  // clear
  void* p = dlsym(handle_, symbol);
  if (p == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(name_, " has no symbol ", symbol, " (", DlError(),
                     "): it is older than the CUDA toolkit this build was compiled against; "
                     "install a matching one or run with --device cpu"));
  }
  return p;
}

#define CALDERA_CUDA_RESOLVE(lib_member, fn)                                 \
  {                                                                          \
    absl::StatusOr<void*> p = libs->lib_member.Symbol(CALDERA_CUDA_STR(fn)); \
    if (!p.ok()) return p.status();                                          \
    libs->fn = reinterpret_cast<decltype(libs->fn)>(*p);                     \
  }
#define CALDERA_CUDA_RESOLVE_RT(fn) CALDERA_CUDA_RESOLVE(cudart_, fn)
#define CALDERA_CUDA_RESOLVE_BLAS(fn) CALDERA_CUDA_RESOLVE(cublas_, fn)
#define CALDERA_CUDA_RESOLVE_SOLVER(fn) CALDERA_CUDA_RESOLVE(cusolver_, fn)

absl::StatusOr<std::unique_ptr<CudaLibraries>> CudaLibraries::Load(bool with_math,
                                                                   const LibraryNames& names) {
  std::unique_ptr<CudaLibraries> libs(new CudaLibraries());
  absl::StatusOr<SharedLibrary> rt =
      SharedLibrary::Open(names.cudart, names.fallback_dir, "runtime (libcudart)");
  if (!rt.ok()) return rt.status();
  libs->cudart_ = *std::move(rt);
  CALDERA_CUDART_FUNCTIONS(CALDERA_CUDA_RESOLVE_RT)
  if (!with_math) return libs;
  absl::StatusOr<SharedLibrary> blas =
      SharedLibrary::Open(names.cublas, names.fallback_dir, "cuBLAS (libcublas)");
  if (!blas.ok()) return blas.status();
  libs->cublas_ = *std::move(blas);
  CALDERA_CUBLAS_FUNCTIONS(CALDERA_CUDA_RESOLVE_BLAS)
  absl::StatusOr<SharedLibrary> solver =
      SharedLibrary::Open(names.cusolver, names.fallback_dir, "cuSOLVER (libcusolver)");
  if (!solver.ok()) return solver.status();
  libs->cusolver_ = *std::move(solver);
  CALDERA_CUSOLVER_FUNCTIONS(CALDERA_CUDA_RESOLVE_SOLVER)
  return libs;
}

absl::Status CudaStatus(const CudaLibraries& lib, cudaError_t e, absl::string_view call) {
  if (e == cudaSuccess) return absl::OkStatus();
  const std::string msg =
      absl::StrCat(call, ": ", lib.cudaGetErrorName(e), " (", lib.cudaGetErrorString(e), ")");
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

absl::Status CublasStatus(const CudaLibraries& lib, cublasStatus_t s, absl::string_view call) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, ": ", lib.cublasGetStatusName(s), " (",
                                          lib.cublasGetStatusString(s), ")"));
}

}  // namespace caldera::cuda
