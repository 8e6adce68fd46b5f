#include "core/model/hidden_states.h"

#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace caldera::model {

absl::StatusOr<std::string> SerializeHiddenStates(const HiddenStates& states) {
  if (states.samples <= 0 || states.seq_len <= 0 ||
      states.values.rows() != states.samples * states.seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden states: ", states.values.rows(), " rows for ", states.samples,
                     " samples x ", states.seq_len, " tokens; rows must equal samples*seq_len"));
  }
  const int64_t hidden = states.values.cols();
  const std::span<const float> values(states.values.data(),
                                      static_cast<size_t>(states.values.size()));
  absl::StatusOr<Tensor> t =
      Tensor::FromValues<float>({states.samples, states.seq_len, hidden}, values);
  if (!t.ok()) return t.status();
  SafetensorsWriter writer;
  if (absl::Status s = writer.Add("hidden_states", *std::move(t)); !s.ok()) return s;
  writer.SetMetadata("layer", absl::StrCat(states.layer));
  return writer.Serialize();
}

absl::StatusOr<HiddenStates> ReadHiddenStates(const SafetensorsReader& reader,
                                              const ModelConfig& config) {
  const TensorInfo* info = reader.Find("hidden_states");
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        reader.name(), ": no 'hidden_states' tensor; hidden-state files hold an F32 ",
        "hidden_states [samples, seq_len, hidden_size] (written by SerializeHiddenStates)"));
  }
  if (info->dtype != DType::kF32 || info->shape.size() != 3 ||
      info->shape[2] != config.hidden_size || info->shape[0] <= 0 || info->shape[1] <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": hidden_states is ", DTypeName(info->dtype),
                     ShapeString(info->shape), "; expected F32 [samples, seq_len, ",
                     config.hidden_size, "] for this model (were they made with another model?)"));
  }
  HiddenStates out;
  out.samples = info->shape[0];
  out.seq_len = info->shape[1];
  const auto it = reader.metadata().find("layer");
  if (it == reader.metadata().end() || !absl::SimpleAtoi(it->second, &out.layer) || out.layer < 0 ||
      out.layer > config.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": metadata 'layer' is missing or not in [0, ",
                     config.num_layers, "]; write the file with SerializeHiddenStates"));
  }
  absl::StatusOr<Tensor> t = reader.Read("hidden_states");
  if (!t.ok()) return t.status();
  out.values.resize(out.samples * out.seq_len, config.hidden_size);
  const std::span<const float> src = t->data<float>();
  std::memcpy(out.values.data(), src.data(), src.size_bytes());
  return out;
}

}  // namespace caldera::model
