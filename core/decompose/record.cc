#include "core/decompose/record.h"

#include "absl/strings/str_cat.h"
#include "core/decompose/caldera.h"

namespace caldera::decompose {

absl::StatusOr<Tensor> ReconstructTensor(const SafetensorsReader& reader,
                                         const std::string& prefix) {
  absl::StatusOr<NamedTensors> record = format::ReadRecord(reader, prefix);
  if (!record.ok()) return record.status();
  absl::StatusOr<quant::MatrixF> w = Reconstruct(*record);
  if (!w.ok()) {
    return absl::Status(w.status().code(), absl::StrCat(reader.name(), ": record '", prefix,
                                                        "': ", w.status().message()));
  }
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kF32, {w->rows(), w->cols()});
  if (!t.ok()) return t.status();
  std::span<float> d = t->mutable_data<float>();
  for (int64_t r = 0; r < w->rows(); ++r) {
    for (int64_t c = 0; c < w->cols(); ++c) d[r * w->cols() + c] = (*w)(r, c);
  }
  return t;
}

absl::StatusOr<RecordFactors> ReadRecordFactors(const SafetensorsReader& reader,
                                                const std::string& prefix) {
  absl::StatusOr<NamedTensors> record = format::ReadRecord(reader, prefix);
  if (!record.ok()) return record.status();
  absl::StatusOr<RecordFactors> f = ReconstructFactors(*record);
  if (!f.ok()) {
    return absl::Status(f.status().code(), absl::StrCat(reader.name(), ": record '", prefix,
                                                        "': ", f.status().message()));
  }
  return f;
}

model::Checkpoint::LinearReconstructor CalderaReconstructor() {
  return [](const SafetensorsReader& reader, const std::string& prefix) {
    return ReconstructTensor(reader, prefix);
  };
}

}  // namespace caldera::decompose
