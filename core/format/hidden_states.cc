#include "core/format/hidden_states.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

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
  const TensorInfo* info = reader.Find("hidden_states");
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        reader.name(), ": no 'hidden_states' tensor; hidden-state files hold an F32 ",
        "hidden_states [samples, seq_len, hidden_size] (written by SerializeHiddenStates)"));
  }
  if (info->dtype != DType::kF32 || info->shape.size() != 3 || info->shape[2] != hidden_size ||
      info->shape[0] <= 0 || info->shape[1] <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": hidden_states is ", DTypeName(info->dtype),
                     ShapeString(info->shape), "; expected F32 [samples, seq_len, ", hidden_size,
                     "] for this model (were they made with another model?)"));
  }
  HiddenStatesFile out;
  const auto it = reader.metadata().find("layer");
  if (it == reader.metadata().end() || !absl::SimpleAtoi(it->second, &out.layer) || out.layer < 0 ||
      out.layer > max_layer) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": metadata 'layer' is missing or not in [0, ", max_layer,
                     "]; write the file with SerializeHiddenStates"));
  }
  absl::StatusOr<Tensor> t = reader.Read("hidden_states");
  if (!t.ok()) return t.status();
  out.values = *std::move(t);
  return out;
}

}  // namespace caldera::format
