#include "core/format/compressed_tensors.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/format/json_fields.h"
#include "core/tensor/half.h"
#include "nlohmann/json.hpp"

namespace caldera::format {
namespace {

using Json = nlohmann::json;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

absl::Status Bad(const std::string& prefix, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("compressed-tensors ", prefix, ": ", what));
}

// The code at element `i` of a bit stream of `bits`-wide codes packed least
// significant bit first into little-endian 32-bit words.
uint32_t CodeAt(std::span<const int32_t> words, int64_t i, int bits) {
  const int64_t bit = i * bits;
  uint64_t v = static_cast<uint32_t>(words[static_cast<size_t>(bit / 32)]);
  if ((bit % 32) + bits > 32) {
    v |= static_cast<uint64_t>(static_cast<uint32_t>(words[static_cast<size_t>(bit / 32 + 1)]))
         << 32;
  }
  return static_cast<uint32_t>((v >> (bit % 32)) & ((1u << bits) - 1));
}

Json SchemeJson(const PackQuantizedScheme& s, const std::vector<std::string>& targets) {
  Json weights = {{"actorder", nullptr},
                  {"block_structure", nullptr},
                  {"dynamic", false},
                  {"group_size", s.group_size == 0 ? Json(nullptr) : Json(s.group_size)},
                  {"num_bits", s.bits},
                  {"observer", "minmax"},
                  {"observer_kwargs", Json::object()},
                  {"scale_dtype", nullptr},
                  {"strategy", s.group_size == 0 ? "channel" : "group"},
                  {"symmetric", s.symmetric},
                  {"type", "int"},
                  {"zp_dtype", nullptr}};
  return {{"format", "pack-quantized"},
          {"input_activations", nullptr},
          {"output_activations", nullptr},
          {"targets", targets},
          {"weights", std::move(weights)}};
}

}  // namespace

PackQuantizedScheme SchemeFor(int bits, int64_t cols, int64_t group_size) {
  PackQuantizedScheme s;
  s.bits = bits;
  const bool kernel_group = group_size == 32 || group_size == 64 || group_size == 128;
  s.group_size = kernel_group && cols % group_size == 0 ? group_size : 0;
  return s;
}

absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> PackQuantizedTensors(
    const std::string& prefix, int bits, int64_t rows, int64_t cols, std::span<const uint8_t> codes,
    const Tensor& scales, DType scale_dtype) {
  if (bits != 4 && bits != 8) return Bad(prefix, absl::StrCat(bits, "-bit codes; 4 or 8 only"));
  if (rows < 1 || cols < 1) return Bad(prefix, "empty matrix");
  if (static_cast<int64_t>(codes.size()) != CeilDiv(rows * cols * bits, 8)) {
    return Bad(prefix, absl::StrCat("codes hold ", codes.size(), " bytes, expected ",
                                    CeilDiv(rows * cols * bits, 8)));
  }
  if (scales.dtype() != DType::kF16 || scales.shape().size() != 2 || scales.shape()[0] != rows ||
      scales.shape()[1] < 1 || cols % scales.shape()[1] != 0) {
    return Bad(prefix, "scales are not F16 [rows, groups] with groups dividing the columns");
  }
  if (scale_dtype != DType::kF32 && scale_dtype != DType::kF16) {
    return Bad(prefix, "scales are written as F32 or F16 (they hold fp16 values)");
  }
  std::vector<std::pair<std::string, Tensor>> out;
  // Each row starts a new word (the rest of its last word is zero); the
  // record's stream runs on across rows, so the codes are moved row by row.
  const int64_t words = CeilDiv(cols * bits, 32);
  absl::StatusOr<Tensor> packed = Tensor::Zeros(DType::kI32, {rows, words});
  if (!packed.ok()) return packed.status();
  std::span<int32_t> dst = packed->mutable_data<int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t from = (r * cols + c) * bits, to = c * bits;
      uint32_t code = 0;
      for (int b = 0; b < bits; ++b) {
        code |= static_cast<uint32_t>(
                    (codes[static_cast<size_t>((from + b) / 8)] >> ((from + b) % 8)) & 1)
                << b;
      }
      for (int b = 0; b < bits; ++b) {
        if ((code >> b) & 1) {
          const int64_t bit = to + b;
          int32_t& w = dst[static_cast<size_t>(r * words + bit / 32)];
          w = static_cast<int32_t>(static_cast<uint32_t>(w) | (1u << (bit % 32)));
        }
      }
    }
  }
  out.emplace_back(prefix + ".weight_packed", *std::move(packed));
  absl::StatusOr<Tensor> scale = scales.ConvertTo(scale_dtype);
  if (!scale.ok()) return scale.status();
  out.emplace_back(prefix + ".weight_scale", *std::move(scale));
  const int64_t shape[2] = {rows, cols};
  absl::StatusOr<Tensor> ws = Tensor::FromValues<int64_t>({2}, shape);
  if (!ws.ok()) return ws.status();
  out.emplace_back(prefix + ".weight_shape", *std::move(ws));
  return out;
}

bool HasPackQuantized(const SafetensorsReader& reader, const std::string& prefix) {
  return reader.Find(prefix + ".weight_packed") != nullptr;
}

