// The hidden-states file (docs/format/hidden-states.md): the activations that
// enter one decoder block, passed from calibrate(l-1) to calibrate(l). A
// safetensors file with one F32 or BF16 tensor "hidden_states" [samples,
// seq_len, hidden_size] (sequences stacked, row-major) and metadata "layer" =
// the index of the block these states enter. Whole-file writer and reader for
// small sets, and the streaming form (header first, then rows appended in
// chunks of sequences; ranged reads of chunks) for real sizes; the
// conversion to the model's matrices lives in core/model/hidden_states.h.
#ifndef CALDERA_CORE_FORMAT_HIDDEN_STATES_H_
#define CALDERA_CORE_FORMAT_HIDDEN_STATES_H_

#include <cstdint>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"
#include "core/tensor/tensor.h"

namespace caldera::format {

struct HiddenStatesFile {
  int64_t layer = 0;  // the block these states enter
  Tensor values;      // F32 [samples, seq_len, hidden_size], samples and seq_len >= 1
                      // (a BF16 file is widened to F32 when read)
};

// The file's bytes (consumes the values). INVALID_ARGUMENT for a wrong dtype
// or rank, empty dimensions, or layer < 0.
absl::StatusOr<std::string> SerializeHiddenStatesFile(HiddenStatesFile file);

// Reads and validates a hidden-states file: the tensor must be F32 or BF16
// [samples >= 1, seq_len >= 1, hidden_size] and the layer in [0, max_layer].
// Messages name the file and what is wrong.
absl::StatusOr<HiddenStatesFile> ReadHiddenStatesFile(const SafetensorsReader& reader,
                                                      int64_t hidden_size, int64_t max_layer);

// The shape of a hidden-states file, for streaming.
struct HiddenStatesLayout {
  int64_t layer = 0;  // the block these states enter
  int64_t samples = 0;
  int64_t seq_len = 0;
  int64_t hidden_size = 0;
  DType dtype = DType::kF32;  // F32 or BF16 (rounded to nearest even)

  int64_t SequenceBytes() const;  // seq_len * hidden_size * element size
};

// The bytes before the data: 8-byte header length and the JSON header (padded
// to 8), the same bytes the whole-file writer produces for this shape; then
// come samples*seq_len*hidden_size values in `dtype`. INVALID_ARGUMENT for a
// dtype other than F32/BF16, a dimension < 1, or layer < 0.
absl::StatusOr<std::string> HiddenStatesHeader(const HiddenStatesLayout& layout);

// Appends `values` (float32, row-major rows of whole sequences) to `out` in
// `dtype`'s encoding (F32: the bytes; BF16: rounded to nearest even).
void AppendHiddenStatesValues(std::span<const float> values, DType dtype, std::string* out);

// Validates the header as ReadHiddenStatesFile does, without reading the data.
absl::StatusOr<HiddenStatesLayout> ReadHiddenStatesLayout(const SafetensorsReader& reader,
                                                          int64_t hidden_size, int64_t max_layer);

// Sequences [first, first + count) as float32 into `out` (count * seq_len *
// hidden_size values), with one ranged read; BF16 is widened exactly.
// OUT_OF_RANGE when the sequences are not in the file.
absl::Status ReadHiddenStatesSequences(const SafetensorsReader& reader,
                                       const HiddenStatesLayout& layout, int64_t first,
                                       int64_t count, std::span<float> out);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_HIDDEN_STATES_H_
