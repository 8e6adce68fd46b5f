// Saving and loading the hidden states that enter a decoder block, so that a
// distributed worker can calibrate layer l from the states layer l-1 produced
// (embeddings for layer 0, see EmbedTokens) without re-running earlier blocks.
//
// The file format is owned by core/format/hidden_states.h
// (docs/format/hidden-states.md); this file converts to and from the model's
// row matrices.
#ifndef CALDERA_CORE_MODEL_HIDDEN_STATES_H_
#define CALDERA_CORE_MODEL_HIDDEN_STATES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"
#include "core/model/llama_block.h"
#include "core/model/model_config.h"

namespace caldera::model {

struct HiddenStates {
  int64_t samples = 0;
  int64_t seq_len = 0;
  int64_t layer = 0;  // the block these states enter
  RowMatrixF values;  // [samples*seq_len, hidden_size], sequences stacked
};

// The file's bytes. INVALID_ARGUMENT when values.rows() != samples*seq_len.
absl::StatusOr<std::string> SerializeHiddenStates(const HiddenStates& states);

// Reads and validates a hidden-states file against `config` (hidden size).
// Messages name the file and what is wrong.
absl::StatusOr<HiddenStates> ReadHiddenStates(const SafetensorsReader& reader,
                                              const ModelConfig& config);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_HIDDEN_STATES_H_
