#include "pipeline/finalize_step.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/format/checkpoint_report.h"
#include "core/format/matrix_artifact.h"
#include "core/format/quantization_config.h"
#include "core/format/safetensors.h"
#include "core/format/sharded_checkpoint.h"
#include "core/model/head_sharing.h"
#include "model_io/companion_files.h"
#include "model_io/model_inputs.h"
#include "pipeline/budget_candidates.h"
#include "pipeline/step_status.h"
#include "pipeline/tuned_block.h"
#include "storage/storage.h"

namespace caldera::pipeline {

using format::ModuleReport;

namespace {

// Compressed modules by layer, in layer order (each layer's in model order).
using ModulesByLayer = std::map<int64_t, std::vector<const ModuleReport*>>;

// Shard 1 (every tensor of the input that is not a compressed weight,
// unchanged), then one shard per layer of the artifacts' tensors.
absl::Status WriteShards(const model::Checkpoint& checkpoint, const ModulesByLayer& by_layer,
                         const std::set<std::string>& compressed,
                         std::map<std::string, Tensor> tuned,
                         const storage::StorageOptions& options,
                         format::ShardedCheckpointWriter& shards) {
  // Shard 1: every tensor that is not a compressed weight, unchanged (or,
  // after fine-tuning, the tuned norms in its place).
  for (const SafetensorsReader* reader : checkpoint.readers()) {
    for (const TensorInfo& info : reader->tensors()) {
      if (compressed.count(info.name) != 0) continue;
      if (auto it = tuned.find(info.name); it != tuned.end()) {
        if (absl::Status s = shards.Add(info.name, std::move(it->second)); !s.ok()) return s;
        tuned.erase(it);
        continue;
      }
      absl::StatusOr<Tensor> t = reader->Read(info.name);
      if (!t.ok()) return t.status();
      if (absl::Status s = shards.Add(info.name, *std::move(t)); !s.ok()) return s;
    }
  }
  if (!tuned.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a fine-tuned block file holds '",
                                                   tuned.begin()->first.substr(0, 80),
                                                   "', which the model does not"));
  }
  if (absl::Status s = shards.FinishShard(); !s.ok()) return s;
  // One shard per layer: the artifacts' tensors (records and adapter cores)
  // in the artifacts' order.
  for (const auto& [layer, mods] : by_layer) {
    for (const ModuleReport* m : mods) {
      absl::StatusOr<std::unique_ptr<RandomAccessSource>> src =
          storage::OpenObjectSource(m->artifact, options);
      if (!src.ok()) return Annotate(src.status(), absl::StrCat("artifact of ", m->name));
      absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
          SafetensorsReader::Open(*std::move(src));
      if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("artifact of ", m->name));
      // The adapter's config travels with its cores, keyed by module (a
      // shard holds several modules' adapters).
      if (auto c = (*reader)->metadata().find(format::kTtloraConfigKey);
          c != (*reader)->metadata().end()) {
        shards.SetShardMetadata(format::TtloraConfigKeyOf(m->name), c->second);
      }
      for (const TensorInfo& info : (*reader)->tensors()) {
        absl::StatusOr<Tensor> t = (*reader)->Read(info.name);
        if (!t.ok()) return t.status();
        if (absl::Status s = shards.Add(info.name, *std::move(t)); !s.ok()) return s;
      }
    }
    if (absl::Status s = shards.FinishShard(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// config.json: the input's, plus quantization_config naming every module.
absl::Status WriteConfig(const job::JobSpec& spec, const std::vector<ModuleReport>& modules,
                         const storage::StorageOptions& options) {
  // config.json: the input's, plus quantization_config.
  absl::StatusOr<std::string> config_text =
      storage::ReadObject(storage::JoinKey(spec.model, "config.json"), options);
  if (!config_text.ok()) return config_text.status();
  format::QuantizationConfig qc;
  qc.method = std::string(decompose::MethodName(spec.method));
  qc.rank = spec.method == decompose::Method::kCaldera ? spec.rank : 0;
  qc.q_bits = spec.q_bits;
  qc.lr_bits = spec.lr_bits;
  qc.quantizer = std::string(quant::QuantizerName(spec.quantizer));
  qc.iters = spec.iters;
  qc.lplr_iters = spec.lplr_iters;
  qc.seed = spec.seed;
  qc.ttlora_rank = spec.ttlora_rank;
  qc.ttlora_init = std::string(ttlora::InitModeName(spec.ttlora_init));
  if (spec.target_bits > 0) {
    qc.method = qc.quantizer = "mixed";
    qc.rank = 0;
    qc.q_bits = 0;
    qc.target_bits = spec.target_bits;
  }
  for (const ModuleReport& m : modules) {
    qc.modules[m.name] =
        format::QuantizedModule{m.rows, m.cols, m.rank, m.bits_per_param, m.ttlora_params > 0};
  }
  absl::StatusOr<std::string> config =
      format::AddQuantizationConfig(*config_text, qc, absl::StrCat(spec.model, "/config.json"));
  if (!config.ok()) return config.status();
  if (auto put = storage::WriteObject(storage::JoinKey(spec.out, "config.json"), *config, options);
      !put.ok()) {
    return put.status();
  }
  return absl::OkStatus();
}

// Rebuilds the compressed modules of the first and last compressed layers
// through the path eval and export use: FAILED_PRECONDITION when they do not
// decode (a checkpoint whose records cannot be read must not end SUCCEEDED).
absl::Status ReadBack(const job::JobSpec& spec, const ModulesByLayer& by_layer,
                      const storage::StorageOptions& options) {
  // Read back what was written before report.json says it is done: the
  // compressed modules of the first and last compressed layers are rebuilt
  // through the same path eval and export use (a checkpoint whose records
  // cannot be found or decoded must not end SUCCEEDED).
  if (!by_layer.empty()) {
    absl::StatusOr<std::unique_ptr<model::Checkpoint>> back =
        model_io::OpenCheckpointAt(spec.out, options);
    absl::Status read_back = back.status();
    for (int64_t layer : {by_layer.begin()->first, by_layer.rbegin()->first}) {
      for (const ModuleReport* m : by_layer.at(layer)) {
        if (!read_back.ok()) break;
        read_back = (*back)->ReadLinearWeight(m->name, m->module).status();
      }
    }
    if (!read_back.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the checkpoint written to ", spec.out,
                       " does not read back (a bug: please report it): ", read_back.message()));
    }
  }
  return absl::OkStatus();
}

// report.json, written last: it says the checkpoint is done.
absl::Status WriteReport(const model::Checkpoint& checkpoint, const job::JobSpec& spec,
                         const std::vector<ModuleReport>& modules, double seconds,
                         std::vector<format::FinetuneBlockReport> finetune,
                         const storage::StorageOptions& options) {
  // report.json last.
  format::CheckpointReport report;
  report.finetune = std::move(finetune);
  report.request_id = spec.request_id;
  report.matrices = modules;
  report.totals = format::ComputeTotals(modules, seconds);
  if (const model::HeadSharing* hs = checkpoint.head_sharing(); hs != nullptr && !hs->empty()) {
    report.head_sharing.shared_groups = static_cast<int64_t>(hs->shares.size());
    for (const ModuleReport& m : modules) {
      for (const model::AliasedSlice& s : model::AliasedSlices(*hs, m.layer, m.module)) {
        report.head_sharing.aliased_params +=
            static_cast<double>(s.size * (model::SharesColumns(m.module) ? m.rows : m.cols));
      }
    }
  }
  if (auto put = storage::WriteObject(storage::JoinKey(spec.out, "report.json"),
                                      format::SerializeCheckpointReport(report), options);
      !put.ok()) {
    return put.status();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Finalize(const model::Checkpoint& checkpoint, const FinalizeRequest& request,
                      const StepEnvironment& env) {
  const job::JobSpec& spec = request.spec;
  const storage::StorageOptions& options = env.storage;
  std::vector<ModuleReport> modules = request.modules;
  // --target-bits: each block's allocated candidates (as the sequential
  // calibration of the next block chose them).
  if (spec.target_bits > 0) {
    if (absl::Status s = ResolveBudgetChoices(&modules, options); !s.ok()) return s;
  }
  // Fine-tuning: the tuned artifacts over the chosen ones, the tuned norms
  // over the input's.
  if (absl::Status s = ApplyTunedArtifacts(request.tuned_artifacts, options, &modules); !s.ok()) {
    return s;
  }
  std::map<std::string, Tensor> tuned_norms;
  std::vector<format::FinetuneBlockReport> finetune;
  for (const std::string& uri : request.finetune_blocks) {
    absl::StatusOr<format::FinetuneBlockFile> block = ReadFinetuneBlockAt(uri, options);
    if (!block.ok()) return block.status();
    for (auto& [name, t] : block->norms) tuned_norms.emplace(name, std::move(t));
    finetune.push_back(block->report);
  }
  std::sort(finetune.begin(), finetune.end(),
            [](const auto& a, const auto& b) { return a.layer < b.layer; });
  std::sort(modules.begin(), modules.end(), [](const ModuleReport& a, const ModuleReport& b) {
    return std::make_pair(a.layer, ModuleOrder(a.module)) <
           std::make_pair(b.layer, ModuleOrder(b.module));
  });
  // Layers with compressed modules, in order; plus shard 1 for the rest.
  ModulesByLayer by_layer;
  std::set<std::string> compressed;
  for (const ModuleReport& m : modules) {
    by_layer[m.layer].push_back(&m);
    compressed.insert(m.name + ".weight");
  }
  format::ShardedCheckpointWriter shards(
      1 + static_cast<int>(by_layer.size()),
      [&](const std::string& name, const std::string& bytes) -> absl::Status {
        const std::string uri = storage::JoinKey(spec.out, name);
        if (auto put = storage::WriteObject(uri, bytes, options); !put.ok()) {
          return Annotate(put.status(), absl::StrCat("writing ", uri));
        }
        return absl::OkStatus();
      });
  if (absl::Status st =
          WriteShards(checkpoint, by_layer, compressed, std::move(tuned_norms), options, shards);
      !st.ok()) {
    return st;
  }
  // The head sharing map, when the records leave heads out: before the read
  // back below, which needs it (docs/format/head-sharing.md).
  if (checkpoint.head_sharing() != nullptr && !checkpoint.head_sharing()->empty()) {
    const std::string uri = storage::JoinKey(spec.out, model::kHeadSharingFile);
    if (auto put = storage::WriteObject(
            uri, model::SerializeHeadSharing(*checkpoint.head_sharing()), options);
        !put.ok()) {
      return Annotate(put.status(), absl::StrCat("writing ", uri));
    }
  }

  // The input's tokenizer, generation and chat-template files, unchanged, so
  // the output loads where the input did.
  if (absl::StatusOr<std::vector<std::string>> copied =
          model_io::CopyCompanionFiles(spec.model, spec.out, options);
      !copied.ok()) {
    return Annotate(copied.status(), "copying the model's tokenizer and generation files");
  }

  if (absl::Status st = WriteConfig(spec, modules, options); !st.ok()) return st;
  if (absl::Status st = shards.WriteIndex(); !st.ok()) return st;
  if (absl::Status st = ReadBack(spec, by_layer, options); !st.ok()) return st;
  return WriteReport(checkpoint, spec, modules, request.seconds, std::move(finetune), options);
}

}  // namespace caldera::pipeline
