#include "core/format/finetune_block.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/format/json_fields.h"

namespace caldera::format {

nlohmann::json FinetuneBlockReportToJson(const FinetuneBlockReport& r) {
  nlohmann::json j;
  j["layer"] = r.layer;
  j["steps"] = r.steps;
  j["train_before"] = r.train_before;
  j["holdout_before"] = r.holdout_before;
  j["holdout_after"] = r.holdout_after;
  j["kept_input"] = r.kept_input;
  j["modules_tuned"] = r.modules_tuned;
  return j;
}

absl::StatusOr<FinetuneBlockReport> FinetuneBlockReportFromJson(const nlohmann::json& j,
                                                                const std::string& where) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, " is not an object"));
  FinetuneBlockReport r;
  JsonFields f(j, where);
  f.RequireInt("layer", &r.layer);
  f.RequireInt("steps", &r.steps);
  f.RequireDouble("train_before", &r.train_before);
  f.RequireDouble("holdout_before", &r.holdout_before);
  f.RequireDouble("holdout_after", &r.holdout_after);
  f.RequireBool("kept_input", &r.kept_input);
  f.RequireInt("modules_tuned", &r.modules_tuned);
  if (!f.ok()) return f.status();
  if (r.layer < 0 || r.steps < 0 || r.modules_tuned < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": layer, steps and modules_tuned must be >= 0"));
  }
  return r;
}

absl::StatusOr<std::string> SerializeFinetuneBlock(FinetuneBlockFile file) {
  SafetensorsWriter writer;
  writer.SetMetadata("format", kFinetuneBlockFormat);
  writer.SetMetadata("report", FinetuneBlockReportToJson(file.report).dump());
  for (auto& [name, t] : file.norms) {
    if (absl::Status s = writer.Add(name, std::move(t)); !s.ok()) return s;
  }
  return writer.Serialize();
}

absl::StatusOr<FinetuneBlockFile> ReadFinetuneBlock(const SafetensorsReader& reader) {
  const auto tag = reader.metadata().find("format");
  if (tag == reader.metadata().end() || tag->second != kFinetuneBlockFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": not a fine-tuned block file (metadata \"format\" is not \"",
                     kFinetuneBlockFormat, "\"); see docs/format/finetune-block.md"));
  }
  const auto rep = reader.metadata().find("report");
  if (rep == reader.metadata().end()) {
    return absl::InvalidArgumentError(absl::StrCat(reader.name(), " has no \"report\" metadata"));
  }
  const std::string where = absl::StrCat(reader.name(), ": metadata \"report\"");
  absl::StatusOr<nlohmann::json> j = ParseJsonObject(rep->second, where);
  if (!j.ok()) return j.status();
  FinetuneBlockFile file;
  absl::StatusOr<FinetuneBlockReport> r = FinetuneBlockReportFromJson(*j, where);
  if (!r.ok()) return r.status();
  file.report = *r;
  for (const TensorInfo& info : reader.tensors()) {
    absl::StatusOr<Tensor> t = reader.Read(info.name);
    if (!t.ok()) return t.status();
    file.norms.emplace_back(info.name, *std::move(t));
  }
  return file;
}

}  // namespace caldera::format
