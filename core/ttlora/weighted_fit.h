// Fits a tensor train to a residual in the Hessian-weighted norm.
//
// The adapter layout (see adapter.h): ΔWᵀ (d_in × d_out) is the train over
// [m_1..m_p | n_1..n_q]; the first p cores contract to A (d_in × r_p), the
// rest to B (r_p × d_out), ΔWᵀ = A·B. The layer adds α·ΔW, so the error left
// by the adapter is
//   f(ΔW) = tr((E − α·ΔW)·H·(E − α·ΔW)ᵀ),     E = W − Ŵ (d_out × d_in),
// with H (d_in × d_in) the input Hessian, symmetric positive semidefinite.
//
// Alternating least squares: f is quadratic in each core with the others
// fixed, so each step minimises f over one core (conjugate gradients on that
// core's normal equations, started from the core's current value, so no step
// raises f). The cores outside the one being fitted are kept orthonormal
// (left of it left-orthonormal, right of it right-orthonormal), which keeps
// those small systems well conditioned. Sweeps go left to right, then right
// to left.
//
// Cost per sweep: O(d·(d_in²·r_p + d_in·d_out·r_p)) for the products with H
// and E plus the conjugate-gradient steps, each O(d_in²·r_p) for an input
// core and O(r_p²·d_out) for an output core. Memory: E and H as given plus
// O((d_in + d_out)·r_p).
#ifndef CALDERA_CORE_TTLORA_WEIGHTED_FIT_H_
#define CALDERA_CORE_TTLORA_WEIGHTED_FIT_H_

#include <Eigen/Dense>
#include <cstddef>
#include <vector>

#include "absl/status/statusor.h"
#include "core/ttlora/tt_svd.h"

namespace caldera::ttlora {

struct WeightedFitOptions {
  int sweeps = 2;               // left-to-right + right-to-left passes, each counts one
  int max_cg_steps = 60;        // per core update
  double cg_tolerance = 1e-10;  // relative to the initial residual's norm
};

struct WeightedFitStats {
  double error_start = 0;  // f with the train as given
  double error_end = 0;    // f after the fit (never above error_start)
  int core_updates = 0;
  int cg_steps = 0;
};

// Fits `tt` (cores of ΔWᵀ as above, the first `input_cores` over d_in) in
// place so that f decreases; `e` is d_out × d_in, `h` d_in × d_in, and
// `residual_error` = tr(E·H·Eᵀ) (= f at ΔW = 0; the caller has it, and it
// costs d_out·d_in² to recompute). INVALID_ARGUMENT when shapes disagree or
// input_cores is not in [1, d-1].
absl::StatusOr<WeightedFitStats> FitWeighted(const Eigen::MatrixXd& e, const Eigen::MatrixXd& h,
                                             double residual_error, double alpha,
                                             size_t input_cores, const WeightedFitOptions& options,
                                             TensorTrain* tt);

}  // namespace caldera::ttlora

#endif  // CALDERA_CORE_TTLORA_WEIGHTED_FIT_H_
