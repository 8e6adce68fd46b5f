// compressed-tensors "pack-quantized": the checkpoint form llm-compressor
// writes and transformers (with the compressed-tensors package) and vLLM load
// (docs/format/compressed-tensors.md). One owner for both directions: the
// tensors of one quantized linear and the quantization_config of config.json
// are written here (calderactl export --format compressed-tensors), and read
// back to float32 weights here (eval and export of such a checkpoint, ours or
// llm-compressor's).
//
// Per quantized linear <prefix> (W [rows, cols], y = x·Wᵀ):
//   <prefix>.weight_packed     I32 [rows, ceil(cols·bits/32)]: the codes
//                              u = q + 2^(bits-1) of each row, bits wide, packed
//                              least significant bit first into little-endian
//                              int32 words, each row starting a new word (the
//                              rest of a row's last word zero)
//   <prefix>.weight_scale      F32/F16/BF16 [rows, groups] (groups = cols /
//                              group_size, or 1 for one scale per row)
//   <prefix>.weight_zero_point I32 [ceil(rows·bits/32), groups], asymmetric
//                              only: the zero points z + 2^(bits-1), packed
//                              the same way down the rows (read, never written)
//   <prefix>.weight_shape      I64 [2] = {rows, cols}
// and W = (q − z)·scale of its group (z = 0 when symmetric), computed in the
// scale's dtype.
#ifndef CALDERA_CORE_FORMAT_COMPRESSED_TENSORS_H_
#define CALDERA_CORE_FORMAT_COMPRESSED_TENSORS_H_

#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/format/safetensors.h"
#include "core/tensor/tensor.h"

namespace caldera::format {

// The scheme of one config group: "group" strategy with group_size, or
// "channel" (group_size 0: one scale per row).
struct PackQuantizedScheme {
  int bits = 4;
  int64_t group_size = 0;  // 0: strategy channel
  bool symmetric = true;
  bool operator<(const PackQuantizedScheme& o) const {
    return std::tie(bits, group_size, symmetric) < std::tie(o.bits, o.group_size, o.symmetric);
  }
  bool operator==(const PackQuantizedScheme& o) const = default;
};

// The tensors of one symmetric linear (names <prefix>.weight_packed,
// .weight_scale, .weight_shape) from its codes u = q + 2^(bits-1) (`codes`:
// rows·cols codes, bits wide, packed least significant bit first, row-major,
// as the int quantizer's record holds them) and its scales (`scales` F16
// [rows, groups]), the scales stored as `scale_dtype` (F32 or F16: both hold
// every fp16 value exactly). INVALID_ARGUMENT (naming `prefix`) when bits is
// not 4 or 8, groups does not divide cols, or a size disagrees.
absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> PackQuantizedTensors(
    const std::string& prefix, int bits, int64_t rows, int64_t cols, std::span<const uint8_t> codes,
    const Tensor& scales, DType scale_dtype);

// The scheme a symmetric linear of `cols` columns quantized in groups of
// `group_size` is written under: strategy group for 32, 64 or 128 dividing the
// row (the sizes vLLM's kernels take; as llm-compressor writes them, also when
// the group is the whole row), else channel (one scale per row: group_size >=
// cols, e.g. 65536 or --target-bits' per-row choice).
PackQuantizedScheme SchemeFor(int bits, int64_t cols, int64_t group_size);

// True when `reader` holds <prefix>.weight_packed.
bool HasPackQuantized(const SafetensorsReader& reader, const std::string& prefix);

// The float32 weight [rows, cols] of <prefix> from its pack-quantized tensors
// in `reader`: bits from the packed width, groups from the scale's shape, zero
// points when <prefix>.weight_zero_point is there. INVALID_ARGUMENT naming
// the tensor for anything malformed (shapes that disagree, a packed width no
// bit count 1..8 gives, a group size that does not divide cols).
absl::StatusOr<Tensor> ReadPackQuantized(const SafetensorsReader& reader,
                                         const std::string& prefix);

// One config group of quantization_config: a scheme and the module names
// (full names) it targets.
struct PackQuantizedGroup {
  PackQuantizedScheme scheme;
  std::vector<std::string> targets;
};

// config.json for a pack-quantized checkpoint: `config_json` with
// "torch_dtype" set and "quantization_config" replaced by compressed-tensors'
// (quant_method compressed-tensors, format pack-quantized, quantization_status
// compressed, config_groups group_0.. in `groups` order, `ignore` the linears
// and lm_head left dense). INVALID_ARGUMENT when config_json is not an object.
absl::StatusOr<std::string> PackQuantizedModelConfig(absl::string_view config_json,
                                                     absl::string_view where,
                                                     absl::string_view torch_dtype,
                                                     const std::vector<PackQuantizedGroup>& groups,
                                                     const std::vector<std::string>& ignore);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_COMPRESSED_TENSORS_H_