absl::StatusOr<Tensor> ReadPackQuantized(const SafetensorsReader& reader,
                                         const std::string& prefix) {
  auto read = [&](const char* suffix) { return reader.Read(prefix + suffix); };
  absl::StatusOr<Tensor> packed = read(".weight_packed");
  if (!packed.ok()) return packed.status();
  absl::StatusOr<Tensor> shape = read(".weight_shape");
  if (!shape.ok()) return shape.status();
  absl::StatusOr<Tensor> scale = reader.ReadAs(prefix + ".weight_scale", DType::kF32);
  if (!scale.ok()) return scale.status();
  if ((shape->dtype() != DType::kI64 && shape->dtype() != DType::kI32) || shape->numel() != 2) {
    return Bad(prefix, "weight_shape is not an integer [2]");
  }
  const int64_t rows =
      shape->dtype() == DType::kI64 ? shape->data<int64_t>()[0] : shape->data<int32_t>()[0];
  const int64_t cols =
      shape->dtype() == DType::kI64 ? shape->data<int64_t>()[1] : shape->data<int32_t>()[1];
  if (rows < 1 || cols < 1 || rows > (int64_t{1} << 24) || cols > (int64_t{1} << 24)) {
    return Bad(prefix, absl::StrCat("weight_shape [", rows, ", ", cols, "] is out of range"));
  }
  if (packed->dtype() != DType::kI32 || packed->shape().size() != 2 || packed->shape()[0] != rows) {
    return Bad(prefix, "weight_packed is not I32 [rows, words]");
  }
  const int64_t words = packed->shape()[1];
  int bits = 0;
  for (int b = 1; b <= 8; ++b) {
    if (CeilDiv(cols * b, 32) == words) {
      if (bits != 0) return Bad(prefix, "the packed width fits more than one bit count");
      bits = b;
    }
  }
  if (bits == 0) {
    return Bad(prefix, absl::StrCat("weight_packed has ", words, " words per row; no bit count ",
                                    "1..8 packs ", cols, " columns into that"));
  }
  if (scale->shape().size() != 2 || scale->shape()[0] != rows || scale->shape()[1] < 1 ||
      cols % scale->shape()[1] != 0) {
    return Bad(prefix, "weight_scale is not [rows, groups] with groups dividing the columns");
  }
  const int64_t groups = scale->shape()[1], group = cols / groups;
  const int half = 1 << (bits - 1);
  std::vector<int> zero(static_cast<size_t>(rows * groups), half);
  if (const TensorInfo* zi = reader.Find(prefix + ".weight_zero_point"); zi != nullptr) {
    absl::StatusOr<Tensor> zp = read(".weight_zero_point");
    if (!zp.ok()) return zp.status();
    if (zp->dtype() != DType::kI32 || zp->shape().size() != 2 ||
        zp->shape()[0] != CeilDiv(rows * bits, 32) || zp->shape()[1] != groups) {
      return Bad(prefix, "weight_zero_point is not I32 [ceil(rows·bits/32), groups]");
    }
    // Packed down the rows: column g's zero points are a bit stream over rows.
    std::vector<int32_t> column(static_cast<size_t>(zp->shape()[0]));
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t w = 0; w < zp->shape()[0]; ++w) {
        column[static_cast<size_t>(w)] = zp->data<int32_t>()[w * groups + g];
      }
      for (int64_t r = 0; r < rows; ++r) {
        zero[static_cast<size_t>(r * groups + g)] = static_cast<int>(CodeAt(column, r, bits));
      }
    }
  }
  absl::StatusOr<Tensor> out = Tensor::Zeros(DType::kF32, {rows, cols});
  if (!out.ok()) return out.status();
  std::span<float> w = out->mutable_data<float>();
  std::span<const int32_t> p = packed->data<int32_t>();
  std::span<const float> s = scale->data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    std::span<const int32_t> row = p.subspan(static_cast<size_t>(r * words));
    for (int64_t c = 0; c < cols; ++c) {
      const size_t gi = static_cast<size_t>(r * groups + c / group);
      const int q = static_cast<int>(CodeAt(row, c, bits)) - zero[gi];
      w[static_cast<size_t>(r * cols + c)] = static_cast<float>(q) * s[gi];
    }
  }
  return out;
}

absl::StatusOr<std::string> PackQuantizedModelConfig(absl::string_view config_json,
                                                     absl::string_view where,
                                                     absl::string_view torch_dtype,
                                                     const std::vector<PackQuantizedGroup>& groups,
                                                     const std::vector<std::string>& ignore) {
  absl::StatusOr<Json> j = ParseJsonObject(config_json, where);
  if (!j.ok()) return absl::InvalidArgumentError(absl::StrCat(where, " is not a JSON object"));
  Json config_groups = Json::object();
  for (size_t i = 0; i < groups.size(); ++i) {
    config_groups[absl::StrCat("group_", i)] = SchemeJson(groups[i].scheme, groups[i].targets);
  }
  (*j)["quantization_config"] = {{"config_groups", std::move(config_groups)},
                                 {"format", "pack-quantized"},
                                 {"global_compression_ratio", nullptr},
                                 {"ignore", ignore},
                                 {"kv_cache_scheme", nullptr},
                                 {"quant_method", "compressed-tensors"},
                                 {"quantization_status", "compressed"},
                                 {"sparsity_config", Json::object()},
                                 {"transform_config", Json::object()},
                                 {"version", "0.19.0"}};
  (*j)["torch_dtype"] = std::string(torch_dtype);
  return j->dump(2);
}

}  // namespace caldera::format
