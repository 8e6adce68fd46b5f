#include "core/decompose/ldlq.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/backend/cpu/cpu_backend.h"

namespace caldera::decompose {

absl::StatusOr<Eigen::MatrixXd> BlockLdl(const Eigen::MatrixXd& h, int64_t block,
                                         Eigen::MatrixXd* d_chol) {
  backend::CpuBackend cpu;
  return cpu.BlockLdlD(h, block, d_chol);
}

namespace {

// H with rows and columns taken in `order`.
Eigen::MatrixXd Permuted(const Eigen::MatrixXd& h, const std::vector<int64_t>& order) {
  const int64_t n = h.rows();
  Eigen::MatrixXd p(n, n);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < n; ++i) p(i, j) = h(order[i], order[j]);
  }
  return p;
}

}  // namespace

absl::StatusOr<LdlqFactor> FactorForLdlq(const Eigen::MatrixXd& h_in, const LdlqOptions& options) {
  backend::CpuBackend cpu;
  backend::ComputeBackend& be = options.backend != nullptr ? *options.backend : cpu;
  LdlqFactor factor;
  Eigen::MatrixXd permuted;
  if (options.act_order) {
    factor.order.resize(static_cast<size_t>(h_in.rows()));
    for (int64_t j = 0; j < h_in.rows(); ++j) factor.order[static_cast<size_t>(j)] = j;
    std::stable_sort(factor.order.begin(), factor.order.end(),
                     [&](int64_t x, int64_t y) { return h_in(x, x) < h_in(y, y); });
    permuted = Permuted(h_in, factor.order);
  }
  const Eigen::MatrixXd& h = options.act_order ? permuted : h_in;
  Eigen::MatrixXd d_chol;
  absl::StatusOr<Eigen::MatrixXd> l = be.BlockLdlD(h, options.block, &d_chol);
  const double mean_diag = h.diagonal().mean();
  double extra = options.retry_damping;
  for (int attempt = 0; !l.ok() && attempt < 6; ++attempt, extra *= 10) {
    Eigen::MatrixXd damped = h;
    damped.diagonal().array() += extra * mean_diag;
    l = be.BlockLdlD(damped, options.block, &d_chol);
    if (l.ok()) {
      factor.extra_damping = extra;
      factor.added_diagonal = extra * mean_diag;
    }
  }
  if (!l.ok()) {
    return absl::FailedPreconditionError(
        "the Hessian stays indefinite even with damping 1000x its mean diagonal; it is "
        "probably corrupt (NaN or negative eigenvalues)");
  }
  factor.l = l->cast<float>();
  factor.d_chol = d_chol.cast<float>();
  return factor;
}

absl::StatusOr<LdlqResult> Ldlq(const quant::MatrixF& a, const Eigen::MatrixXd& h,
                                quant::MatrixQuantizer& quantizer, const LdlqOptions& options) {
  absl::StatusOr<LdlqFactor> factor = FactorForLdlq(h, options);
  if (!factor.ok()) return factor.status();
  return Ldlq(a, h, *factor, quantizer, options);
}

