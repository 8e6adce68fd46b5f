#include "core/tensor/tensor.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/tensor/half.h"

namespace caldera {
namespace {

constexpr size_t kAlignment = 64;

uint8_t* AllocateAligned(size_t nbytes) {
  const size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  return static_cast<uint8_t*>(
      ::operator new(rounded == 0 ? kAlignment : rounded, std::align_val_t{kAlignment},
                     std::nothrow));
}

// Reads element i of a floating-point tensor as double.
double LoadFloat(DType dtype, const uint8_t* base, int64_t i) {
  switch (dtype) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, base + i * 4, 4);
      return v;
    }
    case DType::kF64: {
      double v;
      std::memcpy(&v, base + i * 8, 8);
      return v;
    }
    case DType::kF16: {
      uint16_t v;
      std::memcpy(&v, base + i * 2, 2);
      return HalfToFloat(v);
    }
    case DType::kBF16: {
      uint16_t v;
      std::memcpy(&v, base + i * 2, 2);
      return BFloat16ToFloat(v);
    }
    default:
      return 0;
  }
}

int64_t LoadInt(DType dtype, const uint8_t* base, int64_t i) {
  switch (dtype) {
    case DType::kI32: {
      int32_t v;
      std::memcpy(&v, base + i * 4, 4);
      return v;
    }
    case DType::kI64: {
      int64_t v;
      std::memcpy(&v, base + i * 8, 8);
      return v;
    }
    case DType::kU8:
      return base[i];
    case DType::kI8:
      return static_cast<int8_t>(base[i]);
    case DType::kBool:
      return base[i] != 0;
    default:
      return 0;
  }
}

void StoreFloat(DType dtype, uint8_t* base, int64_t i, double value) {
  switch (dtype) {
    case DType::kF32: {
      const float v = static_cast<float>(value);
      std::memcpy(base + i * 4, &v, 4);
      break;
    }
    case DType::kF64:
      std::memcpy(base + i * 8, &value, 8);
      break;
    case DType::kF16: {
      // Double -> float first: exact for every F16/BF16/F32 source, and for F64
      // sources the double rounding is the documented behaviour.
      const uint16_t v = FloatToHalf(static_cast<float>(value));
      std::memcpy(base + i * 2, &v, 2);
      break;
    }
    case DType::kBF16: {
      const uint16_t v = FloatToBFloat16(static_cast<float>(value));
      std::memcpy(base + i * 2, &v, 2);
      break;
    }
    default:
      break;
  }
}

void StoreInt(DType dtype, uint8_t* base, int64_t i, int64_t value) {
  switch (dtype) {
    case DType::kI32: {
      const int32_t v = static_cast<int32_t>(value);
      std::memcpy(base + i * 4, &v, 4);
      break;
    }
    case DType::kI64:
      std::memcpy(base + i * 8, &value, 8);
      break;
    case DType::kU8:
      base[i] = static_cast<uint8_t>(value);
      break;
    case DType::kI8:
      base[i] = static_cast<uint8_t>(static_cast<int8_t>(value));
      break;
    case DType::kBool:
      base[i] = value != 0;
      break;
    default:
      break;
  }
}

}  // namespace

void Tensor::AlignedFree::operator()(uint8_t* p) const {
  ::operator delete(p, std::align_val_t{kAlignment});
}

absl::StatusOr<int64_t> CheckedNumel(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("negative dimension in shape ", ShapeString(shape)));
    }
    if (d != 0 && n > INT64_MAX / d) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " has too many elements"));
    }
    n *= d;
  }
  return n;
}

std::string ShapeString(std::span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

Tensor::Tensor() : shape_{0}, data_(AllocateAligned(0)) {}

absl::StatusOr<Tensor> Tensor::Zeros(DType dtype, std::vector<int64_t> shape) {
  absl::StatusOr<int64_t> numel = CheckedNumel(shape);
  if (!numel.ok()) return numel.status();
  const uint64_t elem = DTypeSize(dtype);
  if (static_cast<uint64_t>(*numel) > kMaxBytes / elem) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", DTypeName(dtype),
                                                   ShapeString(shape), " exceeds ",
                                                   kMaxBytes, " bytes"));
  }
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = *numel;
  t.nbytes_ = static_cast<size_t>(*numel) * elem;
  t.data_.reset(AllocateAligned(t.nbytes_));
  if (t.data_ == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", t.nbytes_, " bytes for tensor ", t.DebugString()));
  }
  std::memset(t.data_.get(), 0, t.nbytes_);
  return t;
}

