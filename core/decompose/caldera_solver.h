// The CALDERA decomposition as a solver object whose steps are methods: what
// Decompose() (caldera.h) runs, taken apart so that each step can be read,
// timed and moved to a device on its own.
//
//   CalderaSolver s(w, h, options, backend);
//   Prepare()  scale, pad, two-sided Hadamard transform of W and H, the
//              Cholesky factor of H (LR whitening), the error denominator
//   then options.iters times (once for ldlq / rtn), in options' order:
//   LrStep()   the low-rank factors L, R on W̃ − Q (low_rank.h)
//   QStep()    Q by LDLQ (or round-to-nearest) on W̃ − L·R
//   Evaluate() the weighted error of the current iterate; keeps the best
//   Finish()   the kept iterate back in the original basis, and its record
//
// Run() does all of it with the options' progress and cancellation. Every
// dense kernel goes through the backend; with the CPU backend the results
// are bit-identical to the single-function code this replaced.
//
// The solver keeps references to w, h, options and backend: they must
// outlive it. Not copyable; one thread at a time.
#ifndef CALDERA_CORE_DECOMPOSE_CALDERA_SOLVER_H_
#define CALDERA_CORE_DECOMPOSE_CALDERA_SOLVER_H_

#include <Eigen/Dense>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/decompose/caldera.h"
#include "core/decompose/ldlq.h"
#include "core/decompose/low_rank.h"
#include "core/decompose/two_sided.h"

namespace caldera::decompose {

class CalderaSolver {
 public:
  // Inputs must already be validated (Decompose does it).
  CalderaSolver(const quant::MatrixF& w, const Eigen::MatrixXd& h, const DecomposeOptions& o,
                backend::ComputeBackend& be);
  CalderaSolver(const CalderaSolver&) = delete;
  CalderaSolver& operator=(const CalderaSolver&) = delete;

  absl::StatusOr<DecomposeResult> Run();

  absl::Status Prepare();
  absl::Status QStep();
  absl::Status LrStep();
  // Records the current iterate's weighted error in the history under
  // `step` and keeps it when it is the best so far (with both Q and L·R).
  absl::Status Evaluate(const std::string& step);
  // Call once, after the steps.
  absl::StatusOr<DecomposeResult> Finish();

 private:
  void EnsureHf();
  absl::Status EnsureCholesky();
  absl::Status EnsureG();
  absl::StatusOr<double> ErrorOfCurrent();
  double Relative(double num) const;

  const quant::MatrixF& w_;
  const Eigen::MatrixXd& h_;
  const DecomposeOptions& o_;
  backend::ComputeBackend& be_;

  int64_t m_ = 0, n_ = 0, k_ = 0, mp_ = 0, np_ = 0;
  bool with_lr_ = false;
  float g_ = 1.0f;  // global scale: W̃ is the transform of W / g
  std::optional<TwoSided> t_;
  Eigen::MatrixXd ht_;  // the algorithm Hessian, transformed (np × np)
  quant::MatrixF wt_;   // W̃ (mp × np)
  DecomposeResult result_;

  // With no padding both transforms are orthogonal, so errors are measured
  // in the transformed basis from G = (W̃ − Q)·ht; with padding, in the
  // original basis with h_err (H in float).
  bool transformed_errors_ = false;
  double h_mean_ = 0;
  quant::MatrixF hf_;                       // ht in float, made when first needed
  Eigen::MatrixXf h_err_;                   // padded shapes only
  double denominator_ = 0;                  // tr(W·H·Wᵀ)
  std::optional<Eigen::MatrixXd> ht_chol_;  // lower Cholesky factor of ht
  quant::MatrixF m_chol_;                   // the same in float (LR whitening)

  quant::MatrixF q_, l_, r_;
  NamedTensors q_export_;
  int64_t q_bits_ = 0;
  LrState lr_;
  bool have_q_ = false, have_lr_ = false;
  double best_err_ = 0;
  quant::MatrixF best_q_t_, best_l_t_, best_r_t_;  // the kept iterate, transformed basis
  NamedTensors best_q_, best_l_, best_r_;
  int64_t best_bits_ = 0;
  // G = (W̃ − Q)·ht for the current Q; valid once computed for it. work_ is
  // an mp × np scratch matrix (the Q step's target, W̃ − Q, the error).
  quant::MatrixF g_q_, work_;
  bool g_valid_ = false;
  // After a plain LDLQ step: tr(E·H'·Eᵀ) from its rounding residuals and the
  // diagonal H' adds to ht; work_ still holds that step's target.
  std::optional<std::pair<double, double>> q_step_error_;
  LdlqOptions lo_;
  std::optional<LdlqFactor> ht_factor_;  // LDLQ's factor of ht (no downdate)
};

}  // namespace caldera::decompose

#endif  // CALDERA_CORE_DECOMPOSE_CALDERA_SOLVER_H_
