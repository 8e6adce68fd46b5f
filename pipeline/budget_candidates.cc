#include "pipeline/budget_candidates.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/format/json_fields.h"
#include "core/format/matrix_artifact.h"
#include "core/model/model_config.h"
#include "job/bit_allocation.h"
#include "model_io/model_inputs.h"
#include "nlohmann/json.hpp"
#include "pipeline/step_status.h"
#include "storage/storage.h"

namespace caldera::pipeline {

using format::ModuleReport;

namespace {

std::string CandidateStem(const std::string& artifact_uri) {
  constexpr absl::string_view kExt = ".safetensors";
  if (absl::EndsWith(artifact_uri, kExt)) {
    return artifact_uri.substr(0, artifact_uri.size() - kExt.size());
  }
  return artifact_uri;
}

// What the block allocation minimises the sum of for one candidate: its
// Hessian-weighted squared error tr(E H Eᵀ) = wre² · tr(W H Wᵀ) (the
// module's share of the block's output error; see README "Quality").
double AllocationError(const BudgetCandidateList& l, const ModuleReport& c) {
  return c.weighted_relative_error * c.weighted_relative_error * l.weight_norm2;
}

}  // namespace

int ModuleOrder(const std::string& name) {
  // A mixture's experts follow the dense modules: expert e's gate, up, down.
  if (const int64_t e = model::ExpertIndex(name); e >= 0) {
    const std::string kind = model::LinearKind(name);
    return static_cast<int>(7 + 3 * e + (kind == "gate_proj" ? 0 : kind == "up_proj" ? 1 : 2));
  }
  int i = 0;
  for (const model::LinearModule& m : model::kLinearModules) {
    if (name == m.name) return i;
    ++i;
  }
  return i;
}

std::string CandidateArtifactUri(const std::string& artifact_uri, int i) {
  return absl::StrCat(CandidateStem(artifact_uri), ".c", i, ".safetensors");
}

std::string CandidateListUri(const std::string& artifact_uri) {
  return absl::StrCat(CandidateStem(artifact_uri), ".candidates.json");
}

std::string SerializeCandidateList(const BudgetCandidateList& l) {
  nlohmann::json j;
  j["target_bits"] = l.target_bits;
  j["params"] = l.params;
  j["weight_norm2"] = l.weight_norm2;
  nlohmann::json cands = nlohmann::json::array();
  for (const ModuleReport& c : l.candidates) {
    nlohmann::json e;
    e["artifact"] = c.artifact;
    e["setting"] = c.setting;
    e["storage_bits"] = c.storage_bits;
    e["bits_per_param"] = c.bits_per_param;
    e["weighted_relative_error"] = c.weighted_relative_error;
    cands.push_back(std::move(e));
  }
  j["candidates"] = std::move(cands);
  return j.dump(1);
}

absl::StatusOr<BudgetCandidateList> ParseCandidateList(absl::string_view text,
                                                       const std::string& where) {
  absl::StatusOr<nlohmann::json> j = format::ParseJsonObject(text, where);
  if (!j.ok()) return j.status();
  BudgetCandidateList l;
  format::JsonFields f(*j, where);
  f.RequireDouble("target_bits", &l.target_bits);
  f.RequireInt("params", &l.params);
  f.RequireDouble("weight_norm2", &l.weight_norm2);
  if (!f.ok()) return f.status();
  auto it = j->find("candidates");
  if (it == j->end() || !it->is_array() || it->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"candidates\" must be a non-empty array"));
  }
  for (const nlohmann::json& e : *it) {
    ModuleReport c;
    format::JsonFields g(e, absl::StrCat(where, ": candidate"));
    g.RequireString("artifact", &c.artifact);
    g.RequireString("setting", &c.setting);
    g.RequireInt("storage_bits", &c.storage_bits);
    g.RequireDouble("bits_per_param", &c.bits_per_param);
    g.RequireDouble("weighted_relative_error", &c.weighted_relative_error);
    if (!g.ok()) return g.status();
    l.candidates.push_back(std::move(c));
  }
  return l;
}

// --target-bits: replaces each report of `reports` that carries a budget
// setting by the candidate the allocation of its block chooses
// (job/bit_allocation.h), read from that candidate's artifact. Blocks are
// allocated on their own, their modules in model order, so the sequential
// calibration (which builds the compressed block) and finalize choose the same.
absl::Status ResolveBudgetChoices(std::vector<ModuleReport>* reports,
                                  const storage::StorageOptions& options) {
  std::map<int64_t, std::vector<size_t>> layers;
  for (size_t i = 0; i < reports->size(); ++i) {
    if (!(*reports)[i].setting.empty()) layers[(*reports)[i].layer].push_back(i);
  }
  for (auto& [layer, idx] : layers) {
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      const ModuleReport &x = (*reports)[a], &y = (*reports)[b];
      return std::make_pair(ModuleOrder(x.module), x.name) <
             std::make_pair(ModuleOrder(y.module), y.name);
    });
    std::vector<BudgetCandidateList> lists;
    std::vector<job::AllocationItem> items;
    double target_bits = 0;
    for (size_t i : idx) {
      const std::string uri = CandidateListUri((*reports)[i].artifact);
      absl::StatusOr<std::string> text = storage::ReadObject(uri, options);
      if (!text.ok()) return Annotate(text.status(), absl::StrCat("reading ", uri));
      absl::StatusOr<BudgetCandidateList> l = ParseCandidateList(*text, uri);
      if (!l.ok()) return l.status();
      if (!lists.empty() && l->target_bits != target_bits) {
        return absl::InvalidArgumentError(absl::StrCat(uri, ": target bits ", l->target_bits,
                                                       ", the block's others ", target_bits));
      }
      target_bits = l->target_bits;
      job::AllocationItem item;
      item.params = l->params;
      for (size_t k = 0; k < l->candidates.size(); ++k) {
        const ModuleReport& c = l->candidates[k];
        // Only the task's own candidates, beside its artifact (the list is
        // scratch data: it must not point reads elsewhere).
        if (c.artifact != CandidateArtifactUri((*reports)[i].artifact, static_cast<int>(k))) {
          return absl::InvalidArgumentError(
              absl::StrCat(uri, ": candidate ", k, " is not beside its artifact"));
        }
        item.options.push_back({c.storage_bits, AllocationError(*l, c)});
      }
      items.push_back(std::move(item));
      lists.push_back(*std::move(l));
    }
    absl::StatusOr<std::vector<int>> choice = job::AllocateBits(items, target_bits);
    if (!choice.ok()) {
      return Annotate(choice.status(),
                      absl::StrCat("--target-bits ", target_bits, ", block ", layer));
    }
    for (size_t k = 0; k < idx.size(); ++k) {
      const ModuleReport& c = lists[k].candidates[static_cast<size_t>((*choice)[k])];
      absl::StatusOr<ModuleReport> rep = ReadModuleReport(c.artifact, options);
      if (!rep.ok()) return rep.status();
      (*reports)[idx[k]] = *std::move(rep);
    }
  }
  return absl::OkStatus();
}
absl::StatusOr<ModuleReport> ReadModuleReport(const std::string& artifact_uri,
                                              const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(artifact_uri, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", artifact_uri));
  absl::StatusOr<ModuleReport> m = format::ReadArtifactReport(**reader);
  if (!m.ok()) return m.status();
  m->artifact = artifact_uri;
  return m;
}

}  // namespace caldera::pipeline
