// Helpers for a quantizer's exported tensors (NamedTensors), shared by
// the quantizers' Export() and Decode().
#ifndef CALDERA_CORE_QUANT_QUANTIZED_TENSORS_H_
#define CALDERA_CORE_QUANT_QUANTIZED_TENSORS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/quant/quantizer.h"
#include "core/tensor/tensor.h"

namespace caldera::quant {

// The first tensor named `name`, or nullptr.
const Tensor* FindTensor(const NamedTensors& tensors, absl::string_view name);

// The tensor `name` when it has `dtype` and `numel` elements; otherwise
// INVALID_ARGUMENT "quantized record (<spec name>) has a missing or malformed
// '<name>' tensor".
absl::StatusOr<const Tensor*> RequireTensor(const NamedTensors& tensors, const QuantizerSpec& spec,
                                            absl::string_view name, DType dtype, int64_t numel);

// A U8 tensor of `shape` holding `bytes` (numel(shape) of them).
Tensor U8Tensor(std::vector<int64_t> shape, const std::vector<uint8_t>& bytes);

}  // namespace caldera::quant

#endif  // CALDERA_CORE_QUANT_QUANTIZED_TENSORS_H_
