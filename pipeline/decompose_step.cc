#include "pipeline/decompose_step.h"

#include <algorithm>
#include <chrono>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/format/matrix_artifact.h"
#include "core/model/head_sharing.h"
#include "core/model/model_config.h"
#include "job/bit_budget.h"
#include "model_io/hessians_reader.h"
#include "pipeline/budget_candidates.h"
#include "pipeline/step_status.h"
#include "storage/storage.h"

namespace caldera::pipeline {

using format::ModuleReport;
using Clock = std::chrono::steady_clock;
using job::BudgetCandidate;
using job::BudgetWindow;
using job::CandidateOptions;

AdapterSettings AdapterSettingsFor(const job::JobSpec& spec) {
  AdapterSettings a;
  a.rank = spec.ttlora_rank;
  a.init = spec.ttlora_init;
  a.alpha = spec.ttlora_alpha;
  a.seed = spec.seed;
  return a;
}

absl::StatusOr<MatrixDecomposition> DecomposeMatrix(const quant::MatrixF& w,
                                                    const Eigen::MatrixXd& h,
                                                    const decompose::DecomposeOptions& options,
                                                    const AdapterSettings& adapter) {
  MatrixDecomposition out;
  absl::StatusOr<decompose::DecomposeResult> r = decompose::Decompose(w, h, options);
  if (!r.ok()) return r.status();
  out.result = *std::move(r);
  if (!adapter.Enabled()) return out;
  const int64_t m = w.rows(), n = w.cols();
  absl::StatusOr<ttlora::AdapterShape> shape =
      adapter.shape.empty() ? ttlora::DefaultShape(m, n) : ttlora::ParseShape(adapter.shape, m, n);
  if (!shape.ok()) return shape.status();
  absl::StatusOr<ttlora::InitResult> init =
      ttlora::InitializeAdapter(w, out.result.w_hat, h.cast<float>(), *shape, adapter.rank,
                                adapter.alpha, adapter.init, adapter.seed);
  if (!init.ok()) return init.status();
  out.adapter = *std::move(init);
  return out;
}

namespace {

// What one decompose task works on: the module's weight without the slices
// --share-heads aliases to an earlier layer (q/k/v lose rows, o_proj columns:
// docs/format/head-sharing.md) and the Hessian that matches it (o_proj's loses
// the same rows and columns).
struct StoredMatrix {
  std::string prefix;  // the weight's tensor-name prefix
  int64_t layer = 0;
  std::string module;
  int64_t rows = 0, cols = 0;  // the module's full shape
  bool has_aliased = false;    // some of it is stored at the source layer
  quant::MatrixF w;            // the stored part
  Eigen::MatrixXd hessian;     // matching w's columns
};

absl::StatusOr<StoredMatrix> ReadStoredMatrix(const model::Checkpoint& checkpoint, int64_t layer,
                                              const model::BlockLinear& module,
                                              Eigen::MatrixXd hessian) {
  StoredMatrix sm;
  sm.prefix = checkpoint.config().LayerPrefix(layer) + module.suffix;
  sm.layer = layer;
  sm.module = module.name;
  absl::StatusOr<Tensor> wt = checkpoint.ReadLinearWeight(sm.prefix, module.name);
  if (!wt.ok()) return wt.status();
  sm.rows = wt->dim(0);
  sm.cols = wt->dim(1);
  if (hessian.rows() != sm.cols || hessian.cols() != sm.cols) {
    return absl::InvalidArgumentError(absl::StrCat(sm.prefix, ": the Hessian is ", hessian.rows(),
                                                   "x", hessian.cols(), " but the weight has ",
                                                   sm.cols, " columns"));
  }
  // The rank is checked against the matrix once, when the job is validated
  // (job/job_validation.h); the decomposition refuses one out of range too.
  const std::vector<model::AliasedSlice> aliased =
      checkpoint.head_sharing() == nullptr
          ? std::vector<model::AliasedSlice>{}
          : model::AliasedSlices(*checkpoint.head_sharing(), layer, module.name);
  sm.has_aliased = !aliased.empty();
  if (sm.has_aliased) {
    const bool columns = model::SharesColumns(module.name);
    absl::StatusOr<Tensor> kept = model::RemoveAliased(*wt, aliased, columns);
    if (!kept.ok()) return Annotate(kept.status(), sm.prefix);
    if (columns) {
      const std::vector<int64_t> ki = model::KeptIndices(sm.cols, aliased);
      const int64_t k = static_cast<int64_t>(ki.size());
      Eigen::MatrixXd reduced(k, k);
      for (int64_t i = 0; i < k; ++i) {
        for (int64_t j = 0; j < k; ++j) {
          reduced(i, j) = hessian(ki[static_cast<size_t>(i)], ki[static_cast<size_t>(j)]);
        }
      }
      hessian = std::move(reduced);
    }
    wt = *std::move(kept);
  }
  sm.hessian = std::move(hessian);
  const int64_t r = wt->dim(0), c = wt->dim(1);
  sm.w.resize(r, c);
  std::span<const float> wd = wt->data<float>();
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < c; ++j) sm.w(i, j) = wd[i * c + j];
  }
  return sm;
}

