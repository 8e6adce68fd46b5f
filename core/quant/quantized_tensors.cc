#include "core/quant/quantized_tensors.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace caldera::quant {

const Tensor* FindTensor(const NamedTensors& tensors, absl::string_view name) {
  for (const auto& [n, v] : tensors) {
    if (n == name) return &v;
  }
  return nullptr;
}

absl::StatusOr<const Tensor*> RequireTensor(const NamedTensors& tensors, const QuantizerSpec& spec,
                                            absl::string_view name, DType dtype, int64_t numel) {
  const Tensor* t = FindTensor(tensors, name);
  if (t == nullptr || t->dtype() != dtype || t->numel() != numel) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantized record (", spec.Name(), ") has a missing or malformed '", name, "' tensor"));
  }
  return t;
}

Tensor U8Tensor(std::vector<int64_t> shape, const std::vector<uint8_t>& bytes) {
  return *Tensor::FromBytes(DType::kU8, std::move(shape), bytes);
}

}  // namespace caldera::quant
