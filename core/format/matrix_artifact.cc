#include "core/format/matrix_artifact.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace caldera::format {
namespace {

constexpr char kReportKey[] = "report";

absl::Status CheckFormatTag(const SafetensorsReader& reader) {
  const auto it = reader.metadata().find("format");
  if (it == reader.metadata().end() || it->second != kMatrixFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": not a matrix artifact (metadata \"format\" is not \"",
                     kMatrixFormat, "\"); see docs/format/matrix-artifact.md"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> SerializeMatrixArtifact(MatrixArtifact a) {
  if (a.prefix.empty() || a.record.empty()) {
    return absl::InvalidArgumentError("matrix artifact: empty prefix or record");
  }
  SafetensorsWriter writer;
  writer.SetMetadata("format", kMatrixFormat);
  if (a.adapter.has_value()) {
    if (absl::Status s = AddTtloraAdapter(a.prefix, *std::move(a.adapter), &writer); !s.ok()) {
      return s;
    }
  }
  if (a.report.has_value()) writer.SetMetadata(kReportKey, SerializeModuleReport(*a.report));
  if (absl::Status s = AddRecordTensors(std::move(a.record), a.prefix, &writer); !s.ok()) {
    return s;
  }
  return writer.Serialize();
}

absl::StatusOr<ModuleReport> ReadArtifactReport(const SafetensorsReader& reader) {
  if (absl::Status s = CheckFormatTag(reader); !s.ok()) return s;
  const auto it = reader.metadata().find(kReportKey);
  if (it == reader.metadata().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), " has no \"report\" metadata; re-run the job"));
  }
  return ParseModuleReport(it->second, absl::StrCat(reader.name(), ": metadata \"report\""));
}

absl::StatusOr<MatrixArtifact> ReadMatrixArtifact(const SafetensorsReader& reader) {
  if (absl::Status s = CheckFormatTag(reader); !s.ok()) return s;
  MatrixArtifact a;
  const std::string suffix = absl::StrCat(".", kRecordConfigName);
  for (const TensorInfo& info : reader.tensors()) {
    if (!absl::EndsWith(info.name, suffix)) continue;
    if (!a.prefix.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(reader.name(), ": holds two records ('",
                                                     a.prefix, "' and '", info.name,
                                                     "'); an artifact holds one"));
    }
    a.prefix = info.name.substr(0, info.name.size() - suffix.size());
  }
  if (a.prefix.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": no \"<prefix>.", kRecordConfigName, "\" tensor"));
  }
  absl::StatusOr<NamedTensors> record = ReadRecord(reader, a.prefix);
  if (!record.ok()) return record.status();
  for (const auto& [name, t] : *record) {
    if (name != kRecordConfigName) continue;
    absl::StatusOr<MatrixRecordConfig> c =
        RecordConfigFromTensor(t, absl::StrCat(reader.name(), ": '", a.prefix, "'"));
    if (!c.ok()) return c.status();
  }
  a.record = *std::move(record);
  if (reader.metadata().count(kTtloraConfigKey) != 0) {
    absl::StatusOr<TtloraAdapterFile> adapter = ReadTtloraAdapter(reader, a.prefix);
    if (!adapter.ok()) return adapter.status();
    a.adapter = *std::move(adapter);
  }
  if (reader.metadata().count(kReportKey) != 0) {
    absl::StatusOr<ModuleReport> report = ReadArtifactReport(reader);
    if (!report.ok()) return report.status();
    a.report = *std::move(report);
  }
  return a;
}

}  // namespace caldera::format
