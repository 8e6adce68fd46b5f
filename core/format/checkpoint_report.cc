#include "core/format/checkpoint_report.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/format/json_fields.h"

namespace caldera::format {

ReportTotals ComputeTotals(const std::vector<ModuleReport>& matrices, double seconds) {
  double bits = 0, params = 0, weighted_sq = 0, decompose_seconds = 0;
  for (const ModuleReport& m : matrices) {
    bits += static_cast<double>(m.storage_bits);
    params += static_cast<double>(m.rows * m.cols);
    weighted_sq += m.weighted_relative_error * m.weighted_relative_error;
    decompose_seconds += m.seconds;
  }
  ReportTotals t;
  t.matrices = static_cast<int64_t>(matrices.size());
  t.parameters = params;
  t.storage_bits = bits;
  t.bits_per_param = params > 0 ? bits / params : 0.0;
  t.rms_weighted_relative_error =
      matrices.empty() ? 0.0 : std::sqrt(weighted_sq / static_cast<double>(matrices.size()));
  t.decompose_seconds = decompose_seconds;
  t.seconds = seconds;
  return t;
}

nlohmann::json ReportTotalsToJson(const ReportTotals& t) {
  return {{"matrices", t.matrices},
          {"parameters", t.parameters},
          {"storage_bits", t.storage_bits},
          {"bits_per_param", t.bits_per_param},
          {"rms_weighted_relative_error", t.rms_weighted_relative_error},
          {"decompose_seconds", t.decompose_seconds},
          {"seconds", t.seconds}};
}

std::string SerializeCheckpointReport(const CheckpointReport& r) {
  nlohmann::json report;
  nlohmann::json mats = nlohmann::json::array();
  for (const ModuleReport& m : r.matrices) mats.push_back(ModuleReportToJson(m));
  report["format_version"] = r.format_version;
  report["request_id"] = r.request_id;
  report["matrices"] = mats;
  report["totals"] = ReportTotalsToJson(r.totals);
  if (!r.finetune.empty()) {
    nlohmann::json blocks = nlohmann::json::array();
    for (const FinetuneBlockReport& b : r.finetune) blocks.push_back(FinetuneBlockReportToJson(b));
    report["finetune"] = std::move(blocks);
  }
  if (r.head_sharing.shared_groups > 0) {
    report["head_sharing"] = {{"file", "head_sharing.json"},
                              {"shared_groups", r.head_sharing.shared_groups},
                              {"aliased_params", r.head_sharing.aliased_params}};
  }
  return report.dump(2);
}

absl::StatusOr<CheckpointReport> ParseCheckpointReport(absl::string_view json,
                                                       absl::string_view where) {
  absl::StatusOr<nlohmann::json> j = ParseJsonObject(json, where);
  if (!j.ok()) return j.status();
  CheckpointReport r;
  JsonFields f(*j, std::string(where));
  f.RequireInt("format_version", &r.format_version);
  if (f.ok() && r.format_version != kCheckpointFormatVersion) {
    f.Fail(absl::StrCat("format_version ", r.format_version, " is not supported (this build reads ",
                        kCheckpointFormatVersion, ")"));
  }
  f.RequireString("request_id", &r.request_id);
  const nlohmann::json* mats = nullptr;
  if (f.ok()) {
    auto it = j->find("matrices");
    if (it == j->end() || !it->is_array()) {
      f.Fail("key \"matrices\" must be an array");
    } else {
      mats = &*it;
    }
  }
  if (mats != nullptr) {
    for (size_t i = 0; i < mats->size() && f.ok(); ++i) {
      absl::StatusOr<ModuleReport> m =
          ModuleReportFromJson((*mats)[i], absl::StrCat(where, ": matrices[", i, "]"));
      if (!m.ok()) {
        f.Merge(m.status());
      } else {
        r.matrices.push_back(*std::move(m));
      }
    }
  }
  if (const nlohmann::json* totals = f.RequireObject("totals"); totals != nullptr) {
    JsonFields tf(*totals, absl::StrCat(where, ": totals"));
    ReportTotals& t = r.totals;
    tf.RequireInt("matrices", &t.matrices);
    tf.RequireDouble("parameters", &t.parameters);
    tf.RequireDouble("storage_bits", &t.storage_bits);
    tf.RequireDouble("bits_per_param", &t.bits_per_param);
    tf.RequireDouble("rms_weighted_relative_error", &t.rms_weighted_relative_error);
    tf.RequireDouble("decompose_seconds", &t.decompose_seconds);
    tf.RequireDouble("seconds", &t.seconds);
    f.Merge(tf.status());
  }
  if (const nlohmann::json* hs = f.OptionalObject("head_sharing"); hs != nullptr) {
    JsonFields hf(*hs, absl::StrCat(where, ": head_sharing"));
    hf.RequireInt("shared_groups", &r.head_sharing.shared_groups);
    hf.RequireDouble("aliased_params", &r.head_sharing.aliased_params);
    f.Merge(hf.status());
  }
  if (auto ft = j->find("finetune"); ft != j->end()) {
    if (!ft->is_array()) {
      f.Fail("\"finetune\" must be an array");
    } else {
      for (size_t i = 0; i < ft->size(); ++i) {
        absl::StatusOr<FinetuneBlockReport> b =
            FinetuneBlockReportFromJson((*ft)[i], absl::StrCat(where, ": finetune[", i, "]"));
        if (!b.ok()) {
          f.Merge(b.status());
        } else {
          r.finetune.push_back(*b);
        }
      }
    }
  }
  if (!f.ok()) return f.status();
  return r;
}

}  // namespace caldera::format
