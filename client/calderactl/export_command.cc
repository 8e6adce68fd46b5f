// calderactl export: rebuilds a plain dense checkpoint (every linear as
// <prefix>.weight) from a CALDERA checkpoint (docs/format/checkpoint.md).
//   --format dense: float32 linears (the reference for comparisons);
//   --format hf:    a Hugging Face checkpoint for transformers / vLLM / lm-eval:
//                   linears in --dtype (default: the model's torch_dtype),
//                   config.json without quantization_config and with that
//                   torch_dtype, every other tensor as in the input.
// Both copy the tokenizer, generation and chat-template files through. One
// shard for the non-layer tensors plus one per decoder layer, so at most one
// layer is held in memory.
#include <cstdio>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/format/quantization_config.h"
#include "core/format/safetensors.h"
#include "core/format/sharded_checkpoint.h"
#include "model_io/companion_files.h"
#include "nlohmann/json.hpp"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::cli {
namespace {

struct ExportFlags {
  std::string format = "dense", model, out, dtype;
};

// --dtype (or the model's torch_dtype for hf) as a tensor dtype and the
// torch_dtype name config.json gets.
absl::StatusOr<std::pair<DType, std::string>> ExportDType(const ExportFlags& f,
                                                          const std::string& config_text) {
  std::string want = f.dtype;
  if (want.empty() && f.format == "hf") {
    nlohmann::json j = nlohmann::json::parse(config_text, nullptr, false);
    const auto it = j.is_object() ? j.find("torch_dtype") : j.end();
    want = it != j.end() && it->is_string() ? it->get<std::string>() : "bf16";
  }
  if (want.empty() || want == "f32" || want == "float32") {
    return std::make_pair(DType::kF32, std::string("float32"));
  }
  if (want == "f16" || want == "float16")
    return std::make_pair(DType::kF16, std::string("float16"));
  if (want == "bf16" || want == "bfloat16") {
    return std::make_pair(DType::kBF16, std::string("bfloat16"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype ", want.substr(0, 40), " is unknown; use bf16, f16 or f32"));
}

absl::Status Export(const ExportFlags& f, const storage::StorageOptions& options) {
  if (f.format != "dense" && f.format != "hf") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--format ", f.format.substr(0, 40), " is unknown; the supported formats are dense, hf"));
  }
  if (f.format == "dense" && !f.dtype.empty() && f.dtype != "f32" && f.dtype != "float32") {
    return absl::InvalidArgumentError("--format dense is float32; use --format hf for --dtype");
  }
  absl::StatusOr<std::string> text =
      storage::ReadObject(storage::JoinKey(f.model, "config.json"), options);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::pair<DType, std::string>> dtype = ExportDType(f, *text);
  if (!dtype.ok()) return dtype.status();
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
      if (dtype->first != t->dtype()) t = t->ConvertTo(dtype->first);
      if (!t.ok()) return t.status();
      if (absl::Status s = shards.Add(module + ".weight", *std::move(t)); !s.ok()) return s;
    }
    // Everything else of the layer (norms, biases) unchanged; records and
    // adapter cores are dropped (the dense weight above already holds Ŵ plus
    // the adapter's α·ΔW, see model_io::OpenCheckpointAt).
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
  if (absl::StatusOr<std::vector<std::string>> copied =
          model_io::CopyCompanionFiles(f.model, f.out, options);
      !copied.ok()) {
    return copied.status();
  }
  absl::StatusOr<std::string> dense =
      format::DenseModelConfig(*text, absl::StrCat(f.model, "/config.json"), dtype->second);
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
      "export",
      "Rebuild a dense checkpoint from a CALDERA checkpoint: dense (float32 linears) or hf "
      "(a Hugging Face checkpoint that transformers, vLLM and lm-eval load)");
  cmd->add_option("--format", f->format, "output format: dense (default) | hf");
  cmd->add_option("--dtype", f->dtype,
                  "hf: dtype of the linears, bf16 | f16 | f32 (default: the model's torch_dtype)");
  cmd->add_option("--model", f->model, "CALDERA checkpoint directory URI")->required();
  cmd->add_option("--out", f->out, "output directory URI")->required();
  cmd->callback([f, exit_code] {
    const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
    absl::Status s = Export(*f, options);
    *exit_code = s.ok() ? kExitOk : ReportError("export", s);
    if (s.ok()) {
      std::printf("export: %s checkpoint written to %s\n", f->format.c_str(), f->out.c_str());
    }
  });
}

}  // namespace caldera::cli
