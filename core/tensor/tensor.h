// Tensor: a dense, contiguous, row-major array with a dtype and a shape.
//
// A Tensor owns its storage (64-byte aligned). It is movable; copies are
// explicit through Clone() so that large buffers are never duplicated by
// accident. Not thread-safe for concurrent mutation.
#ifndef CALDERA_CORE_TENSOR_TENSOR_H_
#define CALDERA_CORE_TENSOR_TENSOR_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor/dtype.h"

namespace caldera {

class Tensor {
 public:
  // Largest tensor we will allocate (bytes). Guards against corrupt headers.
  static constexpr uint64_t kMaxBytes = uint64_t{1} << 40;

  // An empty F32 tensor of shape [0].
  Tensor();

  // A zero-filled tensor. INVALID_ARGUMENT for negative dims or a byte size
  // that overflows or exceeds kMaxBytes; RESOURCE_EXHAUSTED if allocation fails.
  static absl::StatusOr<Tensor> Zeros(DType dtype, std::vector<int64_t> shape);

  // A tensor holding a copy of `bytes`, which must be exactly numel*DTypeSize long.
  static absl::StatusOr<Tensor> FromBytes(DType dtype, std::vector<int64_t> shape,
                                          std::span<const uint8_t> bytes);

  // Convenience for tests and small tensors: copies `values` (size must match).
  template <typename T>
  static absl::StatusOr<Tensor> FromValues(std::vector<int64_t> shape, std::span<const T> values) {
    return FromBytes(DTypeOf<T>::value, std::move(shape),
                     std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(values.data()),
                                              values.size_bytes()));
  }

  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  Tensor Clone() const;

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return nbytes_; }

  std::span<const uint8_t> bytes() const { return {data_.get(), nbytes_}; }
  std::span<uint8_t> mutable_bytes() { return {data_.get(), nbytes_}; }

  // Typed access. The element type must match dtype() exactly (F16/BF16 are
  // accessed as uint16_t through raw16()); a mismatch is a programming error
  // and aborts.
  template <typename T>
  std::span<const T> data() const {
    CheckType(DTypeOf<T>::value);
    return {reinterpret_cast<const T*>(data_.get()), static_cast<size_t>(numel_)};
  }
  template <typename T>
  std::span<T> mutable_data() {
    CheckType(DTypeOf<T>::value);
    return {reinterpret_cast<T*>(data_.get()), static_cast<size_t>(numel_)};
  }
  std::span<const uint16_t> raw16() const;
  std::span<uint16_t> mutable_raw16();

  // Converts to another dtype. Float<->float conversions round to nearest even;
  // integer targets from floats are rejected (INVALID_ARGUMENT).
  absl::StatusOr<Tensor> ConvertTo(DType target) const;

  // Same bytes, new shape with the same element count.
  absl::Status Reshape(std::vector<int64_t> shape);

  // "F32[64, 172]" for messages.
  std::string DebugString() const;

 private:
  struct AlignedFree {
    void operator()(uint8_t* p) const;
  };

  void CheckType(DType want) const;

  DType dtype_ = DType::kF32;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  size_t nbytes_ = 0;
  std::unique_ptr<uint8_t[], AlignedFree> data_;
};

// Product of dims with overflow and negativity checks. INVALID_ARGUMENT on failure.
absl::StatusOr<int64_t> CheckedNumel(std::span<const int64_t> shape);

// "[64, 172]".
std::string ShapeString(std::span<const int64_t> shape);

// Named tensors in a fixed order: what a quantizer exports, what a matrix
// record stores, what a decomposition step hands on (one name for all of them).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

}  // namespace caldera

#endif  // CALDERA_CORE_TENSOR_TENSOR_H_
