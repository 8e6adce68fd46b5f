#include "operations/compressed_tensors_export.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/format/compressed_tensors.h"
#include "core/format/matrix_record.h"
#include "core/format/quantization_config.h"
#include "core/format/safetensors.h"
#include "core/format/sharded_checkpoint.h"
#include "core/quant/quantized_tensors.h"
#include "model_io/companion_files.h"
#include "model_io/model_inputs.h"
#include "nlohmann/json.hpp"
#include "operations/peft_adapter.h"
#include "storage/object_store.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::operations {
namespace {

// What the plan decided for one linear.
struct Planned {
  std::string module, name;  // "model.layers.0.self_attn.q_proj", "q_proj"
  bool dense = false;        // kept dense by compress: written as .weight, ignored
  format::PackQuantizedScheme scheme;
  int64_t rank = 0;  // L·R rank (0: none)
};

absl::Status Refuse(const std::string& module, absl::string_view what, absl::string_view fix) {
  return absl::InvalidArgumentError(
      absl::StrCat("export --format compressed-tensors: module '", module, "' has ", what,
                   ", which compressed-tensors cannot store (vLLM's int kernels run int4/int8 "
                   "q·scale only); ",
                   fix));
}

constexpr char kRecompress[] = "compress with --serve vllm, or export --format hf for a dense copy";

// Checks one compressed linear's record against what the format holds.
absl::StatusOr<Planned> PlanModule(const model::Checkpoint& ckpt,
                                   const format::QuantizationConfig* qc, const std::string& module,
                                   const std::string& name) {
  Planned p;
  p.module = module;
  p.name = name;
  if (ckpt.ReaderFor(module + ".weight") != nullptr) {
    p.dense = true;
    return p;
  }
  const SafetensorsReader* reader =
      ckpt.ReaderFor(absl::StrCat(module, ".", format::kRecordConfigName));
  if (reader == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("model ", ckpt.name(), ": neither '", module,
                                                   ".weight' nor a CALDERA record of it"));
  }
  for (const TensorInfo& t : reader->tensors()) {
    if (absl::StartsWith(t.name, module + ".ttlora.")) {
      return Refuse(module, "a TT-LoRA adapter (--ttlora-rank)", "compress without --ttlora-rank");
    }
  }
  absl::StatusOr<NamedTensors> record = format::ReadRecord(*reader, module);
  if (!record.ok()) return record.status();
  const Tensor* config_tensor = quant::FindTensor(*record, format::kRecordConfigName);
  if (config_tensor == nullptr)
    return absl::InvalidArgumentError(module + ": record has no config");
  absl::StatusOr<format::MatrixRecordConfig> c =
      format::RecordConfigFromTensor(*config_tensor, module);
  if (!c.ok()) return c.status();
  if (c->q.kind != "int") {
    return Refuse(
        module,
        absl::StrCat("Q on the ", c->q.kind, " grid (", c->q.bits, " bits",
                     c->q.kind == "e8p" ? ", an E8P lattice codebook" : ", mid-rise levels", ")"),
        kRecompress);
  }
  if (c->hadamard) {
    return Refuse(module, "the randomized Hadamard transform (--incoherence rht)",
                  "compress with --serve vllm (--incoherence none)");
  }
  if (c->global_scale != 1.0 || c->padded_rows != c->rows || c->padded_cols != c->cols) {
    return Refuse(module, "a global scale or padding", kRecompress);
  }
  if (c->rank > 0 && model::ExpertIndex(name) >= 0) {
    // transformers 5 holds a mixture's experts fused: a per-expert LoRA
    // adapter has nothing to attach to (as export --format peft).
    return Refuse(module, "an expert's L·R (a per-expert LoRA adapter)",
                  "compress the experts without L·R (e.g. --method ldlq --quantizer int "
                  "--serve vllm), or export --format hf");
  }
  if (c->rank > 0 && (c->lr.kind != "float" || c->lr.bits != 16)) {
    return Refuse(module, absl::StrCat("L·R in ", c->lr.bits, "-bit ", c->lr.kind),
                  "compress with --serve vllm (--lr-bits 16: a 16-bit LoRA adapter)");
  }
  const std::vector<int64_t> want = model::LinearShape(ckpt.config(), name);
  if (want != std::vector<int64_t>{c->rows, c->cols}) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", ckpt.name(), ": the record of '", module, "' is ", c->rows, "x",
                     c->cols, " but config.json implies ", want[0], "x", want[1]));
  }
  if (qc != nullptr) {
    auto it = qc->modules.find(module);
    if (it == qc->modules.end() || it->second.rows != c->rows || it->second.cols != c->cols ||
        it->second.rank != c->rank) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model ", ckpt.name(), ": the record of '", module,
          "' disagrees with config.json's quantization_config (rows, cols or rank; or the module "
          "is missing there); the checkpoint is inconsistent: compress it again"));
    }
  }
  const int64_t group = std::min(c->q.group_size, c->cols);
  const bool kernel_group =
      group == c->cols || c->q.group_size == 32 || c->q.group_size == 64 || c->q.group_size == 128;
  if (c->cols % group != 0 || !kernel_group) {
    return Refuse(module,
                  absl::StrCat(c->cols, " columns in groups of ", c->q.group_size,
                               " (vLLM's kernels take groups of 32, 64 or 128 that divide the "
                               "row, or one scale per row)"),
                  "compress with --serve vllm, which allows only those");
  }
  p.scheme = format::SchemeFor(c->q.bits, c->cols, c->q.group_size);
  p.rank = c->rank;
  return p;
}