absl::StatusOr<LdlqResult> Ldlq(const quant::MatrixF& a_in, const Eigen::MatrixXd& h_in,
                                const LdlqFactor& factor, quant::MatrixQuantizer& quantizer,
                                const LdlqOptions& options) {
  backend::CpuBackend cpu;
  backend::ComputeBackend& be = options.backend != nullptr ? *options.backend : cpu;
  const int64_t m = a_in.rows(), n = a_in.cols(), b = options.block;
  const std::vector<int64_t>& order = factor.order;
  if (!order.empty() && (static_cast<int64_t>(order.size()) != n || quantizer.block_cols() != 1)) {
    return absl::InvalidArgumentError(
        "LDLQ act order needs a quantizer with 1-column blocks and a factor of this width");
  }
  // With an order, everything below runs on the permuted columns; the
  // quantizer sees original column indices and the result is permuted back.
  quant::MatrixF a_perm;
  Eigen::MatrixXd h_perm;
  if (!order.empty()) {
    a_perm.resize(m, n);
    for (int64_t j = 0; j < n; ++j) a_perm.col(j) = a_in.col(order[static_cast<size_t>(j)]);
    if (options.tune_sweeps > 0) h_perm = Permuted(h_in, order);
  }
  const quant::MatrixF& a = order.empty() ? a_in : a_perm;
  const Eigen::MatrixXd& h = order.empty() || options.tune_sweeps == 0 ? h_in : h_perm;
  if (n % b != 0 || b % quantizer.block_cols() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("LDLQ needs columns (", n, ") a multiple of the block ", b));
  }
  if (factor.l.rows() != n || h.rows() != n) {
    return absl::InvalidArgumentError(absl::StrCat("LDLQ factor is ", factor.l.rows(),
                                                   " wide but the matrix has ", n, " columns"));
  }
  LdlqResult result;
  result.extra_damping = factor.extra_damping;
  result.added_diagonal = factor.added_diagonal;
  double factored_error = 0;
  const Eigen::MatrixXf& lf = factor.l;
  quantizer.Prepare(a_in);
  quant::MatrixF q = a;  // see below
  quant::MatrixF t;      // one block's targets
  absl::Status status;   // the first backend error; the passes stop at it
  auto quantize_block = [&](int64_t j0, const quant::MatrixF& target) {
    const auto t0 = std::chrono::steady_clock::now();
    if (order.empty()) {
      status.Update(be.LdlqBlockStep(quantizer, j0, target, q.middleCols(j0, b)));
    } else {
      for (int64_t j = 0; j < b; ++j) {
        status.Update(be.LdlqBlockStep(quantizer, order[static_cast<size_t>(j0 + j)], target.col(j),
                                       q.col(j0 + j)));
      }
    }
    result.search_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  quant::MatrixF e = quant::MatrixF::Zero(m, n);  // a - q on processed columns
  // Columns are processed from the last block to the first. q holds the
  // targets of the columns not yet quantized (a plus the feedback from the
  // quantized ones) and the quantized values of the others. Recursive halving
  // (right half, its feedback to the left half as one GEMM, left half) keeps
  // every feedback product balanced: the m·n² flops go into GEMMs whose packed
  // operands add up to O(m·n·log n), where a fixed-width buffer repacks an
  // m × (columns done) panel per buffer.
  const auto quantize_range = [&](const auto& self, int64_t c0, int64_t c1) -> void {
    if (!status.ok()) return;
    if (c1 - c0 <= b) {
      t = q.middleCols(c0, b);
      quantize_block(c0, t);
      e.middleCols(c0, b) = a.middleCols(c0, b) - q.middleCols(c0, b);
      t -= q.middleCols(c0, b);  // η: the block's rounding residual
      factored_error += (t * factor.d_chol.middleRows(c0, b).triangularView<Eigen::Lower>())
                            .cast<double>()
                            .squaredNorm();
      return;
    }
    const int64_t mid = c0 + (c1 - c0) / (2 * b) * b;  // a block boundary inside
    self(self, mid, c1);
    status.Update(be.Gemm(backend::Op::kN, backend::Op::kN, 1.0f, e.middleCols(mid, c1 - mid),
                          lf.block(mid, c0, c1 - mid, mid - c0), backend::Accumulate::kAdd,
                          q.middleCols(c0, mid - c0)));
    self(self, c0, mid);
  };
  quantize_range(quantize_range, 0, n);
  if (!status.ok()) return status;
  result.factored_error = factored_error;
  // Optional block Gauss-Seidel sweeps: move each block to the quantised
  // point nearest its unconstrained optimum given all other blocks.
  if (options.tune_sweeps > 0) {
    const Eigen::MatrixXf hf = h.cast<float>();
    result.factored_error = -1;  // the sweeps move Q off the greedy pass
    for (int sweep = 0; sweep < options.tune_sweeps; ++sweep) {
      for (int64_t j0 = n - b; j0 >= 0; j0 -= b) {
        const Eigen::MatrixXf hjj_inv =
            hf.block(j0, j0, b, b).cast<double>().inverse().cast<float>();
        t = q.middleCols(j0, b) + (e * hf.middleCols(j0, b)) * hjj_inv;
        quantize_block(j0, t);
        if (!status.ok()) return status;
        e.middleCols(j0, b) = a.middleCols(j0, b) - q.middleCols(j0, b);
      }
    }
  }
  if (order.empty()) {
    result.q = std::move(q);
  } else {
    result.q.resize(m, n);
    for (int64_t j = 0; j < n; ++j) result.q.col(order[static_cast<size_t>(j)]) = q.col(j);
  }
  return result;
}

}  // namespace caldera::decompose
