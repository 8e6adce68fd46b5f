// calderactl export --format dense: rebuilds a plain dense checkpoint (every
// linear as <prefix>.weight, float32) from a CALDERA checkpoint
// (docs/format/checkpoint.md), loadable by standard tools. One shard for the
// non-layer tensors plus one shard per decoder layer, so at most one layer is
// held in memory.
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/format/quantization_config.h"
#include "core/format/safetensors.h"
#include "core/format/sharded_checkpoint.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::cli {
namespace {

struct ExportFlags {
  std::string format = "dense", model, out;
};

absl::Status Export(const ExportFlags& f, const storage::StorageOptions& options) {
  if (f.format != "dense") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format ", f.format, " is unknown; the supported format is dense"));
  }
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt = OpenCheckpointAt(f.model, options);
  if (!ckpt.ok()) return ckpt.status();
  const model::ModelConfig& config = (*ckpt)->config();
  format::ShardedCheckpointWriter shards(
      1 + static_cast<int>(config.num_layers),
      [&](const std::string& name, const std::string& bytes) -> absl::Status {
        absl::StatusOr<storage::ObjectInfo> put =
            storage::WriteObject(storage::JoinKey(f.out, name), bytes, options);
        return put.ok() ? absl::OkStatus() : put.status();
      });
  // Shard 1: tensors outside the decoder layers, unchanged.
  for (const SafetensorsReader* reader : (*ckpt)->readers()) {
    for (const TensorInfo& info : reader->tensors()) {
      if (absl::StartsWith(info.name, "model.layers.")) continue;
      absl::StatusOr<Tensor> t = reader->Read(info.name);
      if (!t.ok()) return t.status();
      if (absl::Status s = shards.Add(info.name, *std::move(t)); !s.ok()) return s;
    }
  }
  if (absl::Status s = shards.FinishShard(); !s.ok()) return s;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    const std::string prefix = config.LayerPrefix(layer);
    // Dense linears (dequantised records or copies).
    for (const model::LinearModule& m : model::kLinearModules) {
      const std::string module = prefix + m.suffix;
      absl::StatusOr<Tensor> t = (*ckpt)->ReadLinearWeight(module, m.name);
      if (!t.ok()) return t.status();
      if (absl::Status s = shards.Add(module + ".weight", *std::move(t)); !s.ok()) return s;
    }
    // Everything else of the layer (norms, biases) unchanged; records and
    // adapters are dropped.
    for (const SafetensorsReader* reader : (*ckpt)->readers()) {
      for (const TensorInfo& info : reader->tensors()) {
        if (!absl::StartsWith(info.name, prefix) || shards.Contains(info.name) ||
            absl::StrContains(info.name, ".caldera.") || absl::StrContains(info.name, ".ttlora.")) {
          continue;
        }
        absl::StatusOr<Tensor> t = reader->Read(info.name);
        if (!t.ok()) return t.status();
        if (absl::Status s = shards.Add(info.name, *std::move(t)); !s.ok()) return s;
      }
    }
    if (absl::Status s = shards.FinishShard(); !s.ok()) return s;
  }
  absl::StatusOr<std::string> text =
      storage::ReadObject(storage::JoinKey(f.model, "config.json"), options);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::string> dense =
      format::DenseModelConfig(*text, absl::StrCat(f.model, "/config.json"));
  if (!dense.ok()) return dense.status();
  if (auto put = storage::WriteObject(storage::JoinKey(f.out, "config.json"), *dense, options);
      !put.ok()) {
    return put.status();
  }
  return shards.WriteIndex();
}

}  // namespace

void AddExportCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<ExportFlags>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Rebuild a plain dense checkpoint (float32 linears) from a CALDERA checkpoint");
  cmd->add_option("--format", f->format, "output format: dense (default)");
  cmd->add_option("--model", f->model, "CALDERA checkpoint directory URI")->required();
  cmd->add_option("--out", f->out, "output directory URI")->required();
  cmd->callback([f, exit_code] {
    const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
    absl::Status s = Export(*f, options);
    *exit_code = s.ok() ? kExitOk : ReportError("export", s);
    if (s.ok()) std::printf("export: dense checkpoint written to %s\n", f->out.c_str());
  });
}

}  // namespace caldera::cli
