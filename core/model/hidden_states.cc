#include "core/model/hidden_states.h"

#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/format/hidden_states.h"

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
  return format::SerializeHiddenStatesFile(format::HiddenStatesFile{states.layer, *std::move(t)});
}

absl::StatusOr<HiddenStates> ReadHiddenStates(const SafetensorsReader& reader,
                                              const ModelConfig& config) {
  absl::StatusOr<format::HiddenStatesFile> file =
      format::ReadHiddenStatesFile(reader, config.hidden_size, config.num_layers);
  if (!file.ok()) return file.status();
  HiddenStates out;
  out.samples = file->values.dim(0);
  out.seq_len = file->values.dim(1);
  out.layer = file->layer;
  out.values.resize(out.samples * out.seq_len, config.hidden_size);
  const std::span<const float> src = file->values.data<float>();
  std::memcpy(out.values.data(), src.data(), src.size_bytes());
  return out;
}

}  // namespace caldera::model