// The settings a task decomposes with: the job's one setting, or under
// --target-bits the window of the budget's candidates (job/bit_budget.h), each
// with its label; the block's allocation picks one of them later
// (ResolveBudgetChoices).
struct TaskSettings {
  std::vector<decompose::DecomposeOptions> options;
  std::vector<std::string> labels;
};

absl::StatusOr<TaskSettings> SettingsFor(const job::JobSpec& spec, const StoredMatrix& sm) {
  TaskSettings t;
  if (spec.target_bits == 0) {
    t.options.push_back(DecomposeOptionsFor(spec));
    t.options.back().rank = job::RankFor(spec, sm.rows, sm.cols);
    t.labels.push_back("");
    return t;
  }
  for (const BudgetCandidate& c :
       BudgetWindow(spec.target_bits, spec.lr_bits, sm.w.rows(), sm.w.cols(), spec.serve)) {
    t.options.push_back(CandidateOptions(spec, c));
    t.labels.push_back(c.Label());
  }
  if (t.options.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--target-bits ", spec.target_bits,
                                                   ": no setting for ", sm.prefix, " (", sm.rows,
                                                   "x", sm.cols, "); raise --target-bits"));
  }
  return t;
}

// Serializes one decomposition's artifact (record, report, adapter) to `uri`
// and returns its report.
absl::StatusOr<ModuleReport> WriteArtifact(const StoredMatrix& sm, MatrixDecomposition* d,
                                           const decompose::DecomposeOptions& o,
                                           const std::string& setting, const std::string& uri,
                                           Clock::time_point start, const StepEnvironment& env,
                                           int64_t expert_tokens, double prior_share) {
  decompose::DecomposeResult* r = &d->result;
  ModuleReport rep;
  rep.setting = setting;
  rep.name = sm.prefix;
  rep.artifact = uri;
  rep.layer = sm.layer;
  rep.module = sm.module;
  rep.rows = sm.rows;
  rep.cols = sm.cols;
  rep.rank = o.rank;
  rep.expert_tokens = expert_tokens;
  rep.hessian_prior_share = expert_tokens >= 0 ? prior_share : 0.0;
  rep.relative_error = r->relative_error;
  rep.weighted_relative_error = r->weighted_relative_error;
  rep.bits_per_param = r->bits_per_param;
  rep.storage_bits = r->storage_bits;
  if (sm.has_aliased) {
    // Stored bits over the module's parameters: aliased heads count once, at
    // their source.
    rep.bits_per_param =
        static_cast<double>(r->storage_bits) / static_cast<double>(sm.rows * sm.cols);
  }
  format::MatrixArtifact artifact;
  artifact.prefix = sm.prefix;
  if (d->adapter.has_value()) {
    rep.ttlora_params = d->adapter->adapter.Params();
    rep.ttlora_weighted_error_before = d->adapter->weighted_error_before;
    rep.ttlora_weighted_error_after = d->adapter->weighted_error_after;
    artifact.adapter = ttlora::AdapterFile({sm.prefix}, d->adapter->adapter);
  }
  if (env.IsCancelled()) return absl::CancelledError("the job was cancelled");
  rep.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  artifact.report = rep;
  artifact.record = std::move(r->record);
  absl::StatusOr<std::string> bytes = format::SerializeMatrixArtifact(std::move(artifact));
  if (!bytes.ok()) return bytes.status();
  if (auto put = storage::WriteObject(uri, *bytes, env.storage); !put.ok()) {
    return Annotate(put.status(), absl::StrCat("writing ", uri));
  }
  return rep;
}

// The candidate a reader that does not allocate sees (the task's reported
// error): the one that fits the budget alone with the lowest weighted error,
// or the cheapest when none fits.
bool PreferredPrimary(const ModuleReport& candidate, const std::optional<ModuleReport>& primary,
                      double target_bits) {
  if (!primary.has_value()) return true;
  const bool fits = candidate.bits_per_param <= target_bits + 1e-9;
  const bool primary_fits = primary->bits_per_param <= target_bits + 1e-9;
  if (fits != primary_fits) return fits;
  return fits ? candidate.weighted_relative_error < primary->weighted_relative_error
              : candidate.storage_bits < primary->storage_bits;
}

}  // namespace

