// The hidden-states file (docs/format/hidden-states.md): the activations that
// enter one decoder block, passed from calibrate(l-1) to calibrate(l). A
// safetensors file with one F32 tensor "hidden_states" [samples, seq_len,
// hidden_size] (sequences stacked, row-major) and metadata "layer" = the
// index of the block these states enter. One writer and one reader; the
// conversion to the model's matrices lives in core/model/hidden_states.h.
#ifndef CALDERA_CORE_FORMAT_HIDDEN_STATES_H_
#define CALDERA_CORE_FORMAT_HIDDEN_STATES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"
#include "core/tensor/tensor.h"

namespace caldera::format {

struct HiddenStatesFile {
  int64_t layer = 0;  // the block these states enter
  Tensor values;      // F32 [samples, seq_len, hidden_size], samples and seq_len >= 1
};

// The file's bytes (consumes the values). INVALID_ARGUMENT for a wrong dtype
// or rank, empty dimensions, or layer < 0.
absl::StatusOr<std::string> SerializeHiddenStatesFile(HiddenStatesFile file);

// Reads and validates a hidden-states file: the tensor must be F32
// [samples >= 1, seq_len >= 1, hidden_size] and the layer in [0, max_layer].
// Messages name the file and what is wrong.
absl::StatusOr<HiddenStatesFile> ReadHiddenStatesFile(const SafetensorsReader& reader,
                                                      int64_t hidden_size, int64_t max_layer);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_HIDDEN_STATES_H_
