// The decompose step: W of one module of block ℓ and its Hessian -> one matrix
// artifact (the module's CALDERA record, optional TT-LoRA cores and its
// report; docs/format/matrix-artifact.md). Under --target-bits, the window of
// budget candidates around B, each stored (pipeline/budget_candidates.h).
#ifndef CALDERA_PIPELINE_DECOMPOSE_STEP_H_
#define CALDERA_PIPELINE_DECOMPOSE_STEP_H_

#include <Eigen/Dense>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/decompose/caldera.h"
#include "core/format/module_report.h"
#include "core/model/checkpoint.h"
#include "core/quant/quantizer.h"
#include "core/ttlora/adapter.h"
#include "job/job_spec.h"
#include "pipeline/step_environment.h"

namespace caldera::pipeline {

// The TT-LoRA adapter initialised on top of a decomposition.
struct AdapterSettings {
  int64_t rank = 0;  // TT bond rank
  ttlora::InitMode init = ttlora::InitMode::kZero;
  double alpha = 16.0;  // adapter scale
  uint64_t seed = 0;
  std::string shape;  // "m1,m2,...:n1,n2,..."; empty: ttlora::DefaultShape
  // An adapter is made when a rank or a shape is given.
  bool Enabled() const { return rank != 0 || !shape.empty(); }
};

// The adapter settings of a job (ttlora_rank, ttlora_init, ttlora_alpha, seed).
AdapterSettings AdapterSettingsFor(const job::JobSpec& spec);

// One matrix decomposed, and its adapter when asked for.
struct MatrixDecomposition {
  decompose::DecomposeResult result;
  std::optional<ttlora::InitResult> adapter;
};

// W (m × n) ≈ Q + L·R under `options` with Hessian `h` (n × n), then the
// TT-LoRA adapter on top of Ŵ when `adapter` is enabled. What both the
// decompose step and `calderactl decompose` run.
absl::StatusOr<MatrixDecomposition> DecomposeMatrix(const quant::MatrixF& w,
                                                    const Eigen::MatrixXd& h,
                                                    const decompose::DecomposeOptions& options,
                                                    const AdapterSettings& adapter);

// One decompose task.
struct DecomposeRequest {
  int64_t layer = 0;
  std::string module;  // "q_proj" ... "down_proj" (model::kLinearModules)
  // The Hessians files of the module's input: one, or the shards of a sharded
  // calibration in shard order (model_io::ReadShardedHessian combines them).
  std::vector<std::string> hessians_uris;
  job::JobSpec spec;
  // Attempt-unique URI of the artifact.
  std::string artifact_uri;
};

struct DecomposeResult {
  format::ModuleReport report;
  IoCounts io;
};

// Runs `request`. With spec.target_bits > 0 it decomposes the window of
// budget candidates (job::BudgetWindow) and writes each one's artifact beside
// the task's (<stem>.c<i>.safetensors) plus their list
// (<stem>.candidates.json); the artifact at `artifact_uri` is a copy of the
// candidate that fits B alone with the lowest weighted error (or the cheapest
// when none does). The block's choice among them is made later
// (ResolveBudgetChoices). When env.cancelled returns true the result is
// CANCELLED and the artifact is not written. The dense kernels run on
// env.compute; the codeword searches on env.search_threads threads.
absl::StatusOr<DecomposeResult> Decompose(const model::Checkpoint& checkpoint,
                                          const DecomposeRequest& request,
                                          const StepEnvironment& env);

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_DECOMPOSE_STEP_H_
