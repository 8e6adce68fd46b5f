#include "core/decompose/record.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/decompose/caldera.h"

namespace caldera::decompose {

absl::Status AddRecordTensors(RecordTensors record, absl::string_view prefix,
                              SafetensorsWriter* writer) {
  for (auto& [name, tensor] : record) {
    if (absl::Status s = writer->Add(absl::StrCat(prefix, ".", name), std::move(tensor)); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

bool HasRecord(const SafetensorsReader& reader, absl::string_view prefix) {
  return reader.Find(absl::StrCat(prefix, ".caldera.config")) != nullptr;
}

absl::StatusOr<RecordTensors> ReadRecord(const SafetensorsReader& reader,
                                         absl::string_view prefix) {
  const std::string start = absl::StrCat(prefix, ".caldera.");
  RecordTensors out;
  for (const TensorInfo& info : reader.tensors()) {
    if (!absl::StartsWith(info.name, start)) continue;
    absl::StatusOr<Tensor> t = reader.Read(info.name);
    if (!t.ok()) return t.status();
    out.emplace_back(info.name.substr(prefix.size() + 1), *std::move(t));
  }
  if (out.empty()) {
    return absl::NotFoundError(
        absl::StrCat(reader.name(), ": no CALDERA record for '", prefix, "'"));
  }
  return out;
}

absl::StatusOr<Tensor> ReconstructTensor(const SafetensorsReader& reader,
                                         const std::string& prefix) {
  absl::StatusOr<RecordTensors> record = ReadRecord(reader, prefix);
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

model::Checkpoint::LinearReconstructor CalderaReconstructor() {
  return [](const SafetensorsReader& reader, const std::string& prefix) {
    return ReconstructTensor(reader, prefix);
  };
}

}  // namespace caldera::decompose
