// Helpers for a quantizer's exported tensors (NamedTensors), shared by
// the quantizers' Export() and Decode().
#ifndef CALDERA_CORE_QUANT_QUANTIZED_TENSORS_H_
#define CALDERA_CORE_QUANT_QUANTIZED_TENSORS_H_

#include <cstdint>
#include <span>
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

// `codes` (each below 2^bits) as one bit stream, `bits` per code, least
// significant bit first: ceil(codes.size() * bits / 8) bytes (the "codes"
// tensor of the uniform and int quantizers).
std::vector<uint8_t> PackCodes(const std::vector<uint8_t>& codes, int bits);

// Code `i` of such a stream.
inline int UnpackCode(std::span<const uint8_t> packed, int64_t i, int bits) {
  int q = 0;
  const uint64_t bit = static_cast<uint64_t>(i) * static_cast<uint64_t>(bits);
  for (int b = 0; b < bits; ++b) q |= ((packed[(bit + b) / 8] >> ((bit + b) % 8)) & 1) << b;
  return q;
}

// A U8 tensor of `shape` holding `bytes` (numel(shape) of them).
Tensor U8Tensor(std::vector<int64_t> shape, const std::vector<uint8_t>& bytes);

}  // namespace caldera::quant

#endif  // CALDERA_CORE_QUANT_QUANTIZED_TENSORS_H_
