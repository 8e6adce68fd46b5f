#include "core/tensor/dtype.h"

#include <array>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/bounded_quote.h"

namespace caldera {
namespace {

constexpr std::array<std::pair<DType, absl::string_view>, 9> kNames = {{
    {DType::kF32, "F32"},
    {DType::kF16, "F16"},
    {DType::kBF16, "BF16"},
    {DType::kF64, "F64"},
    {DType::kI32, "I32"},
    {DType::kI64, "I64"},
    {DType::kU8, "U8"},
    {DType::kI8, "I8"},
    {DType::kBool, "BOOL"},
}};

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kU8:
    case DType::kI8:
    case DType::kBool:
      return 1;
  }
  return 0;
}

absl::string_view DTypeName(DType dtype) {
  for (const auto& [d, name] : kNames) {
    if (d == dtype) return name;
  }
  return "UNKNOWN";
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const auto& [d, n] : kNames) {
    if (n == name) return d;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype \"", BoundedQuote(name, 32),
                   "\"; supported: F32, F16, BF16, F64, I32, I64, U8, I8, BOOL"));
}

bool IsFloatingPoint(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
         dtype == DType::kF64;
}

}  // namespace caldera
