#include "core/format/hidden_states.h"

#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/tensor/half.h"
#include "nlohmann/json.hpp"

namespace caldera::format {

absl::StatusOr<std::string> SerializeHiddenStatesFile(HiddenStatesFile file) {
  const Tensor& v = file.values;
  if (v.dtype() != DType::kF32 || v.shape().size() != 3 || v.dim(0) < 1 || v.dim(1) < 1 ||
      file.layer < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden states: ", DTypeName(v.dtype()), ShapeString(v.shape()), " layer ",
                     file.layer, "; expected F32 [samples, seq_len, hidden_size] and layer >= 0"));
  }
  SafetensorsWriter writer;
  if (absl::Status s = writer.Add("hidden_states", std::move(file.values)); !s.ok()) return s;
  writer.SetMetadata("layer", absl::StrCat(file.layer));
  return writer.Serialize();
}

absl::StatusOr<HiddenStatesFile> ReadHiddenStatesFile(const SafetensorsReader& reader,
                                                      int64_t hidden_size, int64_t max_layer) {
  // The same checks as a streamed read (tensor, dtype, shape, layer).
  absl::StatusOr<HiddenStatesLayout> layout =
      ReadHiddenStatesLayout(reader, hidden_size, max_layer);
  if (!layout.ok()) return layout.status();
  HiddenStatesFile out;
  out.layer = layout->layer;
  absl::StatusOr<Tensor> t = reader.ReadAs("hidden_states", DType::kF32);
  if (!t.ok()) return t.status();
  out.values = *std::move(t);
  return out;
}

int64_t HiddenStatesLayout::SequenceBytes() const {
  return seq_len * hidden_size * static_cast<int64_t>(DTypeSize(dtype));
}

absl::StatusOr<std::string> HiddenStatesHeader(const HiddenStatesLayout& l) {
  if ((l.dtype != DType::kF32 && l.dtype != DType::kBF16) || l.samples < 1 || l.seq_len < 1 ||
      l.hidden_size < 1 || l.layer < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden states: ", DTypeName(l.dtype), " [", l.samples, ", ", l.seq_len, ", ",
                     l.hidden_size, "] layer ", l.layer,
                     "; expected F32 or BF16 [samples, seq_len, hidden_size] and layer >= 0"));
  }
  // The same JSON as SafetensorsWriter writes for one tensor and one metadata key.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = nlohmann::ordered_json::object({{"layer", absl::StrCat(l.layer)}});
  nlohmann::ordered_json t;
  t["dtype"] = std::string(DTypeName(l.dtype));
  t["shape"] = std::vector<int64_t>{l.samples, l.seq_len, l.hidden_size};
  t["data_offsets"] = {uint64_t{0}, static_cast<uint64_t>(l.samples * l.SequenceBytes())};
  header["hidden_states"] = std::move(t);
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out;
  const uint64_t len = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  out += json;
  return out;
}

void AppendHiddenStatesValues(std::span<const float> values, DType dtype, std::string* out) {
  const size_t at = out->size();
  if (dtype == DType::kBF16) {
    std::vector<uint16_t> bits(values.size());
    FloatToBFloat16(values, bits);
    out->resize(at + bits.size() * sizeof(uint16_t));
    std::memcpy(out->data() + at, bits.data(), bits.size() * sizeof(uint16_t));
    return;
  }
  out->resize(at + values.size_bytes());
  std::memcpy(out->data() + at, values.data(), values.size_bytes());
}

absl::StatusOr<HiddenStatesLayout> ReadHiddenStatesLayout(const SafetensorsReader& reader,
                                                          int64_t hidden_size, int64_t max_layer) {
  const TensorInfo* info = reader.Find("hidden_states");
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        reader.name(), ": no 'hidden_states' tensor; hidden-state files hold an F32 or BF16 ",
        "hidden_states [samples, seq_len, hidden_size] (written by a calibrate task)"));
  }
  if ((info->dtype != DType::kF32 && info->dtype != DType::kBF16) || info->shape.size() != 3 ||
      info->shape[2] != hidden_size || info->shape[0] <= 0 || info->shape[1] <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": hidden_states is ", DTypeName(info->dtype),
                     ShapeString(info->shape), "; expected F32 or BF16 [samples, seq_len, ",
                     hidden_size, "] for this model (were they made with another model?)"));
  }
  HiddenStatesLayout out;
  const auto it = reader.metadata().find("layer");
  if (it == reader.metadata().end() || !absl::SimpleAtoi(it->second, &out.layer) || out.layer < 0 ||
      out.layer > max_layer) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": metadata 'layer' is missing or not in [0, ", max_layer,
                     "]; write the file with SerializeHiddenStates"));
  }
  out.samples = info->shape[0];
  out.seq_len = info->shape[1];
  out.hidden_size = hidden_size;
  out.dtype = info->dtype;
  return out;
}

absl::Status ReadHiddenStatesSequences(const SafetensorsReader& reader,
                                       const HiddenStatesLayout& layout, int64_t first,
                                       int64_t count, std::span<float> out) {
  const TensorInfo* info = reader.Find("hidden_states");
  if (info == nullptr)
    return absl::NotFoundError(absl::StrCat(reader.name(), ": no hidden_states"));
  if (first < 0 || count < 0 || first + count > layout.samples ||
      static_cast<int64_t>(out.size()) != count * layout.seq_len * layout.hidden_size) {
    return absl::OutOfRangeError(absl::StrCat(reader.name(), ": sequences [", first, ", ",
                                              first + count, ") of ", layout.samples));
  }
  const uint64_t offset = static_cast<uint64_t>(first * layout.SequenceBytes());
  if (layout.dtype == DType::kBF16) {
    std::vector<uint16_t> bits(out.size());
    std::span<uint8_t> bytes(reinterpret_cast<uint8_t*>(bits.data()),
                             bits.size() * sizeof(uint16_t));
    if (absl::Status s = reader.ReadTensorRange(*info, offset, bytes); !s.ok()) return s;
    BFloat16ToFloat(bits, out);
    return absl::OkStatus();
  }
  return reader.ReadTensorRange(
      *info, offset, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size_bytes()));
}

}  // namespace caldera::format
