// Element types of tensors, named as in the safetensors format.
#ifndef CALDERA_CORE_TENSOR_DTYPE_H_
#define CALDERA_CORE_TENSOR_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace caldera {

enum class DType : uint8_t { kF32, kF16, kBF16, kF64, kI32, kI64, kU8, kI8, kBool };

// Bytes per element (BOOL is one byte, as in safetensors).
size_t DTypeSize(DType dtype);

// The safetensors spelling: "F32", "F16", "BF16", "F64", "I32", "I64", "U8", "I8", "BOOL".
absl::string_view DTypeName(DType dtype);

// Parses a safetensors dtype string. INVALID_ARGUMENT names the string and lists
// the supported ones.
absl::StatusOr<DType> ParseDType(absl::string_view name);

// True for F32, F16, BF16, F64.
bool IsFloatingPoint(DType dtype);

// Maps a C++ element type to its DType (used by Tensor::data<T>()).
template <typename T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::kF64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kI32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kI64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::kU8; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::kI8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::kBool; };

}  // namespace caldera

#endif  // CALDERA_CORE_TENSOR_DTYPE_H_
