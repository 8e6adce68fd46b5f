#include "core/format/module_report.h"

#include "core/format/json_fields.h"

namespace caldera::format {

nlohmann::json ModuleReportToJson(const ModuleReport& m) {
  nlohmann::json j = {{"name", m.name},
                      {"layer", m.layer},
                      {"module", m.module},
                      {"rows", m.rows},
                      {"cols", m.cols},
                      {"rank", m.rank},
                      {"relative_error", m.relative_error},
                      {"weighted_relative_error", m.weighted_relative_error},
                      {"bits_per_param", m.bits_per_param},
                      {"storage_bits", m.storage_bits},
                      {"seconds", m.seconds},
                      {"ttlora_params", m.ttlora_params},
                      {"ttlora_weighted_error_before", m.ttlora_weighted_error_before},
                      {"ttlora_weighted_error_after", m.ttlora_weighted_error_after}};
  if (!m.setting.empty()) j["setting"] = m.setting;
  if (m.expert_tokens >= 0) {
    j["expert_tokens"] = m.expert_tokens;
    j["hessian_prior_share"] = m.hessian_prior_share;
  }
  return j;
}

std::string SerializeModuleReport(const ModuleReport& report) {
  return ModuleReportToJson(report).dump();
}

absl::StatusOr<ModuleReport> ModuleReportFromJson(const nlohmann::json& j,
                                                  absl::string_view where) {
  ModuleReport m;
  JsonFields f(j, std::string(where));
  f.RequireString("name", &m.name);
  f.RequireInt("layer", &m.layer);
  f.RequireString("module", &m.module);
  f.RequireInt("rows", &m.rows);
  f.RequireInt("cols", &m.cols);
  f.RequireInt("rank", &m.rank);
  f.RequireDouble("relative_error", &m.relative_error);
  f.RequireDouble("weighted_relative_error", &m.weighted_relative_error);
  f.RequireDouble("bits_per_param", &m.bits_per_param);
  f.RequireInt("storage_bits", &m.storage_bits);
  f.RequireDouble("seconds", &m.seconds);
  f.OptionalInt("ttlora_params", &m.ttlora_params);
  f.OptionalDouble("ttlora_weighted_error_before", &m.ttlora_weighted_error_before);
  f.OptionalDouble("ttlora_weighted_error_after", &m.ttlora_weighted_error_after);
  f.OptionalString("setting", &m.setting);
  f.OptionalInt("expert_tokens", &m.expert_tokens);
  f.OptionalDouble("hessian_prior_share", &m.hessian_prior_share);
  if (f.ok() &&
      (m.expert_tokens < -1 || !(m.hessian_prior_share >= 0.0 && m.hessian_prior_share <= 1.0))) {
    f.Fail("expert_tokens must be >= 0 and hessian_prior_share in [0, 1]");
  }
  if (f.ok() && (m.layer < 0 || m.rows < 0 || m.cols < 0 || m.rank < 0)) {
    f.Fail("layer, rows, cols and rank must not be negative");
  }
  if (!f.ok()) return f.status();
  return m;
}

absl::StatusOr<ModuleReport> ParseModuleReport(absl::string_view text, absl::string_view where) {
  absl::StatusOr<nlohmann::json> j = ParseJsonObject(text, where);
  if (!j.ok()) return j.status();
  return ModuleReportFromJson(*j, where);
}

}  // namespace caldera::format
