#include "pipeline/tuned_block.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model_io/model_inputs.h"
#include "pipeline/budget_candidates.h"
#include "pipeline/step_status.h"

namespace caldera::pipeline {

absl::Status ApplyTunedArtifacts(const std::vector<std::string>& tuned_uris,
                                 const storage::StorageOptions& options,
                                 std::vector<format::ModuleReport>* reports) {
  for (const std::string& uri : tuned_uris) {
    absl::StatusOr<format::ModuleReport> tuned = ReadModuleReport(uri, options);
    if (!tuned.ok()) return tuned.status();
    auto it = std::find_if(reports->begin(), reports->end(),
                           [&](const format::ModuleReport& r) { return r.name == tuned->name; });
    if (it == reports->end()) {
      return absl::InvalidArgumentError(absl::StrCat(uri, " is a tuned artifact of ", tuned->name,
                                                     ", which this job does not compress"));
    }
    *it = *std::move(tuned);
  }
  return absl::OkStatus();
}

absl::StatusOr<format::FinetuneBlockFile> ReadFinetuneBlockAt(
    const std::string& uri, const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(uri, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", uri));
  return format::ReadFinetuneBlock(**reader);
}

absl::Status ApplyTunedNorms(const format::FinetuneBlockFile& block,
                             const model::ModelConfig& config, int64_t layer,
                             model::BlockWeights* weights) {
  const std::string prefix = config.LayerPrefix(layer);
  for (const auto& [name, tensor] : block.norms) {
    model::VectorF* norm = name == prefix + "input_layernorm.weight" ? &weights->input_norm
                           : name == prefix + "post_attention_layernorm.weight"
                               ? &weights->post_norm
                               : nullptr;
    if (norm == nullptr || tensor.rank() != 1 || tensor.dim(0) != norm->size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fine-tuned block file: tensor '", name.substr(0, 80), "' is not a norm of layer ", layer,
          " (", prefix, "input_layernorm.weight or post_attention_layernorm.weight of size ",
          weights->input_norm.size(), ")"));
    }
    absl::StatusOr<Tensor> f = tensor.ConvertTo(DType::kF32);
    if (!f.ok()) return f.status();
    std::span<const float> d = f->data<float>();
    std::copy(d.begin(), d.end(), norm->data());
  }
  return absl::OkStatus();
}

}  // namespace caldera::pipeline
