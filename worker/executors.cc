#include "worker/executors.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/decompose/caldera.h"
#include "core/decompose/record.h"
#include "core/format/checkpoint_report.h"
#include "core/format/hessians.h"
#include "core/format/json_fields.h"
#include "core/format/matrix_artifact.h"
#include "core/format/quantization_config.h"
#include "core/format/safetensors.h"
#include "core/format/sharded_checkpoint.h"
#include "core/model/head_sharing.h"
#include "core/model/hessians_file.h"
#include "core/model/hidden_states.h"
#include "core/model/llama_block.h"
#include "core/model/model_runner.h"
#include "core/ttlora/adapter.h"
#include "job/bit_allocation.h"
#include "job/bit_budget.h"
#include "job/memory_estimate.h"
#include "model_io/companion_files.h"
#include "model_io/hidden_states_stream.h"
#include "model_io/model_inputs.h"
#include "nlohmann/json.hpp"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::worker {
namespace {

using Clock = std::chrono::steady_clock;
using job::BudgetCandidate;
using job::BudgetWindow;
using job::CandidateOptions;

absl::Status Annotate(const absl::Status& s, absl::string_view what) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

int ModuleOrder(const std::string& name) {
  int i = 0;
  for (const model::LinearModule& m : model::kLinearModules) {
    if (name == m.name) return i;
    ++i;
  }
  return i;
}

// --target-bits: the candidates a decompose task stored for one matrix
// (<artifact>.candidates.json beside its artifact <artifact>.safetensors).
struct BudgetCandidateList {
  double target_bits = 0;
  int64_t params = 0;                    // the module's rows x cols
  double weight_norm2 = 0;               // tr(W H Wᵀ) of the stored part
  std::vector<ModuleReport> candidates;  // uri (artifact), setting, bits, errors
};

std::string CandidateStem(const std::string& artifact_uri) {
  constexpr absl::string_view kExt = ".safetensors";
  if (absl::EndsWith(artifact_uri, kExt)) {
    return artifact_uri.substr(0, artifact_uri.size() - kExt.size());
  }
  return artifact_uri;
}

std::string CandidateArtifactUri(const std::string& artifact_uri, int i) {
  return absl::StrCat(CandidateStem(artifact_uri), ".c", i, ".safetensors");
}

std::string CandidateListUri(const std::string& artifact_uri) {
  return absl::StrCat(CandidateStem(artifact_uri), ".candidates.json");
}

std::string SerializeCandidateList(const BudgetCandidateList& l) {
  nlohmann::json j;
  j["target_bits"] = l.target_bits;
  j["params"] = l.params;
  j["weight_norm2"] = l.weight_norm2;
  nlohmann::json cands = nlohmann::json::array();
  for (const ModuleReport& c : l.candidates) {
    nlohmann::json e;
    e["artifact"] = c.artifact;
    e["setting"] = c.setting;
    e["storage_bits"] = c.storage_bits;
    e["bits_per_param"] = c.bits_per_param;
    e["weighted_relative_error"] = c.weighted_relative_error;
    cands.push_back(std::move(e));
  }
  j["candidates"] = std::move(cands);
  return j.dump(1);
}

absl::StatusOr<BudgetCandidateList> ParseCandidateList(absl::string_view text,
                                                       const std::string& where) {
  absl::StatusOr<nlohmann::json> j = format::ParseJsonObject(text, where);
  if (!j.ok()) return j.status();
  BudgetCandidateList l;
  format::JsonFields f(*j, where);
  f.RequireDouble("target_bits", &l.target_bits);
  f.RequireInt("params", &l.params);
  f.RequireDouble("weight_norm2", &l.weight_norm2);
  if (!f.ok()) return f.status();
  auto it = j->find("candidates");
  if (it == j->end() || !it->is_array() || it->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"candidates\" must be a non-empty array"));
  }
  for (const nlohmann::json& e : *it) {
    ModuleReport c;
    format::JsonFields g(e, absl::StrCat(where, ": candidate"));
    g.RequireString("artifact", &c.artifact);
    g.RequireString("setting", &c.setting);
    g.RequireInt("storage_bits", &c.storage_bits);
    g.RequireDouble("bits_per_param", &c.bits_per_param);
    g.RequireDouble("weighted_relative_error", &c.weighted_relative_error);
    if (!g.ok()) return g.status();
    l.candidates.push_back(std::move(c));
  }
  return l;
}

