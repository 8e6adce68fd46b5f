// The low-rank half of CALDERA: the LR step (closed-form rank-k fit under H,
// then alternating least-squares refinements of the quantized factors), the
// top-k SVD it starts from and the Hessian downdate of the Q step. Dense
// kernels run through a compute backend.
#ifndef CALDERA_CORE_DECOMPOSE_LOW_RANK_H_
#define CALDERA_CORE_DECOMPOSE_LOW_RANK_H_

#include <Eigen/Dense>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/decompose/caldera.h"
#include "core/quant/quantizer.h"
#include "core/tensor/tensor.h"

namespace caldera::decompose {

// The quantizer of L and R. Their rows (Lᵀ's and R's) are the rank
// components, whose sizes follow the singular values: with E8P each row gets
// its own fp16 scale.
quant::QuantizerSpec FactorSpec(const DecomposeOptions& o);

absl::StatusOr<std::unique_ptr<quant::MatrixQuantizer>> NewQuantizer(
    const quant::QuantizerSpec& spec, int64_t rows, int64_t cols, int threads);

// The backend's round-to-nearest, adding its wall time to *seconds.
absl::StatusOr<quant::MatrixF> TimedQuantizeNearest(backend::ComputeBackend& be,
                                                    quant::MatrixQuantizer& q,
                                                    const quant::MatrixF& a, double* seconds);

// Top-k SVD of y: exact for small matrices, randomized (2 power iterations,
// oversampling to 2k) for large ones. Deterministic for a seed. Adds the
// products' flops to *flops.
absl::Status TopKSvd(backend::ComputeBackend& be, const quant::MatrixF& y, int64_t k, uint64_t seed,
                     quant::MatrixF* u, Eigen::VectorXf* s, quant::MatrixF* v, double* flops);

// The Hessian for a Q step after the downdate (see DecomposeOptions):
// H − (M·V)(M·V)ᵀ + (0.01 + 0.01·|mean diag|)·I, M = chol(H) lower (m_chol),
// V the right singular vectors of L·R·M.
absl::StatusOr<Eigen::MatrixXd> DowndatedHessian(backend::ComputeBackend& be,
                                                 const Eigen::MatrixXd& h,
                                                 const Eigen::MatrixXd& m_chol,
                                                 const quant::MatrixF& l, const quant::MatrixF& r);

struct LrState {
  quant::MatrixF l, r;  // mp × k, k × np
  NamedTensors l_export, r_export;
  int64_t bits = 0;
};

// One LR step on A = W̃ − Q given G = A·H (hf = H in float, m_chol its lower
// Cholesky factor): the best of lplr_iters refinements of quantized L and R.
absl::StatusOr<LrState> LowRankUpdate(backend::ComputeBackend& be, const quant::MatrixF& a,
                                      const quant::MatrixF& g, const quant::MatrixF& hf,
                                      const quant::MatrixF& m_chol, int64_t k,
                                      const DecomposeOptions& o, double* flops,
                                      double* search_seconds);

}  // namespace caldera::decompose

#endif  // CALDERA_CORE_DECOMPOSE_LOW_RANK_H_