absl::StatusOr<DecomposeResult> Decompose(const model::Checkpoint& checkpoint,
                                          const DecomposeRequest& request,
                                          const StepEnvironment& env) {
  const std::optional<model::BlockLinear> module =
      model::FindBlockLinear(checkpoint.config(), request.module);
  if (!module.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown module '", request.module.substr(0, 40), "'"));
  }
  const job::JobSpec& spec = request.spec;
  const std::string& artifact_uri = request.artifact_uri;
  IoCounts io;
  absl::StatusOr<Eigen::MatrixXd> hessian = model_io::ReadShardedHessian(
      request.hessians_uris, module->hessian, env.storage, &io.bytes_read);
  if (!hessian.ok()) return hessian.status();
  // An expert's calibration tokens and fallback share, for its report (a
  // mixture's calibration is never sharded: job/job_validation.cc).
  int64_t expert_tokens = -1;
  double prior_share = 0;
  if (const int64_t e = model::ExpertIndex(request.module); e >= 0) {
    if (request.hessians_uris.size() != 1) {
      return absl::InvalidArgumentError(
          "a mixture-of-experts layer's calibration cannot be sharded");
    }
    absl::StatusOr<std::pair<int64_t, double>> t =
        model_io::ReadExpertTokens(request.hessians_uris[0], e, env.storage);
    if (!t.ok()) return t.status();
    expert_tokens = t->first;
    prior_share = t->second;
  }
  const auto start = Clock::now();
  absl::StatusOr<StoredMatrix> sm =
      ReadStoredMatrix(checkpoint, request.layer, *module, *std::move(hessian));
  if (!sm.ok()) return sm.status();
  const AdapterSettings adapter = AdapterSettingsFor(spec);
  if (adapter.Enabled() && sm->has_aliased) {
    return absl::InvalidArgumentError(
        absl::StrCat(sm->prefix, ": --share-heads cannot be combined with --ttlora-rank"));
  }
  absl::StatusOr<TaskSettings> settings = SettingsFor(spec, *sm);
  if (!settings.ok()) return settings.status();
  // Decomposes with one setting and writes its artifact to `uri`.
  auto run = [&](size_t i, const std::string& uri) -> absl::StatusOr<ModuleReport> {
    decompose::DecomposeOptions o = settings->options[i];
    o.threads = env.search_threads;
    o.cancelled = env.cancelled;
    o.backend = env.compute;
    // A module without its aliased heads (--share-heads) may be thinner than --rank.
    o.rank = std::min(o.rank, std::min(sm->w.rows(), sm->w.cols()));
    absl::StatusOr<MatrixDecomposition> d = DecomposeMatrix(sm->w, sm->hessian, o, adapter);
    if (!d.ok()) return Annotate(d.status(), sm->prefix);
    return WriteArtifact(*sm, &*d, o, settings->labels[i], uri, start, env, expert_tokens,
                         prior_share);
  };
  // The task's report and byte counts once its artifact is written.
  auto finish = [&](ModuleReport rep) -> DecomposeResult {
    io.bytes_read += rep.rows * rep.cols * 4;
    io.bytes_written += rep.storage_bits / 8;
    return DecomposeResult{std::move(rep), io};
  };
  if (spec.target_bits == 0) {
    absl::StatusOr<ModuleReport> rep = run(0, artifact_uri);
    if (!rep.ok()) return rep.status();
    return finish(*std::move(rep));
  }
  // Every candidate's artifact next to the primary one (attempt-unique like
  // it), then the list, then a copy of the primary (PreferredPrimary).
  BudgetCandidateList list;
  list.target_bits = spec.target_bits;
  list.params = sm->rows * sm->cols;
  {
    Eigen::MatrixXf hw = sm->hessian.cast<float>();
    list.weight_norm2 = static_cast<double>((sm->w * hw).cwiseProduct(sm->w).sum());
  }
  std::optional<ModuleReport> primary;
  for (size_t i = 0; i < settings->options.size(); ++i) {
    absl::StatusOr<ModuleReport> rep =
        run(i, CandidateArtifactUri(artifact_uri, static_cast<int>(i)));
    if (!rep.ok()) return rep.status();
    list.candidates.push_back(*rep);
    if (PreferredPrimary(*rep, primary, spec.target_bits)) primary = *rep;
  }
  const std::string list_uri = CandidateListUri(artifact_uri);
  if (auto put = storage::WriteObject(list_uri, SerializeCandidateList(list), env.storage);
      !put.ok()) {
    return Annotate(put.status(), absl::StrCat("writing ", list_uri));
  }
  absl::StatusOr<std::string> bytes = storage::ReadObject(primary->artifact, env.storage);
  if (!bytes.ok()) return Annotate(bytes.status(), absl::StrCat("reading ", primary->artifact));
  if (auto put = storage::WriteObject(artifact_uri, *bytes, env.storage); !put.ok()) {
    return Annotate(put.status(), absl::StrCat("writing ", artifact_uri));
  }
  primary->artifact = artifact_uri;
  return finish(*std::move(primary));
}

}  // namespace caldera::pipeline
