#include "core/backend/cuda/device_info.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

namespace caldera::cuda {

DeviceProbe ProbeDevices() {
  DeviceProbe probe;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    probe.error = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    return probe;
  }
  probe.device_count = count;
  if (count == 0) return probe;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) probe.first_name = prop.name;
  cublasHandle_t blas = nullptr;
  if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) {
    probe.error = "cublasCreate failed";
  } else {
    cublasDestroy(blas);
  }
  cusolverDnHandle_t solver = nullptr;
  if (cusolverDnCreate(&solver) != CUSOLVER_STATUS_SUCCESS) {
    probe.error = "cusolverDnCreate failed";
  } else {
    cusolverDnDestroy(solver);
  }
  return probe;
}

}  // namespace caldera::cuda
