#include "core/decompose/low_rank.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

namespace caldera::decompose {

using backend::Accumulate;
using backend::Op;
using quant::MatrixF;
using quant::MatrixQuantizer;
using quant::QuantizerSpec;

QuantizerSpec FactorSpec(const DecomposeOptions& o) {
  QuantizerSpec s = o.lr_spec;
  if (s.kind == QuantizerSpec::Kind::kLattice) s.row_scales = true;
  return s;
}

absl::StatusOr<std::unique_ptr<MatrixQuantizer>> NewQuantizer(const QuantizerSpec& spec,
                                                              int64_t rows, int64_t cols,
                                                              int threads) {
  absl::StatusOr<std::unique_ptr<MatrixQuantizer>> q = quant::MakeMatrixQuantizer(spec, rows, cols);
  if (q.ok()) (*q)->set_threads(threads);
  return q;
}

absl::StatusOr<MatrixF> TimedQuantizeNearest(backend::ComputeBackend& be, MatrixQuantizer& q,
                                             const MatrixF& a, double* seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<MatrixF> out = be.QuantizeNearest(q, a);
  *seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

absl::Status TopKSvd(backend::ComputeBackend& be, const MatrixF& y, int64_t k, uint64_t seed,
                     MatrixF* u, Eigen::VectorXf* s, MatrixF* v, double* flops) {
  const int64_t small = std::min(y.rows(), y.cols());
  MatrixF su, sv;
  Eigen::VectorXf ss;
  if (small <= 512 || 2 * k >= small) {
    if (absl::Status st = be.ThinSvd(y, &su, &ss, &sv); !st.ok()) return st;
    *u = su.leftCols(k);
    *s = ss.head(k);
    *v = sv.leftCols(k);
    return absl::OkStatus();
  }
  const int64_t l = std::min<int64_t>(small, 2 * k);
  // y·Ω, two power iterations (yᵀ·z, y·w), then Qᵀ·y and the final Q·U.
  *flops += 2.0 * y.rows() * y.cols() * l * 6 + 2.0 * y.rows() * l * k;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  MatrixF omega(y.cols(), l);
  for (int64_t i = 0; i < omega.size(); ++i) omega.data()[i] = normal(rng);
  MatrixF z(y.rows(), l);
  if (absl::Status st = be.Gemm(Op::kN, Op::kN, 1.0f, y, omega, Accumulate::kAssign, z); !st.ok())
    return st;
  MatrixF w(y.cols(), l);
  for (int it = 0; it < 2; ++it) {
    absl::StatusOr<MatrixF> zq = be.OrthonormalBasis(z, l);
    if (!zq.ok()) return zq.status();
    z = *std::move(zq);
    if (absl::Status st = be.Gemm(Op::kT, Op::kN, 1.0f, y, z, Accumulate::kAssign, w); !st.ok())
      return st;
    absl::StatusOr<MatrixF> wq = be.OrthonormalBasis(w, l);
    if (!wq.ok()) return wq.status();
    w = *std::move(wq);
    if (absl::Status st = be.Gemm(Op::kN, Op::kN, 1.0f, y, w, Accumulate::kAssign, z); !st.ok())
      return st;
  }
  absl::StatusOr<MatrixF> q = be.OrthonormalBasis(z, l);
  if (!q.ok()) return q.status();
  MatrixF b(l, y.cols());  // l × n
  if (absl::Status st = be.Gemm(Op::kT, Op::kN, 1.0f, *q, y, Accumulate::kAssign, b); !st.ok())
    return st;
  if (absl::Status st = be.ThinSvd(b, &su, &ss, &sv); !st.ok()) return st;
  u->resize(q->rows(), k);
  if (absl::Status st = be.Gemm(Op::kN, Op::kN, 1.0f, *q, su.leftCols(k), Accumulate::kAssign, *u);
      !st.ok())
    return st;
  *s = ss.head(k);
  *v = sv.leftCols(k);
  return absl::OkStatus();
}

// With L = Q_L·R_L (thin QR) the right singular vectors of L·R·M are those of
// the k × n matrix R_L·R·M, so no m × n product is formed. H − M·V·Vᵀ·Mᵀ =
// M·(I − V·Vᵀ)·Mᵀ is positive semidefinite by construction, so the
// reference's extra max(−λ_min, 0) shift (an n × n eigendecomposition per
// step) is left out; LDLQ's own damping retry covers rounding.
absl::StatusOr<Eigen::MatrixXd> DowndatedHessian(backend::ComputeBackend& be,
                                                 const Eigen::MatrixXd& h,
                                                 const Eigen::MatrixXd& m_chol, const MatrixF& l,
                                                 const MatrixF& r) {
  absl::StatusOr<Eigen::MatrixXd> r_l = be.QrUpperD(l.cast<double>());
  if (!r_l.ok()) return r_l.status();
  Eigen::MatrixXd rm, z;  // R·M, then R_L·R·M (k × n)
  if (absl::Status st = be.GemmD(Op::kN, Op::kN, r.cast<double>(), m_chol, &rm); !st.ok())
    return st;
  if (absl::Status st = be.GemmD(Op::kN, Op::kN, *r_l, rm, &z); !st.ok()) return st;
  Eigen::VectorXd s;
  Eigen::MatrixXd v;
  if (absl::Status st = be.RightSingularD(z, &s, &v); !st.ok()) return st;
  int64_t used = 0;  // directions with a non-negligible singular value
  while (used < s.size() && s(used) > 1e-10 * std::max(1e-300, s(0))) ++used;
  Eigen::MatrixXd mv;
  if (absl::Status st = be.GemmD(Op::kN, Op::kN, m_chol, v.leftCols(used), &mv); !st.ok())
    return st;
  Eigen::MatrixXd lower = h;
  if (absl::Status st = be.SyrkLowerD(-1.0, mv, &lower); !st.ok()) return st;
  Eigen::MatrixXd hq = lower.selfadjointView<Eigen::Lower>();
  hq.diagonal().array() += 0.01;
  hq.diagonal().array() += 0.01 * std::abs(hq.diagonal().mean());
  return hq;
}

// `m_chol` is the lower Cholesky factor of H (H = M·Mᵀ): min ‖(A − X)·M‖ over
// rank-k X is [A·M]_k·M⁻¹, the same fit as with the symmetric square root.
absl::StatusOr<LrState> LowRankUpdate(backend::ComputeBackend& be, const MatrixF& a,
                                      const MatrixF& g, const MatrixF& hf, const MatrixF& m_chol,
                                      int64_t k, const DecomposeOptions& o, double* flops,
                                      double* search_seconds) {
  const int64_t mp = a.rows(), np = a.cols();
  const double m_ = static_cast<double>(mp), n_ = static_cast<double>(np);
  *flops += m_ * n_ * n_ + k * n_ * n_;  // A·M and the solve with M
  MatrixF y;
  if (absl::Status st = be.TrmmRightLower(a, m_chol, &y); !st.ok()) return st;
  MatrixF u, v;
  Eigen::VectorXf s;
  if (absl::Status st = TopKSvd(be, y, k, o.seed, &u, &s, &v, flops); !st.ok()) return st;
  MatrixF r = s.asDiagonal() * v.transpose();
  if (absl::Status st = be.TrsmRightLower(m_chol, &r); !st.ok()) return st;
  MatrixF l = u;

  LrState best;
  double best_err = std::numeric_limits<double>::infinity();
  const bool floats = o.lr_spec.kind == QuantizerSpec::Kind::kFloat;
  const double t_aha = g.cwiseProduct(a).cast<double>().sum();
  const int iters = floats ? 1 : std::max(1, o.lplr_iters);
  // R·H and G·Rᵀ for the current R: made once per R (after each R update they
  // serve the error and then the next L update).
  MatrixF rh(k, np), grt(mp, k), kk(k, k), kk2(k, k);
  auto products_for_r = [&]() -> absl::Status {
    *flops += 2 * k * n_ * n_ + 2 * m_ * n_ * k;
    if (absl::Status st = be.Gemm(Op::kN, Op::kN, 1.0f, r, hf, Accumulate::kAssign, rh); !st.ok())
      return st;
    return be.Gemm(Op::kN, Op::kT, 1.0f, g, r, Accumulate::kAssign, grt);
  };
  if (!floats) {
    if (absl::Status st = products_for_r(); !st.ok()) return st;
  }
  for (int it = 0; it < iters; ++it) {
    if (!floats) {
      if (absl::Status st = be.Gemm(Op::kN, Op::kT, 1.0f, rh, r, Accumulate::kAssign, kk); !st.ok())
        return st;
      kk.diagonal().array() += 1e-7f * std::max(1e-30f, kk.trace() / k);
      absl::StatusOr<MatrixF> ls = be.SpdSolveTransposed(kk, grt);
      if (!ls.ok()) return ls.status();
      l = *std::move(ls);
    }
    absl::StatusOr<std::unique_ptr<MatrixQuantizer>> ql =
        NewQuantizer(FactorSpec(o), k, mp, o.threads);
    if (!ql.ok()) return ql.status();
    absl::StatusOr<MatrixF> lt = TimedQuantizeNearest(be, **ql, l.transpose(), search_seconds);
    if (!lt.ok()) return lt.status();
    l = lt->transpose();
    if (!floats) {
      *flops += 2 * m_ * n_ * k;  // Lᵀ·A
      if (absl::Status st = be.Gemm(Op::kT, Op::kN, 1.0f, l, l, Accumulate::kAssign, kk); !st.ok())
        return st;
      kk.diagonal().array() += 1e-7f * std::max(1e-30f, kk.trace() / k);
      MatrixF lta(k, np);
      if (absl::Status st = be.Gemm(Op::kT, Op::kN, 1.0f, l, a, Accumulate::kAssign, lta); !st.ok())
        return st;
      absl::StatusOr<MatrixF> rs = be.SpdSolve(kk, lta);
      if (!rs.ok()) return rs.status();
      r = *std::move(rs);
    }
    absl::StatusOr<std::unique_ptr<MatrixQuantizer>> qr =
        NewQuantizer(FactorSpec(o), k, np, o.threads);
    if (!qr.ok()) return qr.status();
    absl::StatusOr<MatrixF> rq = TimedQuantizeNearest(be, **qr, r, search_seconds);
    if (!rq.ok()) return rq.status();
    r = *std::move(rq);
    if (absl::Status st = products_for_r(); !st.ok()) return st;
    // e² = tr(AHAᵀ) − 2 tr(Lᵀ G Rᵀ) + tr(LᵀL · R H Rᵀ): O(mnk), no n² work but R·H.
    const double cross = grt.cwiseProduct(l).cast<double>().sum();
    if (absl::Status st = be.Gemm(Op::kT, Op::kN, 1.0f, l, l, Accumulate::kAssign, kk); !st.ok())
      return st;
    if (absl::Status st = be.Gemm(Op::kN, Op::kT, 1.0f, rh, r, Accumulate::kAssign, kk2); !st.ok())
      return st;
    const double quad = kk.cwiseProduct(kk2).cast<double>().sum();
    const double err = t_aha - 2 * cross + quad;
    if (err < best_err) {
      best_err = err;
      best.l = l;
      best.r = r;
      best.l_export = (*ql)->Export();
      best.r_export = (*qr)->Export();
      best.bits = (*ql)->StorageBits() + (*qr)->StorageBits();
    }
  }
  return best;
}

}  // namespace caldera::decompose
