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

std::vector<uint8_t> PackCodes(const std::vector<uint8_t>& codes, int bits) {
  std::vector<uint8_t> packed((codes.size() * static_cast<size_t>(bits) + 7) / 8, 0);
  uint64_t bit = 0;
  for (uint8_t code : codes) {
    for (int b = 0; b < bits; ++b, ++bit) {
      if ((code >> b) & 1) packed[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
  }
  return packed;
}

Tensor U8Tensor(std::vector<int64_t> shape, const std::vector<uint8_t>& bytes) {
  return *Tensor::FromBytes(DType::kU8, std::move(shape), bytes);
}

}  // namespace caldera::quant
