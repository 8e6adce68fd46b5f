// Per-matrix CALDERA records inside safetensors files. A record is the set of
// tensors "<prefix>.caldera.*" (see docs/format/caldera-matrix-record.md), so
// the records of many matrices can share a file and sit beside ordinary
// tensors in a checkpoint; <prefix> is the module name, e.g.
// "model.layers.0.self_attn.q_proj" (the dense tensor was <prefix>.weight).
#ifndef CALDERA_CORE_DECOMPOSE_RECORD_H_
#define CALDERA_CORE_DECOMPOSE_RECORD_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"
#include "core/model/checkpoint.h"
#include "core/quant/quantizer.h"

namespace caldera::decompose {

using RecordTensors = std::vector<std::pair<std::string, Tensor>>;

// Adds the record's tensors under `prefix` (consumes them).
absl::Status AddRecordTensors(RecordTensors record, absl::string_view prefix,
                              SafetensorsWriter* writer);

bool HasRecord(const SafetensorsReader& reader, absl::string_view prefix);

// Reads the record of `prefix` (names relative to the prefix, as produced by
// Decompose()).
absl::StatusOr<RecordTensors> ReadRecord(const SafetensorsReader& reader, absl::string_view prefix);

// Ŵ of the record under `prefix` as an F32 [rows, cols] tensor.
absl::StatusOr<Tensor> ReconstructTensor(const SafetensorsReader& reader,
                                         const std::string& prefix);

// A Checkpoint::LinearReconstructor that dequantises CALDERA records, so
// compressed checkpoints load like dense ones.
model::Checkpoint::LinearReconstructor CalderaReconstructor();

}  // namespace caldera::decompose

#endif  // CALDERA_CORE_DECOMPOSE_RECORD_H_
