// RAII device memory: a DeviceBuffer<T> owns `size` elements allocated with
// cudaMalloc (never managed memory) and frees them when destroyed. Move-only.
// The runtime is called through the CudaLibraries tables (cuda_libraries.h),
// which must outlive the buffer.
#ifndef CALDERA_CORE_BACKEND_CUDA_DEVICE_BUFFER_H_
#define CALDERA_CORE_BACKEND_CUDA_DEVICE_BUFFER_H_

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/backend/cuda/cuda_libraries.h"

namespace caldera::cuda {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // RESOURCE_EXHAUSTED naming the bytes when the device is out of memory.
  static absl::StatusOr<DeviceBuffer> Create(const CudaLibraries& lib, int64_t size) {
    DeviceBuffer b;
    b.lib_ = &lib;
    if (size > 0) {
      void* p = nullptr;
      const cudaError_t e = lib.cudaMalloc(&p, static_cast<size_t>(size) * sizeof(T));
      if (e != cudaSuccess) {
        return CudaStatus(
            lib, e, absl::StrCat("cudaMalloc(", size * static_cast<int64_t>(sizeof(T)), " bytes)"));
      }
      b.data_ = static_cast<T*>(p);
    }
    b.size_ = size;
    return b;
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : lib_(o.lib_), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      lib_ = o.lib_;
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
    if (data_ != nullptr) lib_->cudaFree(data_);  // errors here have no one to report to
    data_ = nullptr;
    size_ = 0;
  }
  const CudaLibraries* lib_ = nullptr;
  T* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace caldera::cuda

#endif  // CALDERA_CORE_BACKEND_CUDA_DEVICE_BUFFER_H_
