#include "pipeline/compressed_block.h"

#include <algorithm>
#include <span>

#include "absl/strings/str_cat.h"
#include "core/decompose/record.h"
#include "core/format/module_report.h"
#include "core/model/head_sharing.h"
#include "core/model/model_config.h"
#include "model_io/model_inputs.h"
#include "pipeline/budget_candidates.h"
#include "pipeline/step_status.h"
#include "pipeline/tuned_block.h"

namespace caldera::pipeline {

using format::ModuleReport;

// Block `layer`'s weights with the linears of `artifacts` replaced by their
// compressed versions (rebuilt through the record reader eval uses).
absl::StatusOr<model::BlockWeights> CompressedBlock(const model::Checkpoint& checkpoint,
                                                    int64_t layer,
                                                    const std::vector<std::string>& artifacts,
                                                    const storage::StorageOptions& options,
                                                    IoCounts* io) {
  return CompressedBlock(checkpoint, layer, artifacts, {}, "", options, io);
}

absl::StatusOr<model::BlockWeights> CompressedBlock(
    const model::Checkpoint& checkpoint, int64_t layer, const std::vector<std::string>& artifacts,
    const std::vector<std::string>& tuned_artifacts, const std::string& block_uri,
    const storage::StorageOptions& options, IoCounts* io) {
  absl::StatusOr<model::BlockWeights> w = model::LoadBlock(checkpoint, layer);
  if (!w.ok()) return w.status();
  std::vector<ModuleReport> reports;
  for (const std::string& uri : artifacts) {
    absl::StatusOr<ModuleReport> rep = ReadModuleReport(uri, options);
    if (!rep.ok()) return rep.status();
    reports.push_back(*std::move(rep));
  }
  // --target-bits: the candidates the block's allocation chooses, as finalize will.
  if (absl::Status s = ResolveBudgetChoices(&reports, options); !s.ok()) return s;
  if (absl::Status s = ApplyTunedArtifacts(tuned_artifacts, options, &reports); !s.ok()) return s;
  if (!block_uri.empty()) {
    absl::StatusOr<format::FinetuneBlockFile> block = ReadFinetuneBlockAt(block_uri, options);
    if (!block.ok()) return block.status();
    if (absl::Status s = ApplyTunedNorms(*block, checkpoint.config(), layer, &*w); !s.ok()) {
      return s;
    }
  }
  for (const ModuleReport& report : reports) {
    const std::string& uri = report.artifact;
    const ModuleReport* rep = &report;
    if (rep->layer != layer) {
      return absl::InvalidArgumentError(
          absl::StrCat(uri, " is an artifact of layer ", rep->layer, ", not of layer ", layer));
    }
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
        model_io::OpenSafetensorsAt(uri, options);
    if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", uri));
    absl::StatusOr<Tensor> t = decompose::ReconstructTensor(**reader, rep->name);
    if (!t.ok()) return Annotate(t.status(), uri);
    io->bytes_read += rep->storage_bits / 8;
    // The block's linear this record replaces (dense or an expert's).
    const model::ModelConfig& config = checkpoint.config();
    const std::vector<model::BlockLinear> linears = model::BlockLinears(config);
    model::RowMatrixF* target = nullptr;
    std::string suffix;
    for (size_t i = 0; i < linears.size(); ++i) {
      if (linears[i].name != rep->module) continue;
      target = model::LinearOf(&*w, config, i);
      suffix = linears[i].suffix;
    }
    if (target != nullptr && checkpoint.head_sharing() != nullptr && t->rank() == 2 &&
        (t->dim(0) != target->rows() || t->dim(1) != target->cols())) {
      // A record without its aliased heads (--share-heads): those come from
      // the source layer's weights as this checkpoint reads them (the input,
      // shared), not from the source's record, which this task does not see.
      const std::vector<model::AliasedSlice> slices =
          model::AliasedSlices(*checkpoint.head_sharing(), layer, rep->module);
      t = model::ExpandAliased(*t, {target->rows(), target->cols()}, slices,
                               model::SharesColumns(rep->module), [&](int64_t source) {
                                 return checkpoint.ReadLinearWeight(
                                     checkpoint.config().LayerPrefix(source) + suffix, rep->module);
                               });
      if (!t.ok()) return Annotate(t.status(), uri);
    }
    if (target == nullptr || t->rank() != 2 || t->dim(0) != target->rows() ||
        t->dim(1) != target->cols()) {
      return absl::InvalidArgumentError(absl::StrCat(uri, ": module '", rep->module.substr(0, 40),
                                                     "' does not fit layer ", layer));
    }
    std::span<const float> d = t->data<float>();
    std::copy(d.begin(), d.end(), target->data());  // both row-major [out, in]
  }
  return w;
}

}  // namespace caldera::pipeline
