#include "pipeline/finetune_step.h"

#include <map>
#include <optional>
#include <set>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/decompose/caldera.h"
#include "core/format/matrix_record.h"
#include "core/format/safetensors.h"
#include "core/model/checkpoint.h"
#include "core/model/llama_block.h"
#include "core/model/model_runner.h"
#include "model_io/model_inputs.h"
#include "pipeline/step_status.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::pipeline {
namespace {

using model::RowMatrixF;

// The module's record in the checkpoint as a trainable linear (TunableIfExact).
absl::StatusOr<std::optional<finetune::TunableLinear>> Tunable(const model::Checkpoint& ckpt,
                                                               const std::string& prefix,
                                                               const RowMatrixF& dense) {
  const SafetensorsReader* reader =
      ckpt.ReaderFor(absl::StrCat(prefix, ".", format::kRecordConfigName));
  if (reader == nullptr) return std::nullopt;
  absl::StatusOr<NamedTensors> record = format::ReadRecord(*reader, prefix);
  if (!record.ok()) return record.status();
  return TunableIfExact(*record, dense);
}

// Rewrites every shard of the checkpoint at `uri` that holds a tensor of
// `replaced`, tensors in the same order, metadata kept.
absl::Status RewriteShards(const model::Checkpoint& ckpt, const std::string& uri,
                           std::map<std::string, Tensor> replaced, const StepEnvironment& env,
                           IoCounts* io) {
  std::map<std::string, std::string> shard_of;
  absl::StatusOr<std::string> index_json =
      storage::ReadObject(storage::JoinKey(uri, "model.safetensors.index.json"), env.storage);
  if (index_json.ok()) {
    absl::StatusOr<CheckpointIndex> index = ParseCheckpointIndex(*index_json, uri);
    if (!index.ok()) return index.status();
    shard_of = index->weight_map;
  } else if (index_json.status().code() != absl::StatusCode::kNotFound) {
    return index_json.status();
  }
  std::set<std::string> shards;
  for (const auto& [name, t] : replaced) {
    auto it = shard_of.find(name);
    shards.insert(it == shard_of.end() ? "model.safetensors" : it->second);
  }
  for (const std::string& shard : shards) {
    const SafetensorsReader* reader = nullptr;
    for (const auto& [name, t] : replaced) {
      auto it = shard_of.find(name);
      if ((it == shard_of.end() ? "model.safetensors" : it->second) == shard) {
        reader = ckpt.ReaderFor(name);
        break;
      }
    }
    if (reader == nullptr) return absl::InternalError(absl::StrCat("no reader for ", shard));
    SafetensorsWriter writer;
    for (const auto& [key, value] : reader->metadata()) writer.SetMetadata(key, value);
    for (const TensorInfo& info : reader->tensors()) {
      auto it = replaced.find(info.name);
      absl::StatusOr<Tensor> t = it != replaced.end()
                                     ? absl::StatusOr<Tensor>(std::move(it->second))
                                     : reader->Read(info.name);
      if (!t.ok()) return t.status();
      if (absl::Status s = writer.Add(info.name, *std::move(t)); !s.ok()) return s;
    }
    absl::StatusOr<std::string> bytes = writer.Serialize();
    if (!bytes.ok()) return bytes.status();
    const std::string key = storage::JoinKey(uri, shard);
    absl::StatusOr<storage::ObjectInfo> put = storage::WriteObject(key, *bytes, env.storage);
    if (!put.ok()) return Annotate(put.status(), absl::StrCat("writing ", key));
    io->bytes_written += static_cast<int64_t>(bytes->size());
  }
  return absl::OkStatus();
}

}  // namespace

void RunBlockOverSequences(const model::ModelConfig& config, const model::BlockWeights& weights,
                           int64_t seq_len, RowMatrixF* states) {
  const model::RopeTable rope = model::MakeRopeTable(config, seq_len);
  RowMatrixF sequence;
  for (int64_t r0 = 0; r0 < states->rows(); r0 += seq_len) {
    sequence = states->middleRows(r0, seq_len);
    model::BlockForward(config, weights, rope, seq_len, &sequence, nullptr);
    states->middleRows(r0, seq_len) = sequence;
  }
}

absl::StatusOr<std::optional<finetune::TunableLinear>> TunableIfExact(const NamedTensors& record,
                                                                      const RowMatrixF& dense) {
  absl::StatusOr<quant::MatrixF> w = decompose::Reconstruct(record);
  if (!w.ok()) return w.status();
  if (w->rows() != dense.rows() || w->cols() != dense.cols() ||
      (*w - dense).cwiseAbs().maxCoeff() > 1e-6f * (1 + dense.cwiseAbs().maxCoeff())) {
    return std::nullopt;
  }
  absl::StatusOr<finetune::TunableLinear> t = finetune::TunableLinear::FromRecord(record);
  if (!t.ok()) return t.status();
  return std::optional<finetune::TunableLinear>(*std::move(t));
}

