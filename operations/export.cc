#include "operations/export.h"

#include <filesystem>
#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/format/quantization_config.h"
#include "core/format/safetensors.h"
#include "core/format/sharded_checkpoint.h"
#include "model_io/companion_files.h"
#include "model_io/model_inputs.h"
#include "nlohmann/json.hpp"
#include "operations/compressed_tensors_export.h"
#include "operations/gguf_export.h"
#include "operations/peft_adapter.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::operations {
namespace {

// Turns a module's dense F32 weight into what the export writes (identity
// for dense and hf; base = weight - B·A for peft).
using LinearHook = std::function<absl::StatusOr<Tensor>(
    const model::Checkpoint& ckpt, const std::string& module, const std::string& name, Tensor w)>;

// --dtype (or the model's torch_dtype for hf) as a tensor dtype and the
// torch_dtype name config.json gets.
absl::StatusOr<std::pair<DType, std::string>> ExportDType(const ExportOptions& f,
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

// The dense checkpoint of `ckpt` (config text `text`) under `out`, linears
// passed through `hook` and converted to `dtype`.
absl::Status WriteDense(const ExportOptions& f, const model::Checkpoint& ckpt,
                        const std::string& text, const std::pair<DType, std::string>& dtype,
                        const std::string& out, const LinearHook& hook,
                        const storage::StorageOptions& options, const Listener& listener) {
  const model::ModelConfig& config = ckpt.config();
  format::ShardedCheckpointWriter shards(
      1 + static_cast<int>(config.num_layers),
      [&](const std::string& name, const std::string& bytes) -> absl::Status {
        absl::StatusOr<storage::ObjectInfo> put =
            storage::WriteObject(storage::JoinKey(out, name), bytes, options);
        return put.ok() ? absl::OkStatus() : put.status();
      });
  // Shard 1: tensors outside the decoder layers, unchanged.
  for (const SafetensorsReader* reader : ckpt.readers()) {
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
    // Dense linears (dequantised records or copies), a mixture's experts too.
    for (const model::BlockLinear& m : model::BlockLinears(config)) {
      const std::string module = prefix + m.suffix;
      absl::StatusOr<Tensor> t = ckpt.ReadLinearWeight(module, m.name);
      if (!t.ok()) return t.status();
      t = hook(ckpt, module, m.name, *std::move(t));
      if (!t.ok()) return t.status();
      if (dtype.first != t->dtype()) t = t->ConvertTo(dtype.first);
      if (!t.ok()) return t.status();
      if (absl::Status s = shards.Add(module + ".weight", *std::move(t)); !s.ok()) return s;
    }
    // Everything else of the layer (norms, biases) unchanged; records and
    // adapter cores are dropped (the dense weight above already holds Ŵ plus
    // the adapter's α·ΔW, see model_io::OpenCheckpointAt).
    for (const SafetensorsReader* reader : ckpt.readers()) {
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
    listener.Progress(layer + 1, config.num_layers, absl::StrCat("layer ", layer, " written"));
  }
  if (absl::StatusOr<std::vector<std::string>> copied =
          model_io::CopyCompanionFiles(f.model, out, options);
      !copied.ok()) {
    return copied.status();
  }
  absl::StatusOr<std::string> dense =
      format::DenseModelConfig(text, absl::StrCat(f.model, "/config.json"), dtype.second);
  if (!dense.ok()) return dense.status();
  if (auto put = storage::WriteObject(storage::JoinKey(out, "config.json"), *dense, options);
      !put.ok()) {
    return put.status();
  }
  return shards.WriteIndex();
}

// format peft: out/base and out/adapter (their paths returned).
absl::StatusOr<ExportResult> ExportPeft(const ExportOptions& f, const model::Checkpoint& ckpt,
                                        const std::string& text,
                                        const std::pair<DType, std::string>& dtype,
                                        const storage::StorageOptions& options,
                                        const Listener& listener) {
  if (ckpt.config().is_moe()) {
    // transformers 5 holds a mixture's experts fused (experts.gate_up_proj,
    // [experts, 2·width, hidden]), not as the per-expert Linear modules a
    // LoRA adapter per expert would target.
    return absl::InvalidArgumentError(absl::StrCat(
        "--format peft: ", ckpt.config().architecture,
        " is a mixture of experts, whose experts transformers holds fused, so a per-expert "
        "LoRA adapter cannot attach to them; use --format hf (the dense weights, L·R "
        "included)"));
  }
  PeftAdapterBuilder adapter(f.ft_rank, dtype.first);
  const LinearHook split = [&adapter](const model::Checkpoint& c, const std::string& module,
                                      const std::string& name, Tensor w) {
    return adapter.Split(c, module, name, std::move(w));
  };
  const std::string base = storage::JoinKey(f.out, "base");
  if (absl::Status s = WriteDense(f, ckpt, text, dtype, base, split, options, listener); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> config = adapter.ConfigJson(BaseModelName(base));
  if (!config.ok()) return config.status();
  absl::StatusOr<std::string> tensors = adapter.SafetensorsBytes();
  if (!tensors.ok()) return tensors.status();
  const std::string dir = storage::JoinKey(f.out, "adapter");
  if (auto put =
          storage::WriteObject(storage::JoinKey(dir, "adapter_config.json"), *config, options);
      !put.ok()) {
    return put.status();
  }
  auto put =
      storage::WriteObject(storage::JoinKey(dir, "adapter_model.safetensors"), *tensors, options);
  if (!put.ok()) return put.status();
  return ExportResult{base, dir};
}

}  // namespace

absl::StatusOr<ExportResult> Export(const ExportOptions& f, const storage::StorageOptions& options,
                                    const Listener& listener) {
  if (f.format != "dense" && f.format != "hf" && f.format != "peft" &&
      f.format != "compressed-tensors" && f.format != "gguf") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--format ", f.format.substr(0, 40),
        " is unknown; the supported formats are dense, hf, peft, compressed-tensors, gguf"));
  }
  if ((f.dense_fallback || f.merge_lr) && f.format != "gguf") {
    return absl::InvalidArgumentError(
        "--dense-fallback and --merge-lr are options of --format gguf only");
  }
  if (f.format == "gguf") {
    if (f.ft_rank != 0) {
      return absl::InvalidArgumentError("--ft-rank takes a rank >= 1 and only with --format peft");
    }
    absl::StatusOr<GgufExportResult> g =
        ExportGguf({f.model, f.out, f.dtype, f.dense_fallback, f.merge_lr}, options);
    if (!g.ok()) return g.status();
    return ExportResult{f.out, g->adapter};
  }
  if (f.format == "compressed-tensors") {
    if (f.ft_rank != 0) {
      return absl::InvalidArgumentError("--ft-rank takes a rank >= 1 and only with --format peft");
    }
    if (absl::Status s = ExportCompressedTensors(f.model, f.out, f.dtype, options); !s.ok()) {
      return s;
    }
    const std::string adapter = storage::JoinKey(f.out, "adapter");
    const bool has_adapter =
        storage::ReadObject(storage::JoinKey(adapter, "adapter_config.json"), options).ok();
    return ExportResult{storage::JoinKey(f.out, "base"), has_adapter ? adapter : ""};
  }
  if (f.format == "dense" && !f.dtype.empty() && f.dtype != "f32" && f.dtype != "float32") {
    return absl::InvalidArgumentError("--format dense is float32; use --format hf for --dtype");
  }
  if (f.ft_rank < 0 || (f.ft_rank > 0 && f.format != "peft")) {
    return absl::InvalidArgumentError("--ft-rank takes a rank >= 1 and only with --format peft");
  }
  absl::StatusOr<std::string> text =
      storage::ReadObject(storage::JoinKey(f.model, "config.json"), options);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::pair<DType, std::string>> dtype = ExportDType(f, *text);
  if (!dtype.ok()) return dtype.status();
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
      model_io::OpenCheckpointAt(f.model, options);
  if (!ckpt.ok()) return ckpt.status();
  if (f.format != "peft") {
    const LinearHook identity = [](const model::Checkpoint&, const std::string&, const std::string&,
                                   Tensor w) -> absl::StatusOr<Tensor> { return w; };
    if (absl::Status s = WriteDense(f, **ckpt, *text, *dtype, f.out, identity, options, listener);
        !s.ok()) {
      return s;
    }
    return ExportResult{f.out, ""};
  }
  // Nothing half written: the folder must be new or empty, and a failure
  // removes what this export wrote.
  if (absl::Status s = RequireEmptyOutput(f.out, options); !s.ok()) return s;
  const bool existed = LocalFolderExists(f.out);
  absl::StatusOr<ExportResult> r = ExportPeft(f, **ckpt, *text, *dtype, options, listener);
  if (!r.ok()) RemoveFailedExport(f.out, existed, options);
  return r;
}

}  // namespace caldera::operations
