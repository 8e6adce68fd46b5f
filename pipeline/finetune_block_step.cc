#include "pipeline/finetune_block_step.h"

#include <array>
#include <optional>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/decompose/caldera.h"
#include "core/format/matrix_artifact.h"
#include "core/format/safetensors.h"
#include "core/model/llama_block.h"
#include "core/model/model_runner.h"
#include "model_io/hidden_states_stream.h"
#include "model_io/model_inputs.h"
#include "pipeline/budget_candidates.h"
#include "pipeline/compressed_block.h"
#include "pipeline/finetune_step.h"
#include "pipeline/step_status.h"
#include "storage/storage.h"

namespace caldera::pipeline {
namespace {

using model::RowMatrixF;

// Every sequence of the hidden-states files at `uris`, in order.
absl::Status ReadStates(const std::vector<std::string>& uris, const model::ModelConfig& config,
                        const storage::StorageOptions& options, int64_t seq_len, RowMatrixF* out,
                        IoCounts* io) {
  std::vector<RowMatrixF> parts;
  int64_t rows = 0;
  for (const std::string& uri : uris) {
    absl::StatusOr<std::unique_ptr<model_io::HiddenStatesSource>> src =
        model_io::HiddenStatesSource::Open(uri, options, config);
    if (!src.ok()) return Annotate(src.status(), absl::StrCat("reading ", uri));
    if ((*src)->layout().seq_len != seq_len) {
      return absl::InvalidArgumentError(absl::StrCat(uri, ": sequences of ",
                                                     (*src)->layout().seq_len,
                                                     " tokens, the calibration's are ", seq_len));
    }
    RowMatrixF part;
    if (absl::Status s = (*src)->Read(0, (*src)->layout().samples, &part); !s.ok()) return s;
    io->bytes_read += static_cast<int64_t>((*src)->FileBytes());
    rows += part.rows();
    parts.push_back(std::move(part));
  }
  out->resize(rows, config.hidden_size);
  int64_t r0 = 0;
  for (const RowMatrixF& p : parts) {
    out->middleRows(r0, p.rows()) = p;
    r0 += p.rows();
  }
  return absl::OkStatus();
}

model::RowMatrixF* DenseOf(model::BlockWeights* w, const std::string& module) {
  return module == "q_proj"      ? &w->q
         : module == "k_proj"    ? &w->k
         : module == "v_proj"    ? &w->v
         : module == "o_proj"    ? &w->o
         : module == "gate_proj" ? &w->gate
         : module == "up_proj"   ? &w->up
         : module == "down_proj" ? &w->down
                                 : nullptr;
}

absl::Status Put(const std::string& uri, const std::string& bytes,
                 const storage::StorageOptions& options, IoCounts* io) {
  absl::StatusOr<storage::ObjectInfo> put = storage::WriteObject(uri, bytes, options);
  if (!put.ok()) return Annotate(put.status(), absl::StrCat("writing ", uri));
  io->bytes_written += static_cast<int64_t>(bytes.size());
  return absl::OkStatus();
}

}  // namespace

finetune::FineTuneOptions FinetuneOptionsOf(const job::JobSpec& spec) {
  finetune::FineTuneOptions o;
  o.steps = spec.finetune_steps;
  o.lr = spec.finetune_lr;
  o.holdout = spec.finetune_holdout;
  return o;
}

absl::StatusOr<FinetuneBlockResult> FinetuneBlock(const model::Checkpoint& checkpoint,
                                                  const FinetuneBlockRequest& request,
                                                  const StepEnvironment& env) {
  const storage::StorageOptions& options = env.storage;
  const model::ModelConfig& config = checkpoint.config();
  const int64_t layer = request.layer;
  if (config.qk_norm) {
    return absl::UnimplementedError(absl::StrCat(
        "fine-tuning does not support ", config.architecture,
        " (its q/k head norms have no backward pass yet); compress without --finetune-steps"));
  }
  if (request.tuned_artifact_uris.size() != request.artifact_uris.size()) {
    return absl::InvalidArgumentError("finetune: one tuned artifact URI per artifact is needed");
  }
  FinetuneBlockResult result;
  // The chosen artifacts (under --target-bits, the block's allocation).
  std::vector<format::ModuleReport> reports;
  for (const std::string& uri : request.artifact_uris) {
    absl::StatusOr<format::ModuleReport> rep = ReadModuleReport(uri, options);
    if (!rep.ok()) return rep.status();
    if (rep->layer != layer) {
      return absl::InvalidArgumentError(
          absl::StrCat(uri, " is an artifact of layer ", rep->layer, ", not of layer ", layer));
    }
    reports.push_back(*std::move(rep));
  }
  if (absl::Status s = ResolveBudgetChoices(&reports, options); !s.ok()) return s;
  absl::StatusOr<model::BlockWeights> block =
      CompressedBlock(checkpoint, layer, request.artifact_uris, options, &result.io);
  if (!block.ok()) return block.status();
  absl::StatusOr<model::BlockWeights> reference = model::LoadBlock(checkpoint, layer);
  if (!reference.ok()) return reference.status();

  // Inputs and target.
  absl::StatusOr<model::TokenSet> tokens =
      model_io::LoadTokensAt(request.spec.calibration, config, options);
  if (!tokens.ok()) return tokens.status();
  const int64_t seq_len = tokens->seq_len;
  RowMatrixF embedded;
  if (request.input_uris.empty() || request.original_states_uri.empty()) {
    absl::StatusOr<RowMatrixF> table = model::ReadEmbeddingTable(checkpoint);
    if (!table.ok()) return table.status();
    model::EmbedIds(*table, tokens->ids, &embedded);
  }
  RowMatrixF x, target;
  if (request.input_uris.empty()) {
    x = embedded;
  } else if (absl::Status s =
                 ReadStates(request.input_uris, config, options, seq_len, &x, &result.io);
             !s.ok()) {
    return s;
  }
  if (request.original_states_uri.empty()) {
    target = std::move(embedded);
  } else if (absl::Status s = ReadStates({request.original_states_uri}, config, options, seq_len,
                                         &target, &result.io);
             !s.ok()) {
    return s;
  }
  if (x.rows() != target.rows() || x.rows() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "finetune layer ", layer, ": ", x.rows() / seq_len, " compressed-model sequences but ",
        target.rows() / seq_len, " original-model sequences"));
  }
  RunBlockOverSequences(config, *reference, seq_len, &target);
  if (env.IsCancelled()) return absl::CancelledError("the job was cancelled");

  // The tunable records.
  std::array<std::optional<finetune::TunableLinear>, 7> linears;
  std::array<int, 7> report_of;
  report_of.fill(-1);
  for (size_t r = 0; r < reports.size(); ++r) {
    int i = 0;
    while (i < 7 && model::kLinearModules[i].name != reports[r].module) ++i;
    RowMatrixF* dense = DenseOf(&*block, reports[r].module);
    if (i == 7 || dense == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(reports[r].artifact, ": unknown module '",
                                                     reports[r].module.substr(0, 40), "'"));
    }
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
        model_io::OpenSafetensorsAt(reports[r].artifact, options);
    if (!reader.ok()) return reader.status();
    absl::StatusOr<format::MatrixArtifact> artifact = format::ReadMatrixArtifact(**reader);
    if (!artifact.ok()) return artifact.status();
    report_of[i] = static_cast<int>(r);
    if (artifact->adapter.has_value()) continue;  // the adapter stays as initialised
    absl::StatusOr<std::optional<finetune::TunableLinear>> t =
        TunableIfExact(artifact->record, *dense);
    if (!t.ok()) return Annotate(t.status(), reports[r].artifact);
    linears[i] = *std::move(t);
  }
  finetune::FineTuneOptions tune = FinetuneOptionsOf(request.spec);
  tune.cancelled = env.cancelled;
  absl::StatusOr<finetune::BlockTuneResult> tuned =
      finetune::TuneBlock(config, seq_len, x, target, *block, std::move(linears), tune);
  if (!tuned.ok()) return Annotate(tuned.status(), absl::StrCat("fine-tuning block ", layer));
  if (env.IsCancelled()) return absl::CancelledError("the job was cancelled");

  // One artifact per module, in the request's order (ResolveBudgetChoices
  // replaced reports in place).
  const bool replace = !tuned->report.kept_input;
  format::FinetuneBlockReport& rep = result.report;
  for (int i = 0; i < 7; ++i) {
    if (report_of[i] < 0) continue;
    const size_t k = static_cast<size_t>(report_of[i]);
    const format::ModuleReport& chosen = reports[k];
    std::string bytes;
    if (replace && tuned->records[i].has_value()) {
      format::MatrixArtifact a;
      a.prefix = chosen.name;
      a.record = *std::move(tuned->records[i]);
      a.report = chosen;
      a.report->artifact.clear();
      absl::StatusOr<std::string> s = format::SerializeMatrixArtifact(std::move(a));
      if (!s.ok()) return s.status();
      bytes = *std::move(s);
      ++rep.modules_tuned;
    } else {
      absl::StatusOr<std::string> s = storage::ReadObject(chosen.artifact, options);
      if (!s.ok()) return Annotate(s.status(), absl::StrCat("reading ", chosen.artifact));
      bytes = *std::move(s);
    }
    if (absl::Status s = Put(request.tuned_artifact_uris[k], bytes, options, &result.io); !s.ok()) {
      return s;
    }
  }

  // The block file.
  format::FinetuneBlockFile file;
  rep.layer = layer;
  rep.steps = tuned->report.steps;
  rep.train_before = tuned->report.train_before;
  rep.holdout_before = tuned->report.holdout_before;
  rep.holdout_after = replace ? tuned->report.holdout_after : tuned->report.holdout_before;
  rep.kept_input = !replace;
  if (replace && FinetuneOptionsOf(request.spec).tune_norms) {
    const std::string prefix = config.LayerPrefix(layer);
    for (auto [name, norm] :
         {std::pair{"input_layernorm.weight", &tuned->weights.input_norm},
          std::pair{"post_attention_layernorm.weight", &tuned->weights.post_norm}}) {
      const std::string full = prefix + name;
      const TensorInfo* info = checkpoint.Find(full);
      if (info == nullptr) return absl::NotFoundError(absl::StrCat("no tensor ", full));
      absl::StatusOr<Tensor> t = Tensor::FromValues<float>(
          {norm->size()}, std::span<const float>(norm->data(), norm->size()));
      if (!t.ok()) return t.status();
      absl::StatusOr<Tensor> stored = t->ConvertTo(info->dtype);
      if (!stored.ok()) return stored.status();
      file.norms.emplace_back(full, *std::move(stored));
    }
  }
  file.report = rep;
  {
    absl::StatusOr<std::string> bytes = format::SerializeFinetuneBlock(std::move(file));
    if (!bytes.ok()) return bytes.status();
    if (absl::Status s = Put(request.block_uri, *bytes, options, &result.io); !s.ok()) return s;
  }

  // The original model's states after the block, for finetune(layer + 1).
  if (!request.original_states_out_uri.empty()) {
    format::HiddenStatesLayout layout;
    layout.layer = layer + 1;
    layout.samples = target.rows() / seq_len;
    layout.seq_len = seq_len;
    layout.hidden_size = config.hidden_size;
    layout.dtype = request.spec.hidden_dtype;
    absl::StatusOr<std::unique_ptr<model_io::HiddenStatesSink>> sink =
        model_io::HiddenStatesSink::Create(request.original_states_out_uri, options, layout);
    if (!sink.ok()) return sink.status();
    if (absl::Status s = (*sink)->Append(target); !s.ok()) return s;
    absl::StatusOr<int64_t> written = (*sink)->Finish();
    if (!written.ok()) return written.status();
    result.io.bytes_written += *written;
  }
  return result;
}

}  // namespace caldera::pipeline
