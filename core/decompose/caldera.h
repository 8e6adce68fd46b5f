// The CALDERA decomposition W ≈ Q + L·R: Q quantised (2-4 bits) with LDLQ, L
// and R of rank k quantised (or kept as floats), alternating updates that
// minimise the activation-weighted error tr((W - Ŵ) H (W - Ŵ)ᵀ), after a
// two-sided randomized Hadamard transform (incoherence processing).
//
// Also the baselines on the same pipeline: method "ldlq" (Q only, QuIP#-style)
// and "rtn" (Q by round-to-nearest).
#ifndef CALDERA_CORE_DECOMPOSE_CALDERA_H_
#define CALDERA_CORE_DECOMPOSE_CALDERA_H_

#include <Eigen/Dense>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/backend/backend.h"
#include "core/decompose/two_sided.h"
#include "core/format/matrix_record.h"
#include "core/quant/quantizer.h"
#include "core/tensor/tensor.h"

namespace caldera::decompose {

// The decomposition: W = Q + L·R (caldera), Q by LDLQ alone (ldlq), or Q by
// round-to-nearest (rtn).
enum class Method { kCaldera, kLdlq, kRtn };

// "caldera", "ldlq" or "rtn": the spelling of flags, the proto and records.
absl::string_view MethodName(Method method);
// The inverse of MethodName. INVALID_ARGUMENT "--method X is unknown; use
// caldera, ldlq or rtn" (X cut to ~200 bytes) for anything else.
absl::StatusOr<Method> ParseMethod(absl::string_view name);

struct DecomposeOptions {
  Method method = Method::kCaldera;
  int64_t rank = 64;
  quant::QuantizerSpec q_spec;  // default e8p 2 bits
  quant::QuantizerSpec lr_spec{quant::QuantizerSpec::Kind::kLattice, 4};
  int iters = 15;        // outer alternations
  int lplr_iters = 10;   // inner L/R refinements
  bool lr_first = true;  // order of the two updates in each outer iteration
  // QuIP#-style Hessian downdate before each Q step once L·R exists: LDLQ runs
  // on H − M·V·Vᵀ·Mᵀ (M = chol(H), V the top-k right singular vectors of
  // L·R·M) plus 0.01·I and 0.01·mean(diag)·I, so Q does not spend bits on the
  // directions L·R already covers. Errors are still measured with H as given.
  // It pays only when L and R are kept as floats (lr_spec 16/32 bits: 8-14 %
  // lower weighted error measured): the next LR step must absorb the error Q
  // leaves in those directions, and 4-bit factors lose it (12-80 % worse).
  bool hessian_downdate = false;
  bool hadamard = true;
  // LDLQ in order of decreasing diag(H) (GPTQ's act order) for quantizers
  // with 1-column blocks (uniform); ignored for E8P.
  bool act_order = false;
  uint64_t seed = 42;
  double damping = 0.01;  // added to the diagonal of H / mean(diag H)
  int tune_sweeps = 0;    // LDLQ Gauss-Seidel passes
  // Threads for the quantizers' codeword searches (the dense products use the
  // BLAS library's own threads). Results do not depend on it.
  int threads = 1;
  // Reports (step name, fraction done); may be empty.
  std::function<void(const std::string&, double)> progress;
  // Polled between steps; true stops with CANCELLED.
  std::function<bool()> cancelled;
  // Where the dense kernels run (not owned; must outlive the call). Null:
  // the CPU backend, the reference (results do not depend on anything else).
  backend::ComputeBackend* backend = nullptr;
};

struct DecomposeResult {
  quant::MatrixF w_hat;  // m × n, original basis
  double relative_error = 0;
  double weighted_relative_error = 0;
  int64_t storage_bits = 0;
  double bits_per_param = 0;
  // Weighted relative error after every step ("lr" / "q"), and which was kept.
  std::vector<std::pair<std::string, double>> history;
  int best_step = -1;
  int64_t padded_rows = 0, padded_cols = 0;
  std::string transform;  // e.g. "rht(64x192 from 64x172, K=12)", "none (pad 172->176)"
  double extra_damping = 0;
  // Floating-point operations of the dense products and factorizations this
  // run performed, counted where they are called (2·a·b·c per a×b by b×c
  // product, a·b² per triangular product or solve, n³/3 per Cholesky; float
  // and double alike). Benchmarks divide it by wall time.
  double blas3_flops = 0;
  // Wall time inside the quantizers' codeword searches (LDLQ's block
  // quantization, round-to-nearest of Q, L and R); the rest of a run is the
  // dense work and its glue.
  double search_seconds = 0;
  // The record: tensors named relative to the matrix ("caldera.q.codes", ...),
  // including "caldera.config" (JSON as U8).
  std::vector<std::pair<std::string, Tensor>> record;
};

// Validates (shapes, finiteness, symmetry, rank, bits) with INVALID_ARGUMENT
// messages that name the problem; `h` is n × n (identity when none given).
// Runs a CalderaSolver (caldera_solver.h) on options.backend.
absl::StatusOr<DecomposeResult> Decompose(const quant::MatrixF& w, const Eigen::MatrixXd& h,
                                          const DecomposeOptions& options);

// tr(E H Eᵀ) / tr(W H Wᵀ), square-rooted, with E = W - W_hat.
double WeightedRelativeError(const quant::MatrixF& w, const quant::MatrixF& w_hat,
                             const Eigen::MatrixXf& h);

// Rebuilds Ŵ (original basis) from a record (the tensors of DecomposeResult::record).
absl::StatusOr<quant::MatrixF> Reconstruct(
    const std::vector<std::pair<std::string, Tensor>>& record);

// A record's parts apart, in the original basis (Hadamard transform and
// padding undone, global scale applied): Ŵ == q + l·r up to float rounding,
// q m × n, l m × k, r k × n with k the record's rank (0 for ldlq / rtn
// records, which have no factors). For exporting L and R as a LoRA adapter.
struct RecordFactors {
  std::string method;  // the record's method: caldera | ldlq | rtn
  quant::MatrixF q, l, r;
};
absl::StatusOr<RecordFactors> ReconstructFactors(
    const std::vector<std::pair<std::string, Tensor>>& record);

// A record decoded in its own (padded, transformed) basis: Q (mp × np) and,
// when the rank is > 0, Lᵀ (k × mp) and R (k × np), plus the transform that
// maps back: Ŵ = global_scale · transform.Inverse(q + ltᵀ·r). For the
// fine-tuning, which trains the parts in this basis.
struct DecodedRecord {
  format::MatrixRecordConfig config;
  quant::MatrixF q, lt, r;
  std::optional<TwoSided> transform;
};
// The quantizer spec a record's quantizer object names (validated).
absl::StatusOr<quant::QuantizerSpec> SpecFromRecord(const format::RecordQuantizer& q);
absl::StatusOr<DecodedRecord> DecodeRecord(
    const std::vector<std::pair<std::string, Tensor>>& record);

}  // namespace caldera::decompose

#endif  // CALDERA_CORE_DECOMPOSE_CALDERA_H_
