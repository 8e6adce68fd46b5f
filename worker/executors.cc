#include "worker/executors.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/decompose/caldera.h"
#include "core/decompose/record.h"
#include "core/format/safetensors.h"
#include "core/model/hidden_states.h"
#include "core/model/llama_block.h"
#include "core/model/model_runner.h"
#include "core/ttlora/adapter.h"
#include "model_io/model_inputs.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::worker {
namespace {

using Clock = std::chrono::steady_clock;

std::string ShardName(int i, int n) {
  return absl::StrFormat("model-%05d-of-%05d.safetensors", i, n);
}

absl::Status Annotate(const absl::Status& s, absl::string_view what) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

nlohmann::json ReportJson(const ModuleReport& m) {
  return {{"name", m.name},
          {"layer", m.layer},
          {"module", m.module},
          {"rows", m.rows},
          {"cols", m.cols},
          {"rank", m.rank},
          {"relative_error", m.relative_error},
          {"weighted_relative_error", m.weighted_relative_error},
          {"bits_per_param", m.bits_per_param},
          {"storage_bits", m.storage_bits},
          {"seconds", m.seconds},
          {"ttlora_params", m.ttlora_params},
          {"ttlora_weighted_error_before", m.ttlora_weighted_error_before},
          {"ttlora_weighted_error_after", m.ttlora_weighted_error_after}};
}

int ModuleOrder(const std::string& name) {
  int i = 0;
  for (const model::LinearModule& m : model::kLinearModules) {
    if (name == m.name) return i;
    ++i;
  }
  return i;
}

absl::StatusOr<Tensor> HessianTensor(const Eigen::MatrixXd& h, double inv_tokens) {
  const Eigen::MatrixXd scaled = h * inv_tokens;
  return Tensor::FromValues<double>(
      {scaled.rows(), scaled.cols()},
      std::span<const double>(scaled.data(), static_cast<size_t>(scaled.size())));
}

}  // namespace