// The tensors of a planned quantized linear.
absl::Status AddPacked(const model::Checkpoint& ckpt, const Planned& p, DType scale_dtype,
                       format::ShardedCheckpointWriter* shards) {
  const SafetensorsReader* reader =
      ckpt.ReaderFor(absl::StrCat(p.module, ".", format::kRecordConfigName));
  absl::StatusOr<NamedTensors> record = format::ReadRecord(*reader, p.module);
  if (!record.ok()) return record.status();
  const Tensor* codes = quant::FindTensor(*record, "caldera.q.codes");
  const Tensor* scales = quant::FindTensor(*record, "caldera.q.scales");
  if (codes == nullptr || scales == nullptr || codes->dtype() != DType::kU8) {
    return absl::InvalidArgumentError(absl::StrCat(p.module, ": the int record lacks its codes"));
  }
  const std::vector<int64_t> shape = model::LinearShape(ckpt.config(), p.name);
  absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> packed = format::PackQuantizedTensors(
      p.module, p.scheme.bits, shape[0], shape[1], codes->data<uint8_t>(), *scales, scale_dtype);
  if (!packed.ok()) return packed.status();
  for (auto& [name, t] : *packed) {
    if (absl::Status s = shards->Add(name, std::move(t)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// `t` in `dtype` when it is a float tensor.
absl::StatusOr<Tensor> InDType(Tensor t, DType dtype) {
  if (!IsFloatingPoint(t.dtype()) || t.dtype() == dtype) return t;
  return t.ConvertTo(dtype);
}

// Writes OUT/base (and OUT/adapter) for a checked plan.
absl::Status Write(const model::Checkpoint& ckpt, const std::string& model,
                   const std::string& config_text, const std::vector<Planned>& plan,
                   const std::pair<DType, std::string>& dtype, const std::string& out,
                   const storage::StorageOptions& options) {
  const std::string base = storage::JoinKey(out, "base");
  const model::ModelConfig& config = ckpt.config();
  format::ShardedCheckpointWriter shards(
      1 + static_cast<int>(config.num_layers),
      [&](const std::string& name, const std::string& bytes) -> absl::Status {
        absl::StatusOr<storage::ObjectInfo> put =
            storage::WriteObject(storage::JoinKey(base, name), bytes, options);
        return put.ok() ? absl::OkStatus() : put.status();
      });
  for (const SafetensorsReader* reader : ckpt.readers()) {
    for (const TensorInfo& info : reader->tensors()) {
      if (absl::StartsWith(info.name, "model.layers.")) continue;
      absl::StatusOr<Tensor> t = reader->Read(info.name);
      if (t.ok()) t = InDType(*std::move(t), dtype.first);
      if (!t.ok()) return t.status();
      if (absl::Status s = shards.Add(info.name, *std::move(t)); !s.ok()) return s;
    }
  }
  if (absl::Status s = shards.FinishShard(); !s.ok()) return s;
  PeftAdapterBuilder adapter(0, dtype.first);
  size_t next = 0;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    const std::string prefix = config.LayerPrefix(layer);
    for (; next < plan.size() && absl::StartsWith(plan[next].module, prefix); ++next) {
      const Planned& p = plan[next];
      absl::StatusOr<Tensor> w = ckpt.ReadLinearWeight(p.module, p.name);
      if (!w.ok()) return w.status();
      if (p.dense) {
        w = InDType(*std::move(w), dtype.first);
        if (!w.ok()) return w.status();
        if (absl::Status s = shards.Add(p.module + ".weight", *std::move(w)); !s.ok()) return s;
        continue;
      }
      if (absl::Status s = AddPacked(ckpt, p, dtype.first, &shards); !s.ok()) return s;
      // The adapter keeps L and R (the base it returns is unused: Q is packed).
      if (auto split = adapter.Split(ckpt, p.module, p.name, *std::move(w)); !split.ok()) {
        return split.status();
      }
    }
    for (const SafetensorsReader* reader : ckpt.readers()) {
      for (const TensorInfo& info : reader->tensors()) {
        if (!absl::StartsWith(info.name, prefix) || shards.Contains(info.name) ||
            absl::StrContains(info.name, ".caldera.")) {
          continue;
        }
        absl::StatusOr<Tensor> t = reader->Read(info.name);
        if (t.ok()) t = InDType(*std::move(t), dtype.first);
        if (!t.ok()) return t.status();
        if (absl::Status s = shards.Add(info.name, *std::move(t)); !s.ok()) return s;
      }
    }
    if (absl::Status s = shards.FinishShard(); !s.ok()) return s;
  }
  if (auto copied = model_io::CopyCompanionFiles(model, base, options); !copied.ok()) {
    return copied.status();
  }
  // One config group per scheme, its modules in model order; dense linears and
  // lm_head in ignore.
  std::map<format::PackQuantizedScheme, std::vector<std::string>> by_scheme;
  std::vector<std::string> ignore;
  for (const Planned& p : plan) {
    if (p.dense) {
      ignore.push_back(p.module);
    } else {
      by_scheme[p.scheme].push_back(p.module);
    }
  }
  ignore.push_back("lm_head");
  std::vector<format::PackQuantizedGroup> groups;
  for (auto& [scheme, modules] : by_scheme) groups.push_back({scheme, std::move(modules)});
  absl::StatusOr<std::string> text = format::PackQuantizedModelConfig(
      config_text, absl::StrCat(model, "/config.json"), dtype.second, groups, ignore);
  if (!text.ok()) return text.status();
  if (auto put = storage::WriteObject(storage::JoinKey(base, "config.json"), *text, options);
      !put.ok()) {
    return put.status();
  }
  if (absl::Status s = shards.WriteIndex(); !s.ok()) return s;
  bool any_lr = false;
  for (const Planned& p : plan) any_lr |= p.rank > 0;
  if (!any_lr) return absl::OkStatus();
  absl::StatusOr<std::string> adapter_config = adapter.ConfigJson(BaseModelName(base));
  if (!adapter_config.ok()) return adapter_config.status();
  absl::StatusOr<std::string> tensors = adapter.SafetensorsBytes();
  if (!tensors.ok()) return tensors.status();
  const std::string dir = storage::JoinKey(out, "adapter");
  if (auto put = storage::WriteObject(storage::JoinKey(dir, "adapter_config.json"), *adapter_config,
                                      options);
      !put.ok()) {
    return put.status();
  }
  auto put =
      storage::WriteObject(storage::JoinKey(dir, "adapter_model.safetensors"), *tensors, options);
  return put.ok() ? absl::OkStatus() : put.status();
}

}  // namespace

absl::Status RequireEmptyOutput(const std::string& out, const storage::StorageOptions& options) {
  absl::StatusOr<storage::StoreAndKey> at = storage::OpenUri(out, options);
  if (!at.ok()) return at.status();
  std::string prefix = at->key;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  absl::StatusOr<storage::ListPage> page = at->store->List(prefix, "", 1);
  if (!page.ok()) {
    return page.status().code() == absl::StatusCode::kNotFound ? absl::OkStatus() : page.status();
  }
  if (!page->objects.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--out ", out, " already holds files (", page->objects.front().key,
        "); export writes into a new or empty folder: choose another --out or remove it"));
  }
  return absl::OkStatus();
}

namespace {

// The local path of `out`, or "" for an object-store URI.
std::string LocalPath(const std::string& out) {
  if (absl::StartsWith(out, "file://")) return out.substr(7);
  return out.find("://") == std::string::npos ? out : "";
}

}  // namespace

bool LocalFolderExists(const std::string& out) {
  const std::string path = LocalPath(out);
  std::error_code ec;
  return !path.empty() && std::filesystem::is_directory(path, ec);
}

void RemoveFailedExport(const std::string& out, bool existed,
                        const storage::StorageOptions& options) {
  (void)storage::RemovePrefix(out, options);
  const std::string path = LocalPath(out);
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_directory(path, ec)) return;
  // Directories are not objects: remove the (now empty) ones, deepest first;
  // remove() refuses a non-empty one, so nothing else can go.
  std::vector<std::filesystem::path> dirs;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) dirs.push_back(it->path());
  }
  std::sort(dirs.begin(), dirs.end(),
            [](const auto& a, const auto& b) { return a.string().size() > b.string().size(); });
  for (const auto& d : dirs) std::filesystem::remove(d, ec);
  if (!existed) std::filesystem::remove(path, ec);
}