absl::StatusOr<FineTuneResult> FineTune(const FineTuneRequest& request,
                                        const StepEnvironment& env) {
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> original =
      model_io::OpenCheckpointAt(request.original_model_uri, env.storage);
  if (!original.ok()) return original.status();
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> compressed =
      model_io::OpenCheckpointAt(request.checkpoint_uri, env.storage);
  if (!compressed.ok()) return compressed.status();
  const model::ModelConfig& config = (*compressed)->config();
  if (config.is_moe()) {
    return absl::UnimplementedError(
        absl::StrCat("fine-tuning does not support ", config.architecture,
                     " (mixture-of-experts blocks have no backward pass yet); compress without "
                     "--finetune-steps"));
  }
  if (config.qk_norm) {
    // The block's backward pass (core/model/llama_block_grad.h) has no q/k
    // head norms yet.
    return absl::UnimplementedError(absl::StrCat(
        "fine-tuning does not support ", config.architecture,
        " (its q/k head norms have no backward pass yet); compress without --finetune-steps"));
  }
  absl::StatusOr<model::TokenSet> tokens =
      model_io::LoadTokensAt(request.calibration_uri, config, env.storage);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<RowMatrixF> table = model::ReadEmbeddingTable(**original);
  if (!table.ok()) return table.status();
  const int64_t seq_len = tokens->seq_len;
  RowMatrixF states, original_states;
  model::EmbedIds(*table, tokens->ids, &states);
  if (request.target_from_original_states) original_states = states;

  FineTuneResult result;
  std::map<std::string, Tensor> replaced;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    if (env.IsCancelled()) return absl::CancelledError("the job was cancelled");
    absl::StatusOr<model::BlockWeights> reference = model::LoadBlock(**original, layer);
    if (!reference.ok()) return reference.status();
    absl::StatusOr<model::BlockWeights> block = model::LoadBlock(**compressed, layer);
    if (!block.ok()) return block.status();
    // The target: the original block on these inputs (or the original states).
    RowMatrixF target = request.target_from_original_states ? original_states : states;
    RunBlockOverSequences(config, *reference, seq_len, &target);
    std::array<std::optional<finetune::TunableLinear>, 7> linears;
    const RowMatrixF* dense[] = {&block->q,    &block->k,  &block->v,   &block->o,
                                 &block->gate, &block->up, &block->down};
    const std::string layer_prefix = config.LayerPrefix(layer);
    for (int i = 0; i < 7; ++i) {
      absl::StatusOr<std::optional<finetune::TunableLinear>> t =
          Tunable(**compressed, layer_prefix + model::kLinearModules[i].suffix, *dense[i]);
      if (!t.ok()) return t.status();
      linears[i] = *std::move(t);
    }
    finetune::FineTuneOptions tune = request.options;
    if (!tune.cancelled) tune.cancelled = env.cancelled;
    absl::StatusOr<finetune::BlockTuneResult> tuned =
        finetune::TuneBlock(config, seq_len, states, target, *block, std::move(linears), tune);
    if (!tuned.ok()) return Annotate(tuned.status(), absl::StrCat("fine-tuning block ", layer));
    if (!tuned->report.kept_input) {
      for (int i = 0; i < 7; ++i) {
        if (!tuned->records[i].has_value()) continue;
        const std::string prefix = layer_prefix + model::kLinearModules[i].suffix;
        for (auto& [name, t] : *tuned->records[i]) {
          replaced.emplace(absl::StrCat(prefix, ".", name), std::move(t));
        }
        ++result.modules_tuned;
      }
      if (request.options.tune_norms) {
        for (auto [name, norm] :
             {std::pair{"input_layernorm.weight", &tuned->weights.input_norm},
              std::pair{"post_attention_layernorm.weight", &tuned->weights.post_norm}}) {
          const std::string full = layer_prefix + name;
          const TensorInfo* info = (*compressed)->Find(full);
          if (info == nullptr) return absl::NotFoundError(absl::StrCat("no tensor ", full));
          absl::StatusOr<Tensor> t = Tensor::FromValues<float>(
              {norm->size()}, std::span<const float>(norm->data(), norm->size()));
          if (!t.ok()) return t.status();
          absl::StatusOr<Tensor> stored = t->ConvertTo(info->dtype);
          if (!stored.ok()) return stored.status();
          replaced.emplace(full, *std::move(stored));
        }
      }
    }
    RunBlockOverSequences(config, tuned->weights, seq_len, &states);
    if (request.target_from_original_states) {
      RunBlockOverSequences(config, *reference, seq_len, &original_states);
    }
    result.blocks.push_back(tuned->report);
    if (request.progress) request.progress(layer, tuned->report);
  }
  if (absl::Status s =
          RewriteShards(**compressed, request.checkpoint_uri, std::move(replaced), env, &result.io);
      !s.ok()) {
    return s;
  }
  return result;
}

}  // namespace caldera::pipeline