// What the block allocation minimises the sum of for one candidate: its
// Hessian-weighted squared error tr(E H Eᵀ) = wre² · tr(W H Wᵀ) (the
// module's share of the block's output error; see README "Quality").
double AllocationError(const BudgetCandidateList& l, const ModuleReport& c) {
  return c.weighted_relative_error * c.weighted_relative_error * l.weight_norm2;
}

// --target-bits: replaces each report of `reports` that carries a budget
// setting by the candidate the allocation of its block chooses
// (job/bit_allocation.h), read from that candidate's artifact. Blocks are
// allocated on their own, their modules in model order, so the sequential
// calibration (which builds the compressed block) and finalize choose the same.
absl::Status ResolveBudgetChoices(std::vector<ModuleReport>* reports,
                                  const storage::StorageOptions& options) {
  std::map<int64_t, std::vector<size_t>> layers;
  for (size_t i = 0; i < reports->size(); ++i) {
    if (!(*reports)[i].setting.empty()) layers[(*reports)[i].layer].push_back(i);
  }
  for (auto& [layer, idx] : layers) {
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      const ModuleReport &x = (*reports)[a], &y = (*reports)[b];
      return std::make_pair(ModuleOrder(x.module), x.name) <
             std::make_pair(ModuleOrder(y.module), y.name);
    });
    std::vector<BudgetCandidateList> lists;
    std::vector<job::AllocationItem> items;
    double target_bits = 0;
    for (size_t i : idx) {
      const std::string uri = CandidateListUri((*reports)[i].artifact);
      absl::StatusOr<std::string> text = storage::ReadObject(uri, options);
      if (!text.ok()) return Annotate(text.status(), absl::StrCat("reading ", uri));
      absl::StatusOr<BudgetCandidateList> l = ParseCandidateList(*text, uri);
      if (!l.ok()) return l.status();
      if (!lists.empty() && l->target_bits != target_bits) {
        return absl::InvalidArgumentError(absl::StrCat(uri, ": target bits ", l->target_bits,
                                                       ", the block's others ", target_bits));
      }
      target_bits = l->target_bits;
      job::AllocationItem item;
      item.params = l->params;
      for (size_t k = 0; k < l->candidates.size(); ++k) {
        const ModuleReport& c = l->candidates[k];
        // Only the task's own candidates, beside its artifact (the list is
        // scratch data: it must not point reads elsewhere).
        if (c.artifact != CandidateArtifactUri((*reports)[i].artifact, static_cast<int>(k))) {
          return absl::InvalidArgumentError(
              absl::StrCat(uri, ": candidate ", k, " is not beside its artifact"));
        }
        item.options.push_back({c.storage_bits, AllocationError(*l, c)});
      }
      items.push_back(std::move(item));
      lists.push_back(*std::move(l));
    }
    absl::StatusOr<std::vector<int>> choice = job::AllocateBits(items, target_bits);
    if (!choice.ok()) {
      return Annotate(choice.status(),
                      absl::StrCat("--target-bits ", target_bits, ", block ", layer));
    }
    for (size_t k = 0; k < idx.size(); ++k) {
      const ModuleReport& c = lists[k].candidates[static_cast<size_t>((*choice)[k])];
      absl::StatusOr<ModuleReport> rep = ReadModuleReport(c.artifact, options);
      if (!rep.ok()) return rep.status();
      (*reports)[idx[k]] = *std::move(rep);
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// Block `layer`'s weights with the linears of `artifacts` replaced by their
// compressed versions (rebuilt through the record reader eval uses).
absl::StatusOr<model::BlockWeights> CompressedBlock(const model::Checkpoint& checkpoint,
                                                    int64_t layer,
                                                    const std::vector<std::string>& artifacts,
                                                    const storage::StorageOptions& options,
                                                    IoCounts* io) {
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
    model::RowMatrixF* target = rep->module == "q_proj"      ? &w->q
                                : rep->module == "k_proj"    ? &w->k
                                : rep->module == "v_proj"    ? &w->v
                                : rep->module == "o_proj"    ? &w->o
                                : rep->module == "gate_proj" ? &w->gate
                                : rep->module == "up_proj"   ? &w->up
                                : rep->module == "down_proj" ? &w->down
                                                             : nullptr;
    if (target != nullptr && checkpoint.head_sharing() != nullptr && t->rank() == 2 &&
        (t->dim(0) != target->rows() || t->dim(1) != target->cols())) {
      // A record without its aliased heads (--share-heads): those come from
      // the source layer's weights as this checkpoint reads them (the input,
      // shared), not from the source's record, which this task does not see.
      const std::vector<model::AliasedSlice> slices =
          model::AliasedSlices(*checkpoint.head_sharing(), layer, rep->module);
      std::string suffix;
      for (const model::LinearModule& lm : model::kLinearModules) {
        if (rep->module == lm.name) suffix = lm.suffix;
      }
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

}  // namespace

absl::StatusOr<IoCounts> CalibrateLayer(
    const model::Checkpoint& checkpoint, int64_t layer, const std::string& input_uri,
    const std::string& hessians_uri, const std::string& hidden_out_uri,
    const storage::StorageOptions& options, const std::function<bool()>& cancelled, bool sequential,
    const std::vector<std::string>& previous_artifacts, int shard, int num_shards,
    DType hidden_dtype, backend::ComputeBackend* compute) {
  const model::ModelConfig& config = checkpoint.config();
  if (num_shards < 1 || shard < 0 || shard >= num_shards) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibrate: shard ", shard, " is outside [0, ", num_shards, ")"));
  }
  if (layer < 0 || layer >= config.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibrate: layer ", layer, " is outside [0, ", config.num_layers, ")"));
  }
  IoCounts io;
  // The input: token ids (layer 0, small) and the embedding table, or a
  // hidden-states file read chunk by chunk.
  int64_t samples = 0, seq_len = 0;
  model::TokenSet tokens;
  model::RowMatrixF embedding_table;
  std::unique_ptr<model_io::HiddenStatesSource> source;
  if (layer == 0) {
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
        model_io::OpenSafetensorsAt(input_uri, options);
    if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", input_uri));
    for (const TensorInfo& info : (*reader)->tensors()) {
      io.bytes_read += static_cast<int64_t>(info.end - info.begin);
    }
    absl::StatusOr<model::TokenSet> loaded = model::LoadTokens(**reader, config);
    if (!loaded.ok()) return loaded.status();
    tokens = *std::move(loaded);
    if (num_shards > 1) {
      const job::SampleRange r = job::ShardSamples(tokens.samples, shard, num_shards);
      if (r.end <= r.begin) {
        return absl::InvalidArgumentError(absl::StrCat("calibrate: shard ", shard, " of ",
                                                       num_shards, " holds none of the ",
                                                       tokens.samples, " samples of ", input_uri));
      }
      std::vector<int32_t> ids(tokens.ids.begin() + r.begin * tokens.seq_len,
                               tokens.ids.begin() + r.end * tokens.seq_len);
      tokens.ids = std::move(ids);
      tokens.samples = r.end - r.begin;
    }
    absl::StatusOr<model::RowMatrixF> table = model::ReadEmbeddingTable(checkpoint);
    if (!table.ok()) return table.status();
    embedding_table = *std::move(table);
    samples = tokens.samples;
    seq_len = tokens.seq_len;
  } else {
    absl::StatusOr<std::unique_ptr<model_io::HiddenStatesSource>> opened =
        model_io::HiddenStatesSource::Open(input_uri, options, config);
    if (!opened.ok()) return opened.status();
    source = *std::move(opened);
    const int64_t entering = sequential ? layer - 1 : layer;
    if (source->layout().layer != entering) {
      return absl::InvalidArgumentError(absl::StrCat(input_uri, " holds the states entering block ",
                                                     source->layout().layer, ", not block ",
                                                     entering));
    }
    io.bytes_read += static_cast<int64_t>(source->FileBytes());
    samples = source->layout().samples;
    seq_len = source->layout().seq_len;
  }
  // Sequential mode: the states entering `layer` come through the compressed
  // block layer-1; they are what calibrate(layer+1) continues from.
  std::optional<model::BlockWeights> previous;
  if (sequential && layer > 0) {
    absl::StatusOr<model::BlockWeights> prev =
        CompressedBlock(checkpoint, layer - 1, previous_artifacts, options, &io);
    if (!prev.ok()) return prev.status();
    previous = *std::move(prev);
  }
  if (cancelled && cancelled()) return absl::CancelledError("the job was cancelled");
  std::unique_ptr<model_io::HiddenStatesSink> sink;
  if (!hidden_out_uri.empty()) {
    format::HiddenStatesLayout out_layout;
    out_layout.layer = sequential ? layer : layer + 1;
    out_layout.samples = samples;
    out_layout.seq_len = seq_len;
    out_layout.hidden_size = config.hidden_size;
    out_layout.dtype = hidden_dtype;
    absl::StatusOr<std::unique_ptr<model_io::HiddenStatesSink>> created =
        model_io::HiddenStatesSink::Create(hidden_out_uri, options, out_layout);
    if (!created.ok()) return Annotate(created.status(), absl::StrCat("writing ", hidden_out_uri));
    sink = *std::move(created);
  }
  absl::StatusOr<model::BlockWeights> weights = model::LoadBlock(checkpoint, layer);
  if (!weights.ok()) return weights.status();
  model::BlockHessians hessians = model::BlockHessians::Zeros(config);
  // The block (and the previous, compressed one) through the compute
  // backend: model::BlockForward on the CPU, resident on a device.
  backend::CpuBackend cpu;
  backend::ComputeBackend& be = compute != nullptr ? *compute : cpu;
  absl::StatusOr<std::unique_ptr<backend::BlockRunner>> block =
      be.PrepareBlock(config, *weights, seq_len, &hessians);
  if (!block.ok())
    return Annotate(block.status(), absl::StrCat("block ", layer, " on ", be.Name()));
  std::unique_ptr<backend::BlockRunner> previous_block;
  if (previous.has_value()) {
    absl::StatusOr<std::unique_ptr<backend::BlockRunner>> prepared =
        be.PrepareBlock(config, *previous, seq_len, nullptr);
    if (!prepared.ok()) {
      return Annotate(prepared.status(), absl::StrCat("block ", layer - 1, " on ", be.Name()));
    }
    previous_block = *std::move(prepared);
  }
  // Sequences per chunk: as job/memory_estimate.h sizes the task.
  const int64_t chunk = job::CalibrateChunkSamples(config, samples, seq_len);
  model::RowMatrixF states, sequence;
  // One sequence per forward (as RunLayer with batch_sequences = 1), so a
  // sequence's activations do not depend on the chunking or the sharding.
  auto run_block = [&](backend::BlockRunner& runner) -> absl::Status {
    for (int64_t r0 = 0; r0 < states.rows(); r0 += seq_len) {
      sequence = states.middleRows(r0, seq_len);
      if (absl::Status s = runner.Forward(&sequence); !s.ok()) return s;
      states.middleRows(r0, seq_len) = sequence;
    }
    return absl::OkStatus();
  };
  for (int64_t s0 = 0; s0 < samples; s0 += chunk) {
    const int64_t n = std::min(chunk, samples - s0);
    if (layer == 0) {
      model::EmbedIds(embedding_table,
                      std::span<const int32_t>(tokens.ids).subspan(s0 * seq_len, n * seq_len),
                      &states);
    } else if (absl::Status s = source->Read(s0, n, &states); !s.ok()) {
      return Annotate(s, absl::StrCat("reading ", input_uri));
    }
    if (previous_block != nullptr) {
      if (absl::Status s = run_block(*previous_block); !s.ok()) return s;
    }
    if (sequential && sink != nullptr) {
      if (absl::Status s = sink->Append(states); !s.ok()) return s;
    }
    if (absl::Status s = run_block(**block); !s.ok()) return s;
    if (!sequential && sink != nullptr) {
      if (absl::Status s = sink->Append(states); !s.ok()) return s;
    }
    if (cancelled && cancelled()) return absl::CancelledError("the job was cancelled");
  }
  if (absl::Status s = (*block)->Flush(); !s.ok()) return s;
  // Only the Hessians are needed from here: free the rest before converting them.
  block->reset();
  previous_block.reset();
  model::RowMatrixF().swap(states);
  model::RowMatrixF().swap(sequence);
  model::RowMatrixF().swap(embedding_table);
  weights = model::BlockWeights();
  previous.reset();
  for (Eigen::MatrixXd* h :
       {&hessians.q_proj, &hessians.o_proj, &hessians.gate_proj, &hessians.down_proj}) {
    model::Symmetrize(h);
  }
  absl::StatusOr<format::Hessians> normalised =
      model::NormalisedHessians(std::move(hessians), layer);
  if (!normalised.ok()) return normalised.status();
  // Streamed from the matrices to the store (S3: multipart), with neither a
  // serialised copy nor a local file: one write of the file's bytes.
  absl::StatusOr<storage::StoreAndKey> where = storage::OpenUri(hessians_uri, options);
  if (!where.ok()) return Annotate(where.status(), absl::StrCat("writing ", hessians_uri));
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> body =
      format::HessiansSource(*std::move(normalised), hessians_uri);
  if (!body.ok()) return body.status();
  absl::StatusOr<storage::ObjectInfo> put = where->store->Put(where->key, **body);
  if (!put.ok()) return Annotate(put.status(), absl::StrCat("writing ", hessians_uri));
  io.bytes_written += static_cast<int64_t>(put->size);
  if (sink != nullptr) {
    absl::StatusOr<int64_t> streamed = sink->Finish();
    if (!streamed.ok()) return streamed.status();
    io.bytes_written += *streamed;
  }
  return io;
}

absl::StatusOr<Eigen::MatrixXd> ReadHessian(const std::string& hessians_uri,
                                            const std::string& name,
                                            const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(hessians_uri, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", hessians_uri));
  absl::StatusOr<Tensor> t = format::ReadHessian(**reader, name);
  if (!t.ok()) return t.status();
  Eigen::MatrixXd h(t->dim(0), t->dim(1));
  std::span<const double> d = t->data<double>();
  std::copy(d.begin(), d.end(), h.data());  // symmetric: storage order does not matter
  return h;
}

absl::StatusOr<Eigen::MatrixXd> ReadShardedHessian(const std::vector<std::string>& hessians_uris,
                                                   const std::string& name,
                                                   const storage::StorageOptions& options,
                                                   int64_t* bytes_read) {
  if (hessians_uris.empty()) return absl::InvalidArgumentError("no Hessians file to read");
  auto count = [&](const Eigen::MatrixXd& h) {
    if (bytes_read != nullptr) *bytes_read += h.size() * static_cast<int64_t>(sizeof(double));
  };
  if (hessians_uris.size() == 1) {
    absl::StatusOr<Eigen::MatrixXd> h = ReadHessian(hessians_uris[0], name, options);
    if (h.ok()) count(*h);
    return h;
  }
  Eigen::MatrixXd sum;
  int64_t total_tokens = 0;
  for (const std::string& uri : hessians_uris) {  // shard order: the summation order
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
        model_io::OpenSafetensorsAt(uri, options);
    if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", uri));
    absl::StatusOr<int64_t> tokens = format::ReadHessiansTokens(**reader);
    if (!tokens.ok()) return tokens.status();
    absl::StatusOr<Tensor> t = format::ReadHessian(**reader, name);
    if (!t.ok()) return t.status();
    if (sum.size() == 0) {
      sum = Eigen::MatrixXd::Zero(t->dim(0), t->dim(1));
    } else if (t->dim(0) != sum.rows()) {
      return absl::InvalidArgumentError(absl::StrCat(uri, ": Hessian ", name, " is ", t->dim(0),
                                                     "x", t->dim(1), ", other shards' are ",
                                                     sum.rows(), "x", sum.cols()));
    }
    std::span<const double> d = t->data<double>();
    const double w = static_cast<double>(*tokens);
    double* out = sum.data();  // symmetric: storage order does not matter
    for (size_t k = 0; k < d.size(); ++k) out[k] += w * d[k];
    total_tokens += *tokens;
    count(sum);
  }
  sum /= static_cast<double>(total_tokens);
  return sum;
}

absl::StatusOr<ModuleReport> ReadModuleReport(const std::string& artifact_uri,
                                              const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(artifact_uri, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", artifact_uri));
  absl::StatusOr<ModuleReport> m = format::ReadArtifactReport(**reader);
  if (!m.ok()) return m.status();
  m->artifact = artifact_uri;
  return m;
}

absl::StatusOr<ModuleReport> DecomposeModule(const model::Checkpoint& checkpoint, int64_t layer,
                                             const model::LinearModule& module,
                                             const Eigen::MatrixXd& hessian, const JobSpec& spec,
                                             const std::string& artifact_uri,
                                             const storage::StorageOptions& options,
                                             int search_threads, std::function<bool()> cancelled,
                                             backend::ComputeBackend* backend) {
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
  if (spec.target_bits == 0 && spec.method == "caldera" && spec.rank > std::min(m, n)) {
    return absl::InvalidArgumentError(absl::StrCat("--rank ", spec.rank, " is larger than ", prefix,
                                                   " (", m, "x", n,
                                                   "); use --rank <= ", std::min(m, n)));
  }
  // With --share-heads, the aliased heads' rows (q/k/v) or columns (o) are
  // not stored here: they are the source layer's (docs/format/head-sharing.md).
  // The record holds the rest; o_proj's Hessian loses the same rows and columns.
  const std::vector<model::AliasedSlice> aliased =
      checkpoint.head_sharing() == nullptr
          ? std::vector<model::AliasedSlice>{}
          : model::AliasedSlices(*checkpoint.head_sharing(), layer, module.name);
  Eigen::MatrixXd reduced_hessian;
  if (!aliased.empty()) {
    const bool columns = model::SharesColumns(module.name);
    absl::StatusOr<Tensor> kept = model::RemoveAliased(*wt, aliased, columns);
    if (!kept.ok()) return Annotate(kept.status(), prefix);
    if (columns) {
      const std::vector<int64_t> ki = model::KeptIndices(n, aliased);
      const int64_t k = static_cast<int64_t>(ki.size());
      reduced_hessian.resize(k, k);
      for (int64_t i = 0; i < k; ++i) {
        for (int64_t j = 0; j < k; ++j) {
          reduced_hessian(i, j) = hessian(ki[static_cast<size_t>(i)], ki[static_cast<size_t>(j)]);
        }
      }
    }
    wt = *std::move(kept);
  }
  const Eigen::MatrixXd& h_used = reduced_hessian.size() > 0 ? reduced_hessian : hessian;
  const int64_t sm = wt->dim(0), sn = wt->dim(1);  // the stored part
  quant::MatrixF w(sm, sn);
  std::span<const float> wd = wt->data<float>();
  for (int64_t r = 0; r < sm; ++r) {
    for (int64_t c = 0; c < sn; ++c) w(r, c) = wd[r * sn + c];
  }
  // One setting, or under --target-bits the window of the budget's
  // candidates (job/bit_budget.h), each stored; the block's allocation picks
  // one of them later (ResolveBudgetChoices).
  std::vector<decompose::DecomposeOptions> settings;
  std::vector<std::string> labels;
  if (spec.target_bits == 0) {
    settings.push_back(DecomposeOptionsFor(spec));
    labels.push_back("");
  } else {
    for (const BudgetCandidate& c : BudgetWindow(spec.target_bits, spec.lr_bits, sm, sn)) {
      settings.push_back(CandidateOptions(spec, c));
      labels.push_back(c.Label());
    }
    if (settings.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--target-bits ", spec.target_bits,
                                                     ": no setting for ", prefix, " (", m, "x", n,
                                                     "); raise --target-bits"));
    }
  }
  // Serializes one decomposition's artifact (record, report, adapter).
  auto make_artifact = [&](decompose::DecomposeResult* r, const decompose::DecomposeOptions& o,
                           const std::string& setting,
                           const std::string& uri) -> absl::StatusOr<ModuleReport> {
    ModuleReport rep;
    rep.setting = setting;
    rep.name = prefix;
    rep.artifact = uri;
    rep.layer = layer;
    rep.module = module.name;
    rep.rows = m;
    rep.cols = n;
    rep.rank = o.rank;
    rep.relative_error = r->relative_error;
    rep.weighted_relative_error = r->weighted_relative_error;
    rep.bits_per_param = r->bits_per_param;
    rep.storage_bits = r->storage_bits;
    if (!aliased.empty()) {
      // Stored bits over the module's parameters: aliased heads count once,
      // at their source.
      rep.bits_per_param = static_cast<double>(r->storage_bits) / static_cast<double>(m * n);
    }
    format::MatrixArtifact artifact;
    artifact.prefix = prefix;
    if (spec.ttlora_rank > 0) {
      absl::StatusOr<ttlora::AdapterShape> shape = ttlora::DefaultShape(m, n);
      if (!shape.ok()) return Annotate(shape.status(), prefix);
      if (!aliased.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(prefix, ": --share-heads cannot be combined with --ttlora-rank"));
      }
      absl::StatusOr<ttlora::InitResult> init =
          ttlora::InitializeAdapter(w, r->w_hat, hessian.cast<float>(), *shape, spec.ttlora_rank,
                                    16.0, spec.ttlora_init, spec.seed);
      if (!init.ok()) return Annotate(init.status(), prefix);
      rep.ttlora_params = init->adapter.Params();
      rep.ttlora_weighted_error_before = init->weighted_error_before;
      rep.ttlora_weighted_error_after = init->weighted_error_after;
      artifact.adapter = ttlora::AdapterFile({prefix}, init->adapter);
    }
    if (cancelled && cancelled()) return absl::CancelledError("the job was cancelled");
    rep.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    artifact.report = rep;
    artifact.record = std::move(r->record);
    absl::StatusOr<std::string> bytes = format::SerializeMatrixArtifact(std::move(artifact));
    if (!bytes.ok()) return bytes.status();
    if (auto put = storage::WriteObject(uri, *bytes, options); !put.ok()) {
      return Annotate(put.status(), absl::StrCat("writing ", uri));
    }
    return rep;
  };
  auto run = [&](const decompose::DecomposeOptions& base)
      -> std::pair<absl::StatusOr<decompose::DecomposeResult>, decompose::DecomposeOptions> {
    decompose::DecomposeOptions oi = base;
    oi.threads = search_threads;
    oi.cancelled = cancelled;
    oi.backend = backend;
    // A module without its aliased heads (--share-heads) may be thinner than --rank.
    if (oi.rank > std::min(sm, sn)) oi.rank = std::min(sm, sn);
    return {decompose::Decompose(w, h_used, oi), oi};
  };
  if (spec.target_bits == 0) {
    auto [r, oi] = run(settings[0]);
    if (!r.ok()) return Annotate(r.status(), prefix);
    return make_artifact(&*r, oi, "", artifact_uri);
  }
  // Every candidate's artifact next to the primary one (attempt-unique like
  // it), then the list, then the primary: the candidate that fits alone with
  // the lowest weighted error (or the cheapest when none does), which is what
  // a reader that does not allocate (the task's reported error) sees.
  BudgetCandidateList list;
  list.target_bits = spec.target_bits;
  list.params = m * n;
  {
    Eigen::MatrixXf hw = h_used.cast<float>();
    list.weight_norm2 = static_cast<double>((w * hw).cwiseProduct(w).sum());
  }
  std::optional<ModuleReport> primary;
  std::string primary_bytes_uri;
  for (size_t i = 0; i < settings.size(); ++i) {
    auto [r, oi] = run(settings[i]);
    if (!r.ok()) return Annotate(r.status(), prefix);
    const std::string uri = CandidateArtifactUri(artifact_uri, static_cast<int>(i));
    absl::StatusOr<ModuleReport> rep = make_artifact(&*r, oi, labels[i], uri);
    if (!rep.ok()) return rep.status();
    list.candidates.push_back(*rep);
    const bool fits = rep->bits_per_param <= spec.target_bits + 1e-9;
    const bool primary_fits =
        primary.has_value() && primary->bits_per_param <= spec.target_bits + 1e-9;
    if (!primary.has_value() || (fits && !primary_fits) ||
        (fits == primary_fits &&
         (fits ? rep->weighted_relative_error < primary->weighted_relative_error
               : rep->storage_bits < primary->storage_bits))) {
      primary = *rep;
    }
  }
  const std::string list_uri = CandidateListUri(artifact_uri);
  if (auto put = storage::WriteObject(list_uri, SerializeCandidateList(list), options); !put.ok()) {
    return Annotate(put.status(), absl::StrCat("writing ", list_uri));
  }
  absl::StatusOr<std::string> bytes = storage::ReadObject(primary->artifact, options);
  if (!bytes.ok()) return Annotate(bytes.status(), absl::StrCat("reading ", primary->artifact));
  if (auto put = storage::WriteObject(artifact_uri, *bytes, options); !put.ok()) {
    return Annotate(put.status(), absl::StrCat("writing ", artifact_uri));
  }
  primary->artifact = artifact_uri;
  return *primary;
}

