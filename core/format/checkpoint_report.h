// report.json of a CALDERA checkpoint (docs/format/report.md): per-matrix
// metrics and totals, written LAST by the finalize task (its presence means
// the checkpoint is complete). One writer and one checked reader.
#ifndef CALDERA_CORE_FORMAT_CHECKPOINT_REPORT_H_
#define CALDERA_CORE_FORMAT_CHECKPOINT_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/format/finetune_block.h"
#include "core/format/module_report.h"
#include "core/format/quantization_config.h"
#include "nlohmann/json.hpp"

namespace caldera::format {

struct ReportTotals {
  int64_t matrices = 0;
  double parameters = 0;    // Σ rows·cols
  double storage_bits = 0;  // Σ storage_bits
  double bits_per_param = 0;
  double rms_weighted_relative_error = 0;
  double decompose_seconds = 0;  // Σ per-matrix seconds
  double seconds = 0;            // the job's wall time up to finalization
};

// DirectShare summary (docs/format/head-sharing.md), written only when
// groups are shared: how many KV groups are aliases and how many parameters
// of the compressed matrices they cover (stored once, at their sources).
struct ReportHeadSharing {
  int64_t shared_groups = 0;
  double aliased_params = 0;
};

struct CheckpointReport {
  int format_version = kCheckpointFormatVersion;
  std::string request_id;
  std::vector<ModuleReport> matrices;  // in the order written
  ReportTotals totals;
  ReportHeadSharing head_sharing;  // optional key "head_sharing"
  // Recovery fine-tuning, one entry per tuned block in layer order; optional
  // key "finetune" (absent when the job did not fine-tune).
  std::vector<FinetuneBlockReport> finetune;
};

// The totals of `matrices` (see the doc), with `seconds` the job's wall time.
ReportTotals ComputeTotals(const std::vector<ModuleReport>& matrices, double seconds);

// The "totals" object (keys sorted), e.g. for `calderactl compress -o json`.
nlohmann::json ReportTotalsToJson(const ReportTotals& totals);

// report.json's text (pretty-printed, keys sorted). The totals are written as
// given: fill them with ComputeTotals.
std::string SerializeCheckpointReport(const CheckpointReport& report);

// Checked reading; an unknown format_version is INVALID_ARGUMENT. `where`
// names the file.
absl::StatusOr<CheckpointReport> ParseCheckpointReport(absl::string_view json,
                                                       absl::string_view where);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_CHECKPOINT_REPORT_H_
