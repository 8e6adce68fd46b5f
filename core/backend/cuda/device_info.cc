#include "core/backend/cuda/device_info.h"

#include <memory>

#include "core/backend/cuda/cuda_libraries.h"

namespace caldera::cuda {

DeviceProbe ProbeDevices() {
  DeviceProbe probe;
  // The runtime alone first; cuBLAS and cuSOLVER only when there is a device.
  absl::StatusOr<std::unique_ptr<CudaLibraries>> rt = CudaLibraries::Load(/*with_math=*/false);
  if (!rt.ok()) {
    probe.error =
        std::string("cudaGetDeviceCount: not called: ") + std::string(rt.status().message());
    return probe;
  }
  const CudaLibraries& lib = **rt;
  int count = 0;
  cudaError_t err = lib.cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    probe.error = std::string("cudaGetDeviceCount: ") + lib.cudaGetErrorString(err);
    return probe;
  }
  probe.device_count = count;
  if (count == 0) return probe;
  cudaDeviceProp prop{};
  if (lib.cudaGetDeviceProperties(&prop, 0) == cudaSuccess) probe.first_name = prop.name;
  absl::StatusOr<std::unique_ptr<CudaLibraries>> all = CudaLibraries::Load(/*with_math=*/true);
  if (!all.ok()) {
    probe.error = std::string(all.status().message());
    return probe;
  }
  cublasHandle_t blas = nullptr;
  if ((*all)->cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) {
    probe.error = "cublasCreate failed";
  } else {
    (*all)->cublasDestroy(blas);
  }
  cusolverDnHandle_t solver = nullptr;
  if ((*all)->cusolverDnCreate(&solver) != CUSOLVER_STATUS_SUCCESS) {
    probe.error = "cusolverDnCreate failed";
  } else {
    (*all)->cusolverDnDestroy(solver);
  }
  return probe;
}

}  // namespace caldera::cuda