absl::StatusOr<Tensor> Tensor::FromBytes(DType dtype, std::vector<int64_t> shape,
                                         std::span<const uint8_t> bytes) {
  absl::StatusOr<Tensor> t = Zeros(dtype, std::move(shape));
  if (!t.ok()) return t.status();
  if (bytes.size() != t->nbytes_) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", t->DebugString(), " needs ",
                                                   t->nbytes_, " bytes, got ", bytes.size()));
  }
  if (!bytes.empty()) std::memcpy(t->data_.get(), bytes.data(), bytes.size());
  return t;
}

Tensor Tensor::Clone() const {
  Tensor t;
  t.dtype_ = dtype_;
  t.shape_ = shape_;
  t.numel_ = numel_;
  t.nbytes_ = nbytes_;
  t.data_.reset(AllocateAligned(nbytes_));
  if (t.data_ == nullptr) {
    std::fprintf(stderr, "out of memory cloning tensor %s\n", DebugString().c_str());
    std::abort();
  }
  if (nbytes_ > 0) std::memcpy(t.data_.get(), data_.get(), nbytes_);
  return t;
}

void Tensor::CheckType(DType want) const {
  if (want != dtype_) {
    std::fprintf(stderr, "Tensor: accessed %s tensor as %s\n",
                 std::string(DTypeName(dtype_)).c_str(), std::string(DTypeName(want)).c_str());
    std::abort();
  }
}

std::span<const uint16_t> Tensor::raw16() const {
  if (DTypeSize(dtype_) != 2) CheckType(DType::kF16);
  return {reinterpret_cast<const uint16_t*>(data_.get()), static_cast<size_t>(numel_)};
}

std::span<uint16_t> Tensor::mutable_raw16() {
  if (DTypeSize(dtype_) != 2) CheckType(DType::kF16);
  return {reinterpret_cast<uint16_t*>(data_.get()), static_cast<size_t>(numel_)};
}

absl::StatusOr<Tensor> Tensor::ConvertTo(DType target) const {
  if (target == dtype_) return Clone();
  const bool src_float = IsFloatingPoint(dtype_);
  const bool dst_float = IsFloatingPoint(target);
  if (src_float && !dst_float) {
    return absl::InvalidArgumentError(absl::StrCat("cannot convert floating-point tensor ",
                                                   DebugString(), " to ", DTypeName(target)));
  }
  absl::StatusOr<Tensor> out = Zeros(target, shape_);
  if (!out.ok()) return out.status();
  const uint8_t* src = data_.get();
  uint8_t* dst = out->data_.get();
  // Fast paths for the common conversions.
  if (dtype_ == DType::kF32 && target == DType::kF16) {
    FloatToHalf(data<float>(), out->mutable_raw16());
  } else if (dtype_ == DType::kF32 && target == DType::kBF16) {
    FloatToBFloat16(data<float>(), out->mutable_raw16());
  } else if (dtype_ == DType::kF16 && target == DType::kF32) {
    HalfToFloat(raw16(), out->mutable_data<float>());
  } else if (dtype_ == DType::kBF16 && target == DType::kF32) {
    BFloat16ToFloat(raw16(), out->mutable_data<float>());
  } else if (src_float) {
    for (int64_t i = 0; i < numel_; ++i) StoreFloat(target, dst, i, LoadFloat(dtype_, src, i));
  } else if (dst_float) {
    for (int64_t i = 0; i < numel_; ++i) {
      StoreFloat(target, dst, i, static_cast<double>(LoadInt(dtype_, src, i)));
    }
  } else {
    for (int64_t i = 0; i < numel_; ++i) StoreInt(target, dst, i, LoadInt(dtype_, src, i));
  }
  return out;
}

absl::Status Tensor::Reshape(std::vector<int64_t> shape) {
  absl::StatusOr<int64_t> n = CheckedNumel(shape);
  if (!n.ok()) return n.status();
  if (*n != numel_) {
    return absl::InvalidArgumentError(absl::StrCat("cannot reshape ", DebugString(), " to ",
                                                   ShapeString(shape)));
  }
  shape_ = std::move(shape);
  return absl::OkStatus();
}

std::string Tensor::DebugString() const {
  return absl::StrCat(DTypeName(dtype_), ShapeString(shape_));
}

}  // namespace caldera