absl::Status ExportCompressedTensors(const std::string& model, const std::string& out,
                                     const std::string& dtype_flag,
                                     const storage::StorageOptions& options) {
  absl::StatusOr<std::string> text =
      storage::ReadObject(storage::JoinKey(model, "config.json"), options);
  if (!text.ok()) return text.status();
  std::pair<DType, std::string> dtype{DType::kF16, "float16"};
  if (dtype_flag.empty()) {
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    const auto it = j.is_object() ? j.find("torch_dtype") : j.end();
    if (it != j.end() && it->is_string() && it->get<std::string>() == "float32") {
      dtype = {DType::kF32, "float32"};
    }
  } else if (dtype_flag == "f32" || dtype_flag == "float32") {
    dtype = {DType::kF32, "float32"};
  } else if (dtype_flag != "f16" && dtype_flag != "float16") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--format compressed-tensors takes --dtype f16 or f32 (the scales are fp16 values, which ",
        "bf16 would round), not ", dtype_flag.substr(0, 40)));
  }
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
      model_io::OpenCheckpointAt(model, options);
  if (!ckpt.ok()) return ckpt.status();
  if ((*ckpt)->head_sharing() != nullptr && !(*ckpt)->head_sharing()->empty()) {
    return absl::InvalidArgumentError(
        "export --format compressed-tensors: the checkpoint shares attention heads between "
        "layers (--share-heads), which compressed-tensors cannot store; compress without "
        "--share-heads (or with --serve vllm)");
  }
  absl::StatusOr<format::QuantizationConfig> qc =
      format::ReadQuantizationConfig(*text, absl::StrCat(model, "/config.json"));
  if (!qc.ok() && qc.status().code() != absl::StatusCode::kNotFound) return qc.status();
  std::vector<Planned> plan;
  for (int64_t layer = 0; layer < (*ckpt)->config().num_layers; ++layer) {
    for (const model::BlockLinear& m : model::BlockLinears((*ckpt)->config())) {
      absl::StatusOr<Planned> p =
          PlanModule(**ckpt, qc.ok() ? &*qc : nullptr,
                     (*ckpt)->config().LayerPrefix(layer) + m.suffix, m.name);
      if (!p.ok()) return p.status();
      plan.push_back(*std::move(p));
    }
  }
  if (std::all_of(plan.begin(), plan.end(), [](const Planned& p) { return p.dense; })) {
    return absl::InvalidArgumentError(
        absl::StrCat("export --format compressed-tensors: ", model,
                     " has no compressed linear (a dense model?); compress it with --serve vllm"));
  }
  if (absl::Status s = RequireEmptyOutput(out, options); !s.ok()) return s;
  const bool existed = LocalFolderExists(out);
  absl::Status s = Write(**ckpt, model, *text, plan, dtype, out, options);
  if (!s.ok()) RemoveFailedExport(out, existed, options);  // nothing half written
  return s;
}

}  // namespace caldera::operations
