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

absl::StatusOr<DecomposeResult> Decompose(const model::Checkpoint& checkpoint,
                                          const DecomposeRequest& request,
                                          const StepEnvironment& env) {
  const model::LinearModule* found = nullptr;
  for (const model::LinearModule& lm : model::kLinearModules) {
    if (request.module == lm.name) found = &lm;
  }
  if (found == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown module '", request.module.substr(0, 40), "'"));
  }
  const model::LinearModule& module = *found;
  const int64_t layer = request.layer;
  const job::JobSpec& spec = request.spec;
  const std::string& artifact_uri = request.artifact_uri;
  const storage::StorageOptions& options = env.storage;
  IoCounts io;
  absl::StatusOr<Eigen::MatrixXd> read =
      model_io::ReadShardedHessian(request.hessians_uris, module.hessian, options, &io.bytes_read);
  if (!read.ok()) return read.status();
  const Eigen::MatrixXd& hessian = *read;
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
  if (spec.target_bits == 0 && spec.method == decompose::Method::kCaldera &&
      spec.rank > std::min(m, n)) {
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
  const AdapterSettings adapter = AdapterSettingsFor(spec);
  if (adapter.Enabled() && !aliased.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ": --share-heads cannot be combined with --ttlora-rank"));
  }
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
    for (const BudgetCandidate& c :
         BudgetWindow(spec.target_bits, spec.lr_bits, sm, sn, spec.serve)) {
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
  auto make_artifact = [&](MatrixDecomposition* d, const decompose::DecomposeOptions& o,
                           const std::string& setting,
                           const std::string& uri) -> absl::StatusOr<ModuleReport> {
    decompose::DecomposeResult* r = &d->result;
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
    if (d->adapter.has_value()) {
      rep.ttlora_params = d->adapter->adapter.Params();
      rep.ttlora_weighted_error_before = d->adapter->weighted_error_before;
      rep.ttlora_weighted_error_after = d->adapter->weighted_error_after;
      artifact.adapter = ttlora::AdapterFile({prefix}, d->adapter->adapter);
    }
    if (env.IsCancelled()) return absl::CancelledError("the job was cancelled");
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
  // The task's report and byte counts once its artifact is written.
  auto finish = [&](ModuleReport rep) -> absl::StatusOr<DecomposeResult> {
    io.bytes_read += rep.rows * rep.cols * 4;
    io.bytes_written += rep.storage_bits / 8;
    return DecomposeResult{std::move(rep), io};
  };
  auto run = [&](const decompose::DecomposeOptions& base)
      -> std::pair<absl::StatusOr<MatrixDecomposition>, decompose::DecomposeOptions> {
    decompose::DecomposeOptions oi = base;
    oi.threads = env.search_threads;
    oi.cancelled = env.cancelled;
    oi.backend = env.compute;
    // A module without its aliased heads (--share-heads) may be thinner than --rank.
    if (oi.rank > std::min(sm, sn)) oi.rank = std::min(sm, sn);
    return {DecomposeMatrix(w, h_used, oi, adapter), oi};
  };
  if (spec.target_bits == 0) {
    auto [r, oi] = run(settings[0]);
    if (!r.ok()) return Annotate(r.status(), prefix);
    absl::StatusOr<ModuleReport> rep = make_artifact(&*r, oi, "", artifact_uri);
    if (!rep.ok()) return rep.status();
    return finish(*std::move(rep));
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
  return finish(*std::move(primary));
}

}  // namespace caldera::pipeline