absl::Status FinalizeCheckpoint(const model::Checkpoint& checkpoint, const JobSpec& spec,
                                const std::vector<ModuleReport>& unsorted, double seconds,
                                const storage::StorageOptions& options) {
  std::vector<ModuleReport> modules = unsorted;
  // --target-bits: each block's allocated candidates (as the sequential
  // calibration of the next block chose them).
  if (spec.target_bits > 0) {
    if (absl::Status s = ResolveBudgetChoices(&modules, options); !s.ok()) return s;
  }
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
  format::ShardedCheckpointWriter shards(
      1 + static_cast<int>(by_layer.size()),
      [&](const std::string& name, const std::string& bytes) -> absl::Status {
        const std::string uri = storage::JoinKey(spec.out, name);
        if (auto put = storage::WriteObject(uri, bytes, options); !put.ok()) {
          return Annotate(put.status(), absl::StrCat("writing ", uri));
        }
        return absl::OkStatus();
      });
  // Shard 1: every tensor that is not a compressed weight, unchanged.
  for (const SafetensorsReader* reader : checkpoint.readers()) {
    for (const TensorInfo& info : reader->tensors()) {
      if (compressed.count(info.name) != 0) continue;
      absl::StatusOr<Tensor> t = reader->Read(info.name);
      if (!t.ok()) return t.status();
      if (absl::Status s = shards.Add(info.name, *std::move(t)); !s.ok()) return s;
    }
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

  // config.json: the input's, plus quantization_config.
  absl::StatusOr<std::string> config_text =
      storage::ReadObject(storage::JoinKey(spec.model, "config.json"), options);
  if (!config_text.ok()) return config_text.status();
  format::QuantizationConfig qc;
  qc.method = spec.method;
  qc.rank = spec.method == "caldera" ? spec.rank : 0;
  qc.q_bits = spec.q_bits;
  qc.lr_bits = spec.lr_bits;
  qc.quantizer = spec.quantizer;
  qc.iters = spec.iters;
  qc.lplr_iters = spec.lplr_iters;
  qc.seed = spec.seed;
  qc.ttlora_rank = spec.ttlora_rank;
  qc.ttlora_init = spec.ttlora_init;
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

  if (absl::Status s = shards.WriteIndex(); !s.ok()) return s;

  // Read back what was written before report.json says it is done: the
  // compressed modules of the first and last compressed layers are rebuilt
  // through the same path eval and export use (a checkpoint whose records
  // cannot be found or decoded must not end SUCCEEDED).
  if (!by_layer.empty()) {
    absl::StatusOr<std::unique_ptr<model::Checkpoint>> back =
        model_io::OpenCheckpointAt(spec.out, options);
    absl::Status read_back = back.status();
    for (int64_t layer : {by_layer.begin()->first, by_layer.rbegin()->first}) {
      for (const ModuleReport* m : by_layer[layer]) {
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

  // report.json last.
  format::CheckpointReport report;
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
  // A writer killed mid-write (a worker lost with its lease) leaves a
  // temporary file that List does not show.
  return sk->store->RemoveAbandonedWrites(prefix);
}

}  // namespace caldera::worker
