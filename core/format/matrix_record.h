// The CALDERA per-matrix record (format `caldera.matrix.v1`,
// docs/format/caldera-matrix-record.md): the tensors "<prefix>.caldera.*" of
// one compressed linear, so the records of many matrices can share a file and
// sit beside ordinary tensors; <prefix> is the module name, e.g.
// "model.layers.0.self_attn.q_proj" (the dense tensor was <prefix>.weight).
//
// This file owns the layout: the tensor names, the config JSON (keys, types,
// which are optional) and adding/reading a record in a safetensors file. The
// quantized tensors' contents and the reconstruction math live in
// core/quant and core/decompose.
#ifndef CALDERA_CORE_FORMAT_MATRIX_RECORD_H_
#define CALDERA_CORE_FORMAT_MATRIX_RECORD_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/format/safetensors.h"
#include "core/tensor/tensor.h"

namespace caldera::format {

inline constexpr char kMatrixFormat[] = "caldera.matrix.v1";

// A record's tensors, named relative to the prefix: "caldera.config",
// "caldera.q.codes", "caldera.l.scale", ...
inline constexpr char kRecordConfigName[] = "caldera.config";
// How the Hadamard signs are drawn (the "sign_generator" written in configs).
inline constexpr char kSignGenerator[] = "splitmix64; rows use seed xor 0x5bd1e9955bd1e995";

// How one of Q, L, R is stored ("kind": e8p | uniform | float).
struct RecordQuantizer {
  std::string kind;
  int bits = 0;
  int64_t group_size = 128;  // optional in the JSON (default 128)
  bool symmetric = true;     // optional in the JSON (default true)
  // e8p: one fp16 scale per row ("row_scales" tensor) instead of one "scale";
  // written only when true, absent in older records (default false).
  bool row_scales = false;
};

// The "<prefix>.caldera.config" JSON.
struct MatrixRecordConfig {
  std::string method;  // caldera | ldlq | rtn
  int64_t rows = 0, cols = 0, padded_rows = 0, padded_cols = 0, rank = 0;
  RecordQuantizer q;
  RecordQuantizer lr;  // required when rank > 0
  bool hadamard = false;
  uint64_t seed = 0;
  std::string update_order;                     // optional (older records lack it); "" when absent
  bool hessian_downdate = false;                // optional (older records lack it)
  std::string sign_generator = kSignGenerator;  // optional, informative
  double global_scale = 0;                      // written from a float
};

// The config as JSON text (keys sorted) and as the U8 tensor that holds it.
std::string SerializeRecordConfig(const MatrixRecordConfig& config);
Tensor RecordConfigTensor(const MatrixRecordConfig& config);

// Checked parsing: format tag, required keys and types, sizes >= 0 (rows,
// cols >= 1, padded sizes >= the sizes). `where` names the file and record
// (may be empty).
absl::StatusOr<MatrixRecordConfig> ParseRecordConfig(absl::string_view json,
                                                     absl::string_view where);
// The same from the U8 config tensor.
absl::StatusOr<MatrixRecordConfig> RecordConfigFromTensor(const Tensor& tensor,
                                                          absl::string_view where);

// Adds the record's tensors under `prefix` (consumes them).
absl::Status AddRecordTensors(NamedTensors record, absl::string_view prefix,
                              SafetensorsWriter* writer);

// True when `reader` holds "<prefix>.caldera.config".
bool HasRecord(const SafetensorsReader& reader, absl::string_view prefix);

// Reads the record of `prefix` (names relative to the prefix). NOT_FOUND when
// the file has none.
absl::StatusOr<NamedTensors> ReadRecord(const SafetensorsReader& reader, absl::string_view prefix);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_MATRIX_RECORD_H_
