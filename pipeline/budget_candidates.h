// The budget candidates of one matrix (--target-bits): the owner of the
// `<stem>.candidates.json` format (docs/format/budget-candidates.md) and of the
// per-block choice among the candidates.
//
// A decompose step under --target-bits stores every candidate of its window
// (job/bit_budget.h) as its own artifact beside the task's artifact
// (`<stem>.c<i>.safetensors`, same attempt directory) and their list as
// `<stem>.candidates.json`. Later the block's allocation (job/bit_allocation.h)
// picks one candidate per matrix; the sequential calibration of the next
// block and finalize both call ResolveBudgetChoices, so they pick the same.
#ifndef CALDERA_PIPELINE_BUDGET_CANDIDATES_H_
#define CALDERA_PIPELINE_BUDGET_CANDIDATES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/format/module_report.h"
#include "storage/storage_options.h"

namespace caldera::pipeline {

// The candidates a decompose task stored for one matrix.
struct BudgetCandidateList {
  double target_bits = 0;
  int64_t params = 0;       // the module's rows x cols
  double weight_norm2 = 0;  // tr(W H Wᵀ) of the stored part
  // artifact (URI), setting, storage_bits, bits_per_param, weighted_relative_error.
  std::vector<format::ModuleReport> candidates;
};

// `<stem>.c<i>.safetensors` for the artifact `<stem>.safetensors`.
std::string CandidateArtifactUri(const std::string& artifact_uri, int i);
// `<stem>.candidates.json` for the artifact `<stem>.safetensors`.
std::string CandidateListUri(const std::string& artifact_uri);

std::string SerializeCandidateList(const BudgetCandidateList& list);
// INVALID_ARGUMENT naming `where` and the key for a malformed list.
absl::StatusOr<BudgetCandidateList> ParseCandidateList(absl::string_view text,
                                                       const std::string& where);

// The position of `name` ("q_proj") in model order (model::kLinearModules);
// unknown names sort last.
int ModuleOrder(const std::string& name);

// Replaces each report of `reports` that carries a budget setting by the
// candidate the allocation of its block chooses (job/bit_allocation.h), read
// from that candidate's artifact. Blocks are allocated on their own, their
// modules in model order. A list whose candidates are not beside its artifact
// is refused (the list is scratch data: it must not point reads elsewhere).
absl::Status ResolveBudgetChoices(std::vector<format::ModuleReport>* reports,
                                  const storage::StorageOptions& options);

// The ModuleReport stored in the metadata of the artifact at `artifact_uri`
// (its `artifact` field set to that URI).
absl::StatusOr<format::ModuleReport> ReadModuleReport(const std::string& artifact_uri,
                                                      const storage::StorageOptions& options);

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_BUDGET_CANDIDATES_H_
