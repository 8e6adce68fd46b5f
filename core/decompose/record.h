// Dequantising per-matrix CALDERA records read from safetensors files. The
// record layout (tensor names "<prefix>.caldera.*", the config JSON, adding and
// reading records) is owned by core/format/matrix_record.h
// (docs/format/caldera-matrix-record.md); this file rebuilds Ŵ from it.
#ifndef CALDERA_CORE_DECOMPOSE_RECORD_H_
#define CALDERA_CORE_DECOMPOSE_RECORD_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/decompose/caldera.h"
#include "core/format/matrix_record.h"
#include "core/format/safetensors.h"
#include "core/model/checkpoint.h"
#include "core/quant/quantizer.h"

namespace caldera::decompose {

// Ŵ of the record under `prefix` as an F32 [rows, cols] tensor.
absl::StatusOr<Tensor> ReconstructTensor(const SafetensorsReader& reader,
                                         const std::string& prefix);

// Q, L and R of the record under `prefix` apart, in the original basis (see
// ReconstructFactors); NOT_FOUND when `reader` holds no such record.
absl::StatusOr<RecordFactors> ReadRecordFactors(const SafetensorsReader& reader,
                                                const std::string& prefix);

// A Checkpoint::LinearReconstructor that dequantises CALDERA records, so
// compressed checkpoints load like dense ones.
model::Checkpoint::LinearReconstructor CalderaReconstructor();

}  // namespace caldera::decompose

#endif  // CALDERA_CORE_DECOMPOSE_RECORD_H_
