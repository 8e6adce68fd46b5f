// The matrix artifact (docs/format/matrix-artifact.md): one safetensors file
// holding what the decomposition of one linear produced, written by the
// worker's decompose task (and `calderactl decompose --out`), read by the
// finalize task:
//   - tensors: the TT-LoRA cores "<prefix>.ttlora.core.{k}" (when an adapter
//     was made), then the CALDERA record "<prefix>.caldera.*";
//   - metadata: format = "caldera.matrix.v1", "ttlora_config" (with the
//     adapter), "report" (the module's metrics, ModuleReport JSON; written by
//     the worker).
// One writer and one reader; the parts' layouts are owned by
// matrix_record.h, ttlora_adapter.h and module_report.h.
#ifndef CALDERA_CORE_FORMAT_MATRIX_ARTIFACT_H_
#define CALDERA_CORE_FORMAT_MATRIX_ARTIFACT_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/format/matrix_record.h"
#include "core/format/module_report.h"
#include "core/format/safetensors.h"
#include "core/format/ttlora_adapter.h"

namespace caldera::format {

struct MatrixArtifact {
  std::string prefix;  // the module name, e.g. "model.layers.0.mlp.down_proj"
  NamedTensors record;
  std::optional<TtloraAdapterFile> adapter;
  std::optional<ModuleReport> report;  // its `artifact` field is not stored
};

// The file's bytes (consumes the tensors). INVALID_ARGUMENT for an empty
// prefix or record, or adapter cores that do not match their config.
absl::StatusOr<std::string> SerializeMatrixArtifact(MatrixArtifact artifact);

// Reads and checks the whole artifact: format tag, exactly one record (whose
// config must parse), the adapter when "ttlora_config" is present, the report
// when "report" is present.
absl::StatusOr<MatrixArtifact> ReadMatrixArtifact(const SafetensorsReader& reader);

// Only the "report" metadata (checked), without reading any tensor.
absl::StatusOr<ModuleReport> ReadArtifactReport(const SafetensorsReader& reader);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_MATRIX_ARTIFACT_H_
