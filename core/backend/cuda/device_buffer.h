// RAII device memory: a DeviceBuffer<T> owns `size` elements allocated with
// cudaMalloc (never managed memory) and frees them when destroyed. Move-only.
// Plain C++ (the CUDA runtime's C API), so g++-compiled code uses it.
#ifndef CALDERA_CORE_BACKEND_CUDA_DEVICE_BUFFER_H_
#define CALDERA_CORE_BACKEND_CUDA_DEVICE_BUFFER_H_

#include <cuda_runtime_api.h>

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace caldera::cuda {

// OK, or an error naming the call and the runtime's reason (RESOURCE_EXHAUSTED
// for out-of-memory, so a scheduler can retry elsewhere; INTERNAL otherwise).
inline absl::Status CudaStatus(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return absl::OkStatus();
  const std::string msg =
      absl::StrCat(call, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static absl::StatusOr<DeviceBuffer> Create(int64_t size) {
    DeviceBuffer b;
    if (size > 0) {
      void* p = nullptr;
      const cudaError_t e = cudaMalloc(&p, static_cast<size_t>(size) * sizeof(T));
      if (e != cudaSuccess) {
        return CudaStatus(
            e,
            absl::StrCat("cudaMalloc(", size * static_cast<int64_t>(sizeof(T)), " bytes)").c_str());
      }
      b.data_ = static_cast<T*>(p);
    }
    b.size_ = size;
    return b;
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { Reset(); }

  T* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  void Reset() {
    if (data_ != nullptr) cudaFree(data_);  // errors here have no one to report to
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace caldera::cuda

#endif  // CALDERA_CORE_BACKEND_CUDA_DEVICE_BUFFER_H_
