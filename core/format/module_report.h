// The metrics of one decomposed matrix (docs/format/report.md): stored as the
// "report" metadata of its matrix artifact and as one entry of report.json's
// "matrices". One struct, one JSON writer, one checked reader.
#ifndef CALDERA_CORE_FORMAT_MODULE_REPORT_H_
#define CALDERA_CORE_FORMAT_MODULE_REPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace caldera::format {

struct ModuleReport {
  std::string name;      // "model.layers.0.self_attn.q_proj"
  std::string artifact;  // URI of the artifact file; NOT stored in the JSON
  int64_t layer = 0;
  std::string module;  // "q_proj"
  int64_t rows = 0, cols = 0, rank = 0;
  double relative_error = 0;
  double weighted_relative_error = 0;
  double bits_per_param = 0;
  int64_t storage_bits = 0;
  double seconds = 0;
  int64_t ttlora_params = 0;
  double ttlora_weighted_error_before = 0, ttlora_weighted_error_after = 0;
  // The setting --target-bits chose ("caldera r8 e8p2", "ldlq uniform3 g32");
  // empty (and absent from the JSON) when the job's own settings applied.
  std::string setting;
  // An expert of a mixture ("experts.3.gate_proj"): the calibration tokens
  // routed to it and the share of the layer's mean in its Hessian (the
  // few-token fallback, docs/format/hessians.md); -1 and 0 (both absent from
  // the JSON) for any other module.
  int64_t expert_tokens = -1;
  double hessian_prior_share = 0;
};

// The JSON object (keys sorted, as nlohmann::json orders them).
nlohmann::json ModuleReportToJson(const ModuleReport& report);
// Compact JSON text (the artifact's "report" metadata).
std::string SerializeModuleReport(const ModuleReport& report);

// Checked reading: every key but the ttlora_* ones and setting is required and must have
// its type. `where` names the file and part for messages. `artifact` is left
// empty.
absl::StatusOr<ModuleReport> ModuleReportFromJson(const nlohmann::json& j, absl::string_view where);
absl::StatusOr<ModuleReport> ParseModuleReport(absl::string_view text, absl::string_view where);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_MODULE_REPORT_H_