absl::StatusOr<IoCounts> CalibrateLayer(const model::Checkpoint& checkpoint, int64_t layer,
                                        const std::string& input_uri,
                                        const std::string& hessians_uri,
                                        const std::string& hidden_out_uri,
                                        const storage::StorageOptions& options,
                                        const std::function<bool()>& cancelled) {
  const model::ModelConfig& config = checkpoint.config();
  if (layer < 0 || layer >= config.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibrate: layer ", layer, " is outside [0, ", config.num_layers, ")"));
  }
  IoCounts io;
  model::HiddenStates states;
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(input_uri, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", input_uri));
  for (const TensorInfo& info : (*reader)->tensors()) {
    io.bytes_read += static_cast<int64_t>(info.end - info.begin);
  }
  if (layer == 0) {
    absl::StatusOr<model::TokenSet> tokens = model::LoadTokens(**reader, config);
    if (!tokens.ok()) return tokens.status();
    absl::StatusOr<model::RowMatrixF> embedded = model::EmbedTokens(checkpoint, *tokens);
    if (!embedded.ok()) return embedded.status();
    states.samples = tokens->samples;
    states.seq_len = tokens->seq_len;
    states.values = *std::move(embedded);
  } else {
    absl::StatusOr<model::HiddenStates> read = model::ReadHiddenStates(**reader, config);
    if (!read.ok()) return read.status();
    if (read->layer != layer) {
      return absl::InvalidArgumentError(absl::StrCat(input_uri, " holds the states entering block ",
                                                     read->layer, ", not block ", layer));
    }
    states = *std::move(read);
  }
  if (cancelled && cancelled()) return absl::CancelledError("the job was cancelled");
  absl::StatusOr<model::BlockWeights> weights = model::LoadBlock(checkpoint, layer);
  if (!weights.ok()) return weights.status();
  model::BlockHessians hessians = model::BlockHessians::Zeros(config);
  if (absl::Status s = model::RunLayer(checkpoint, *weights, states.seq_len, model::RunOptions{},
                                       &states.values, &hessians);
      !s.ok()) {
    return s;
  }
  if (cancelled && cancelled()) return absl::CancelledError("the job was cancelled");
  const double inv = 1.0 / static_cast<double>(std::max<int64_t>(1, hessians.tokens));
  SafetensorsWriter writer;
  writer.SetMetadata("format", "caldera.hessians.v1");
  writer.SetMetadata("layer", absl::StrCat(layer));
  writer.SetMetadata("tokens", absl::StrCat(hessians.tokens));
  const std::pair<const char*, const Eigen::MatrixXd*> parts[] = {
      {"q_proj", &hessians.q_proj},
      {"o_proj", &hessians.o_proj},
      {"gate_proj", &hessians.gate_proj},
      {"down_proj", &hessians.down_proj}};
  for (const auto& [name, h] : parts) {
    absl::StatusOr<Tensor> t = HessianTensor(*h, inv);
    if (!t.ok()) return t.status();
    if (absl::Status s = writer.Add(name, *std::move(t)); !s.ok()) return s;
  }
  absl::StatusOr<std::string> bytes = writer.Serialize();
  if (!bytes.ok()) return bytes.status();
  if (auto put = storage::WriteObject(hessians_uri, *bytes, options); !put.ok()) {
    return Annotate(put.status(), absl::StrCat("writing ", hessians_uri));
  }
  io.bytes_written += static_cast<int64_t>(bytes->size());
  if (!hidden_out_uri.empty()) {
    states.layer = layer + 1;
    absl::StatusOr<std::string> out = model::SerializeHiddenStates(states);
    if (!out.ok()) return out.status();
    if (auto put = storage::WriteObject(hidden_out_uri, *out, options); !put.ok()) {
      return Annotate(put.status(), absl::StrCat("writing ", hidden_out_uri));
    }
    io.bytes_written += static_cast<int64_t>(out->size());
  }
  return io;
}

absl::StatusOr<Eigen::MatrixXd> ReadHessian(const std::string& hessians_uri,
                                            const std::string& name,
                                            const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(hessians_uri, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", hessians_uri));
  absl::StatusOr<Tensor> t = (*reader)->Read(name);
  if (!t.ok()) return t.status();
  if (t->dtype() != DType::kF64 || t->shape().size() != 2 || t->dim(0) != t->dim(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(hessians_uri, ": tensor ", name, " is not a square F64 matrix"));
  }
  Eigen::MatrixXd h(t->dim(0), t->dim(1));
  std::span<const double> d = t->data<double>();
  std::copy(d.begin(), d.end(), h.data());  // symmetric: storage order does not matter
  return h;
}

absl::StatusOr<ModuleReport> ReadModuleReport(const std::string& artifact_uri,
                                              const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(artifact_uri, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", artifact_uri));
  auto it = (*reader)->metadata().find("report");
  nlohmann::json j = it == (*reader)->metadata().end()
                         ? nlohmann::json()
                         : nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(artifact_uri, " has no valid \"report\" metadata; re-run the job"));
  }
  ModuleReport m;
  m.artifact = artifact_uri;
  m.name = j.value("name", "");
  m.layer = j.value("layer", int64_t{0});
  m.module = j.value("module", "");
  m.rows = j.value("rows", int64_t{0});
  m.cols = j.value("cols", int64_t{0});
  m.rank = j.value("rank", int64_t{0});
  m.relative_error = j.value("relative_error", 0.0);
  m.weighted_relative_error = j.value("weighted_relative_error", 0.0);
  m.bits_per_param = j.value("bits_per_param", 0.0);
  m.storage_bits = j.value("storage_bits", int64_t{0});
  m.seconds = j.value("seconds", 0.0);
  m.ttlora_params = j.value("ttlora_params", int64_t{0});
  m.ttlora_weighted_error_before = j.value("ttlora_weighted_error_before", 0.0);
  m.ttlora_weighted_error_after = j.value("ttlora_weighted_error_after", 0.0);
  return m;
}

absl::StatusOr<ModuleReport> DecomposeModule(const model::Checkpoint& checkpoint, int64_t layer,
                                             const model::LinearModule& module,
                                             const Eigen::MatrixXd& hessian, const JobSpec& spec,
                                             const std::string& artifact_uri,
                                             const storage::StorageOptions& options,
                                             int search_threads, std::function<bool()> cancelled) {
  const auto start = Clock::now();
  const std::string prefix = checkpoint.config().LayerPrefix(layer) + module.suffix;
  absl::StatusOr<Tensor> wt = checkpoint.ReadLinearWeight(prefix, module.name);
  if (!wt.ok()) return wt.status();
  const int64_t m = wt->dim(0), n = wt->dim(1);
  if (hessian.rows() != n || hessian.cols() != n) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, ": the Hessian is ", hessian.rows(), "x",
                                                   hessian.cols(), " but the weight has ", n,
                                                   " columns"));
  }
  if (spec.method == "caldera" && spec.rank > std::min(m, n)) {
    return absl::InvalidArgumentError(absl::StrCat("--rank ", spec.rank, " is larger than ", prefix,
                                                   " (", m, "x", n,
                                                   "); use --rank <= ", std::min(m, n)));
  }
  quant::MatrixF w(m, n);
  std::span<const float> wd = wt->data<float>();
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < n; ++c) w(r, c) = wd[r * n + c];
  }
  decompose::DecomposeOptions o = DecomposeOptionsFor(spec);
  o.threads = search_threads;
  o.cancelled = cancelled;
  absl::StatusOr<decompose::DecomposeResult> r = decompose::Decompose(w, hessian, o);
  if (!r.ok()) return Annotate(r.status(), prefix);
  ModuleReport rep;
  rep.name = prefix;
  rep.artifact = artifact_uri;
  rep.layer = layer;
  rep.module = module.name;
  rep.rows = m;
  rep.cols = n;
  rep.rank = o.rank;
  rep.relative_error = r->relative_error;
  rep.weighted_relative_error = r->weighted_relative_error;
  rep.bits_per_param = r->bits_per_param;
  rep.storage_bits = r->storage_bits;

  SafetensorsWriter writer;
  writer.SetMetadata("format", "caldera.matrix.v1");
  if (spec.ttlora_rank > 0) {
    absl::StatusOr<ttlora::AdapterShape> shape = ttlora::DefaultShape(m, n);
    if (!shape.ok()) return Annotate(shape.status(), prefix);
    absl::StatusOr<ttlora::InitResult> init =
        ttlora::InitializeAdapter(w, r->w_hat, hessian.cast<float>(), *shape, spec.ttlora_rank,
                                  16.0, spec.ttlora_init, spec.seed);
    if (!init.ok()) return Annotate(init.status(), prefix);
    rep.ttlora_params = init->adapter.Params();
    rep.ttlora_weighted_error_before = init->weighted_error_before;
    rep.ttlora_weighted_error_after = init->weighted_error_after;
    for (auto& [core_name, core] : init->adapter.ExportCores()) {
      if (absl::Status s = writer.Add(absl::StrCat(prefix, ".ttlora.", core_name), std::move(core));
          !s.ok()) {
        return s;
      }
    }
    writer.SetMetadata("ttlora_config", ttlora::AdapterConfigJson({prefix}, init->adapter));
  }
  if (cancelled && cancelled()) return absl::CancelledError("the job was cancelled");
  rep.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  writer.SetMetadata("report", ReportJson(rep).dump());
  if (absl::Status s = decompose::AddRecordTensors(std::move(r->record), prefix, &writer);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> bytes = writer.Serialize();
  if (!bytes.ok()) return bytes.status();
  if (auto put = storage::WriteObject(artifact_uri, *bytes, options); !put.ok()) {
    return Annotate(put.status(), absl::StrCat("writing ", artifact_uri));
  }
  return rep;
}

absl::Status FinalizeCheckpoint(const model::Checkpoint& checkpoint, const JobSpec& spec,
                                const std::vector<ModuleReport>& unsorted, double seconds,
                                const storage::StorageOptions& options) {
  std::vector<ModuleReport> modules = unsorted;
  std::sort(modules.begin(), modules.end(), [](const ModuleReport& a, const ModuleReport& b) {
    return std::make_pair(a.layer, ModuleOrder(a.module)) <
           std::make_pair(b.layer, ModuleOrder(b.module));
  });
  // Layers with compressed modules, in order; plus shard 1 for the rest.
  std::map<int64_t, std::vector<const ModuleReport*>> by_layer;
  std::set<std::string> compressed;
  for (const ModuleReport& m : modules) {
    by_layer[m.layer].push_back(&m);
    compressed.insert(m.name + ".weight");
  }
  const int shards = 1 + static_cast<int>(by_layer.size());
  CheckpointIndex index;
  uint64_t total_size = 0;
  auto put_shard = [&](const SafetensorsWriter& w, const std::string& name) -> absl::Status {
    absl::StatusOr<std::string> bytes = w.Serialize();
    if (!bytes.ok()) return bytes.status();
    total_size += bytes->size();
    const std::string uri = storage::JoinKey(spec.out, name);
    if (auto put = storage::WriteObject(uri, *bytes, options); !put.ok()) {
      return Annotate(put.status(), absl::StrCat("writing ", uri));
    }
    return absl::OkStatus();
  };
  {  // Shard 1: every tensor that is not a compressed weight, unchanged.
    SafetensorsWriter w;
    w.SetMetadata("format", "pt");
    const std::string name = ShardName(1, shards);
    for (const SafetensorsReader* reader : checkpoint.readers()) {
      for (const TensorInfo& info : reader->tensors()) {
        if (compressed.count(info.name) != 0) continue;
        absl::StatusOr<Tensor> t = reader->Read(info.name);
        if (!t.ok()) return t.status();
        if (absl::Status s = w.Add(info.name, *std::move(t)); !s.ok()) return s;
        index.weight_map[info.name] = name;
      }
    }
    if (absl::Status s = put_shard(w, name); !s.ok()) return s;
  }
  int shard = 2;
  for (const auto& [layer, mods] : by_layer) {
    SafetensorsWriter w;
    w.SetMetadata("format", "pt");
    const std::string name = ShardName(shard++, shards);
    for (const ModuleReport* m : mods) {
      absl::StatusOr<std::unique_ptr<RandomAccessSource>> src =
          storage::OpenObjectSource(m->artifact, options);
      if (!src.ok()) return Annotate(src.status(), absl::StrCat("artifact of ", m->name));
      absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
          SafetensorsReader::Open(*std::move(src));
      if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("artifact of ", m->name));
      for (const TensorInfo& info : (*reader)->tensors()) {
        absl::StatusOr<Tensor> t = (*reader)->Read(info.name);
        if (!t.ok()) return t.status();
        if (absl::Status s = w.Add(info.name, *std::move(t)); !s.ok()) return s;
        index.weight_map[info.name] = name;
      }
    }
    if (absl::Status s = put_shard(w, name); !s.ok()) return s;
  }

  // config.json: the input's, plus quantization_config.
  absl::StatusOr<std::string> config_text =
      storage::ReadObject(storage::JoinKey(spec.model, "config.json"), options);
  if (!config_text.ok()) return config_text.status();
  nlohmann::json config = nlohmann::json::parse(*config_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec.model, "/config.json is not a JSON object"));
  }
  nlohmann::json qc;
  qc["quant_method"] = "caldera";
  qc["format_version"] = kCheckpointFormatVersion;
  qc["method"] = spec.method;
  qc["rank"] = spec.method == "caldera" ? spec.rank : 0;
  qc["q_bits"] = spec.q_bits;
  qc["lr_bits"] = spec.lr_bits;
  qc["quantizer"] = spec.quantizer;
  qc["iters"] = spec.iters;
  qc["lplr_iters"] = spec.lplr_iters;
  qc["seed"] = spec.seed;
  qc["ttlora_rank"] = spec.ttlora_rank;
  qc["ttlora_init"] = spec.ttlora_init;
  nlohmann::json per_module = nlohmann::json::object();
  for (const ModuleReport& m : modules) {
    per_module[m.name] = {{"rows", m.rows},
                          {"cols", m.cols},
                          {"rank", m.rank},
                          {"bits_per_param", m.bits_per_param},
                          {"ttlora", m.ttlora_params > 0}};
  }
  qc["modules"] = per_module;
  config["quantization_config"] = qc;
  if (auto put =
          storage::WriteObject(storage::JoinKey(spec.out, "config.json"), config.dump(2), options);
      !put.ok()) {
    return put.status();
  }

  index.metadata["total_size"] = absl::StrCat(total_size);
  if (auto put = storage::WriteObject(storage::JoinKey(spec.out, "model.safetensors.index.json"),
                                      SerializeCheckpointIndex(index), options);
      !put.ok()) {
    return put.status();
  }

  // report.json last.
  nlohmann::json report;
  nlohmann::json mats = nlohmann::json::array();
  double bits = 0, params = 0, weighted_sq = 0, decompose_seconds = 0;
  for (const ModuleReport& m : modules) {
    mats.push_back(ReportJson(m));
    bits += static_cast<double>(m.storage_bits);
    params += static_cast<double>(m.rows * m.cols);
    weighted_sq += m.weighted_relative_error * m.weighted_relative_error;
    decompose_seconds += m.seconds;
  }
  report["format_version"] = kCheckpointFormatVersion;
  report["request_id"] = spec.request_id;
  report["matrices"] = mats;
  report["totals"] = {
      {"matrices", modules.size()},
      {"parameters", params},
      {"storage_bits", bits},
      {"bits_per_param", params > 0 ? bits / params : 0.0},
      {"rms_weighted_relative_error",
       modules.empty() ? 0.0 : std::sqrt(weighted_sq / static_cast<double>(modules.size()))},
      {"decompose_seconds", decompose_seconds},
      {"seconds", seconds}};
  if (auto put =
          storage::WriteObject(storage::JoinKey(spec.out, "report.json"), report.dump(2), options);
      !put.ok()) {
    return put.status();
  }
  return absl::OkStatus();
}

absl::Status RemovePrefix(const std::string& prefix_uri, const storage::StorageOptions& options) {
  absl::StatusOr<storage::StoreAndKey> sk = storage::OpenUri(prefix_uri, options);
  if (!sk.ok()) return sk.status();
  std::string prefix = sk->key;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  std::string token;
  do {
    absl::StatusOr<storage::ListPage> page = sk->store->List(prefix, token, 1000);
    if (!page.ok()) return page.status();
    for (const storage::ObjectInfo& o : page->objects) {
      if (absl::Status s = sk->store->Delete(o.key); !s.ok()) return s;
    }
    token = page->next_page_token;
  } while (!token.empty());
  return absl::OkStatus();
}

}  // namespace caldera::worker
