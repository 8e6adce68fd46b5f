#include "core/decompose/caldera.h"

#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>
#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/decompose/ldlq.h"
#include "core/format/matrix_record.h"
#include "core/transform/hadamard.h"

namespace caldera::decompose {
namespace {

using quant::MatrixF;
using quant::MatrixQuantizer;
using quant::QuantizerSpec;
using Exports = std::vector<std::pair<std::string, Tensor>>;

constexpr uint64_t kRowSignSalt = 0x5bd1e9955bd1e995ull;

// The smallest size >= n that is a multiple of `multiple` and, with
// `hadamard`, a size the transform accepts.
int64_t PaddedSize(int64_t n, bool hadamard, int64_t multiple) {
  const int64_t first = (n + multiple - 1) / multiple * multiple;
  if (!hadamard) return first;
  for (int64_t v = first;; v += multiple) {
    if (transform::HadamardTransform::Create(v).ok()) return v;
  }
}

// Two-sided randomized Hadamard transform with zero padding:
// W̃ = Had_mᵀ·diag(SV)·W·diag(SU)·Had_n.
class TwoSided {
 public:
  // m × n padded to mp × np (>= m, n; sizes the transform accepts when
  // `hadamard`, see PaddedSize).
  static absl::StatusOr<TwoSided> Make(int64_t m, int64_t n, int64_t mp, int64_t np, bool hadamard,
                                       uint64_t seed) {
    if (mp < m || np < n) {
      return absl::InvalidArgumentError(
          absl::StrCat("padded size ", mp, "x", np, " is smaller than ", m, "x", n));
    }
    TwoSided t;
    t.m_ = m;
    t.n_ = n;
    t.mp_ = mp;
    t.np_ = np;
    t.hadamard_ = hadamard;
    if (hadamard) {
      absl::StatusOr<transform::HadamardTransform> hm = transform::HadamardTransform::Create(t.mp_);
      absl::StatusOr<transform::HadamardTransform> hn = transform::HadamardTransform::Create(t.np_);
      if (!hm.ok()) return hm.status();
      if (!hn.ok()) return hn.status();
      t.hm_ = *hm;
      t.hn_ = *hn;
      t.su_ = transform::SignsFromSeed(seed, t.np_);
      t.sv_ = transform::SignsFromSeed(seed ^ kRowSignSalt, t.mp_);
    }
    return t;
  }

  int64_t mp() const { return mp_; }
  int64_t np() const { return np_; }

  std::string Describe() const {
    std::string s = hadamard_ ? absl::StrCat("rht K=", hm_->order(), "x", hn_->order()) : "none";
    if (mp_ != m_ || np_ != n_) {
      absl::StrAppend(&s, ", padded ", m_, "x", n_, " -> ", mp_, "x", np_);
    }
    return s;
  }

  MatrixF Forward(const MatrixF& w) const {
    MatrixF x = MatrixF::Zero(mp_, np_);
    x.topLeftCorner(m_, n_) = w;
    if (!hadamard_) return x;
    for (int64_t c = 0; c < np_; ++c) {
      x.col(c) = x.col(c).cwiseProduct(Eigen::Map<const Eigen::VectorXf>(sv_.data(), mp_)) * su_[c];
    }
    hm_->ApplyToColumns(&x, /*transpose=*/true);
    hn_->ApplyToRows(&x, /*transpose=*/true);
    return x;
  }

  MatrixF Inverse(const MatrixF& wt) const {
    if (!hadamard_) return wt.topLeftCorner(m_, n_);
    MatrixF x = wt;
    hm_->ApplyToColumns(&x, /*transpose=*/false);
    hn_->ApplyToRows(&x, /*transpose=*/false);
    MatrixF out(m_, n_);
    for (int64_t c = 0; c < n_; ++c) {
      out.col(c) =
          x.col(c).head(m_).cwiseProduct(Eigen::Map<const Eigen::VectorXf>(sv_.data(), m_)) *
          su_[c];
    }
    return out;
  }

  // The left and right halves of Inverse for a product: Inverse(lt·rt) ==
  // InverseLeft(lt)·InverseRight(rt) (lt mp × k, rt k × np; m × k and k × n).
  MatrixF InverseLeft(const MatrixF& lt) const {
    if (!hadamard_) return lt.topRows(m_);
    MatrixF x = lt;
    hm_->ApplyToColumns(&x, /*transpose=*/false);
    MatrixF out = x.topRows(m_);
    for (int64_t c = 0; c < out.cols(); ++c) {
      out.col(c) = out.col(c).cwiseProduct(Eigen::Map<const Eigen::VectorXf>(sv_.data(), m_));
    }
    return out;
  }
  MatrixF InverseRight(const MatrixF& rt) const {
    if (!hadamard_) return rt.leftCols(n_);
    MatrixF x = rt;
    hn_->ApplyToRows(&x, /*transpose=*/false);
    MatrixF out = x.leftCols(n_);
    for (int64_t c = 0; c < n_; ++c) out.col(c) *= su_[c];
    return out;
  }

  // Had_nᵀ·diag(SU)·H·diag(SU)·Had_n of an np × np matrix.
  Eigen::MatrixXd ForwardHessian(Eigen::MatrixXd h) const {
    if (!hadamard_) return h;
    for (int64_t c = 0; c < np_; ++c) {
      for (int64_t r = 0; r < np_; ++r) h(r, c) *= su_[r] * su_[c];
    }
    hn_->ApplyToColumns(&h, /*transpose=*/true);
    hn_->ApplyToRows(&h, /*transpose=*/true);
    return h;
  }

 private:
  int64_t m_ = 0, n_ = 0, mp_ = 0, np_ = 0;
  bool hadamard_ = false;
  std::optional<transform::HadamardTransform> hm_, hn_;
  std::vector<float> su_, sv_;
};

float Rms(const MatrixF& a) {
  return static_cast<float>(
      std::sqrt(a.cast<double>().squaredNorm() / std::max<Eigen::Index>(1, a.size())));
}

Exports CloneExports(const Exports& e) {
  Exports out;
  for (const auto& [n, t] : e) out.emplace_back(n, t.Clone());
  return out;
}

// QuantizeNearest, adding its wall time to *seconds.
MatrixF TimedQuantizeNearest(MatrixQuantizer& q, const MatrixF& a, double* seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  MatrixF out = quant::QuantizeNearest(q, a);
  *seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

absl::StatusOr<std::unique_ptr<MatrixQuantizer>> NewQuantizer(const QuantizerSpec& spec,
                                                              int64_t rows, int64_t cols,
                                                              int threads) {
  absl::StatusOr<std::unique_ptr<MatrixQuantizer>> q = quant::MakeMatrixQuantizer(spec, rows, cols);
  if (q.ok()) (*q)->set_threads(threads);
  return q;
}

// The quantizer of L and R. Their rows (Lᵀ's and R's) are the rank
// components, whose sizes follow the singular values: with E8P each row gets
// its own fp16 scale (16 bits per row; 3-6 % lower weighted error than one
// scale per factor on 256 x 512 problems at ranks 16 and 64).
QuantizerSpec FactorSpec(const DecomposeOptions& o) {
  QuantizerSpec s = o.lr_spec;
  if (s.kind == QuantizerSpec::Kind::kLattice) s.row_scales = true;
  return s;
}

// Top-k SVD of y: exact for small matrices, randomized (2 power iterations,
// oversampling to 2k) for large ones. Deterministic for a seed.
void TopKSvd(const MatrixF& y, int64_t k, uint64_t seed, MatrixF* u, Eigen::VectorXf* s, MatrixF* v,
             double* flops) {
  const int64_t small = std::min(y.rows(), y.cols());
  if (small <= 512 || 2 * k >= small) {
    Eigen::BDCSVD<MatrixF> svd(y, Eigen::ComputeThinU | Eigen::ComputeThinV);
    *u = svd.matrixU().leftCols(k);
    *s = svd.singularValues().head(k);
    *v = svd.matrixV().leftCols(k);
    return;
  }
  const int64_t l = std::min<int64_t>(small, 2 * k);
  // y·Ω, two power iterations (yᵀ·z, y·w), then Qᵀ·y and the final Q·U.
  *flops += 2.0 * y.rows() * y.cols() * l * 6 + 2.0 * y.rows() * l * k;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  MatrixF omega(y.cols(), l);
  for (int64_t i = 0; i < omega.size(); ++i) omega.data()[i] = normal(rng);
  MatrixF z = y * omega;
  for (int it = 0; it < 2; ++it) {
    Eigen::HouseholderQR<MatrixF> qr(z);
    z = qr.householderQ() * MatrixF::Identity(y.rows(), l);
    MatrixF w = y.transpose() * z;
    Eigen::HouseholderQR<MatrixF> qr2(w);
    w = qr2.householderQ() * MatrixF::Identity(y.cols(), l);
    z = y * w;
  }
  Eigen::HouseholderQR<MatrixF> qr(z);
  const MatrixF q = qr.householderQ() * MatrixF::Identity(y.rows(), l);
  const MatrixF b = q.transpose() * y;  // l × n
  Eigen::BDCSVD<MatrixF> svd(b, Eigen::ComputeThinU | Eigen::ComputeThinV);
  *u = q * svd.matrixU().leftCols(k);
  *s = svd.singularValues().head(k);
  *v = svd.matrixV().leftCols(k);
}

// The Hessian for a Q step after the downdate (see DecomposeOptions):
// H − (M·V)(M·V)ᵀ + (0.01 + 0.01·|mean diag|)·I, M = chol(H) lower, V the right
// singular vectors of L·R·M. With L = Q_L·R_L (thin QR) those are the right
// singular vectors of the k × n matrix R_L·R·M, so no m × n product is formed.
// H − M·V·Vᵀ·Mᵀ = M·(I − V·Vᵀ)·Mᵀ is positive semidefinite by construction, so
// the reference's extra max(−λ_min, 0) shift (an n × n eigendecomposition per
// step) is left out; LDLQ's own damping retry covers rounding.
// `m_chol` is the lower Cholesky factor of h.
Eigen::MatrixXd DowndatedHessian(const Eigen::MatrixXd& h, const Eigen::MatrixXd& m_chol,
                                 const MatrixF& l, const MatrixF& r) {
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(l.cast<double>());
  const int64_t k = l.cols();
  const Eigen::MatrixXd r_l =
      qr.matrixQR().topRows(k).triangularView<Eigen::Upper>().toDenseMatrix();
  const Eigen::MatrixXd z = r_l * (r.cast<double>() * m_chol);  // k × n
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(z, Eigen::ComputeThinV);
  const Eigen::VectorXd& s = svd.singularValues();
  int64_t used = 0;  // directions with a non-negligible singular value
  while (used < s.size() && s(used) > 1e-10 * std::max(1e-300, s(0))) ++used;
  const Eigen::MatrixXd mv = m_chol * svd.matrixV().leftCols(used);
  Eigen::MatrixXd lower = h;
  lower.selfadjointView<Eigen::Lower>().rankUpdate(mv, -1.0);
  Eigen::MatrixXd hq = lower.selfadjointView<Eigen::Lower>();
  hq.diagonal().array() += 0.01;
  hq.diagonal().array() += 0.01 * std::abs(hq.diagonal().mean());
  return hq;
}

struct LrState {
  MatrixF l, r;  // mp × k, k × np
  Exports l_export, r_export;
  int64_t bits = 0;
};

// One LR step on A = W̃ − Q: the closed-form rank-k fit under H, then
// lplr_iters alternating least-squares refinements of quantised L and R.
// `m_chol` is the lower Cholesky factor of H (H = M·Mᵀ): min ‖(A − X)·M‖ over
// rank-k X is [A·M]_k·M⁻¹, the same fit as with the symmetric square root.
// `g` = A·H, formed once per outer iteration by the caller.
absl::StatusOr<LrState> LowRankUpdate(const MatrixF& a, const MatrixF& g, const MatrixF& hf,
                                      const MatrixF& m_chol, int64_t k, const DecomposeOptions& o,
                                      double* flops, double* search_seconds) {
  const int64_t mp = a.rows(), np = a.cols();
  const double m_ = static_cast<double>(mp), n_ = static_cast<double>(np);
  *flops += m_ * n_ * n_ + k * n_ * n_;  // A·M and the solve with M
  MatrixF y(mp, np);
  y.noalias() = a * m_chol.triangularView<Eigen::Lower>();
  MatrixF u, v;
  Eigen::VectorXf s;
  TopKSvd(y, k, o.seed, &u, &s, &v, flops);
  MatrixF r = s.asDiagonal() * v.transpose();
  m_chol.triangularView<Eigen::Lower>().solveInPlace<Eigen::OnTheRight>(r);
  MatrixF l = u;

  LrState best;
  double best_err = std::numeric_limits<double>::infinity();
  const bool floats = o.lr_spec.kind == QuantizerSpec::Kind::kFloat;
  const double t_aha = g.cwiseProduct(a).cast<double>().sum();
  const int iters = floats ? 1 : std::max(1, o.lplr_iters);
  // R·H and G·Rᵀ for the current R: made once per R (after each R update they
  // serve the error and then the next L update).
  MatrixF rh, grt;
  auto products_for_r = [&] {
    *flops += 2 * k * n_ * n_ + 2 * m_ * n_ * k;
    rh.noalias() = r * hf;
    grt.noalias() = g * r.transpose();
  };
  if (!floats) products_for_r();
  for (int it = 0; it < iters; ++it) {
    if (!floats) {
      Eigen::MatrixXf rhr = rh * r.transpose();
      rhr.diagonal().array() += 1e-7f * std::max(1e-30f, rhr.trace() / k);
      l = rhr.ldlt().solve(grt.transpose()).transpose();
    }
    absl::StatusOr<std::unique_ptr<MatrixQuantizer>> ql =
        NewQuantizer(FactorSpec(o), k, mp, o.threads);
    if (!ql.ok()) return ql.status();
    const MatrixF lt = TimedQuantizeNearest(**ql, l.transpose(), search_seconds);
    l = lt.transpose();
    if (!floats) {
      *flops += 2 * m_ * n_ * k;  // Lᵀ·A
      Eigen::MatrixXf ltl = l.transpose() * l;
      ltl.diagonal().array() += 1e-7f * std::max(1e-30f, ltl.trace() / k);
      r = ltl.ldlt().solve(l.transpose() * a);
    }
    absl::StatusOr<std::unique_ptr<MatrixQuantizer>> qr =
        NewQuantizer(FactorSpec(o), k, np, o.threads);
    if (!qr.ok()) return qr.status();
    r = TimedQuantizeNearest(**qr, r, search_seconds);
    products_for_r();
    // e² = tr(AHAᵀ) − 2 tr(Lᵀ G Rᵀ) + tr(LᵀL · R H Rᵀ): O(mnk), no n² work but R·H.
    const double cross = grt.cwiseProduct(l).cast<double>().sum();
    const double quad = ((l.transpose() * l).cwiseProduct(rh * r.transpose())).cast<double>().sum();
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

format::RecordQuantizer SpecRecord(const QuantizerSpec& s) {
  const char* kind = s.kind == QuantizerSpec::Kind::kLattice   ? "e8p"
                     : s.kind == QuantizerSpec::Kind::kUniform ? "uniform"
                                                               : "float";
  return {kind, s.bits, s.group_size, s.symmetric, s.row_scales};
}

absl::StatusOr<QuantizerSpec> SpecFromRecord(const format::RecordQuantizer& q) {
  QuantizerSpec s;
  s.kind = q.kind == "e8p"       ? QuantizerSpec::Kind::kLattice
           : q.kind == "uniform" ? QuantizerSpec::Kind::kUniform
                                 : QuantizerSpec::Kind::kFloat;
  s.bits = q.bits;
  s.group_size = q.group_size;
  s.symmetric = q.symmetric;
  s.row_scales = q.row_scales;
  if (absl::Status st = quant::ValidateSpec(s); !st.ok()) return st;
  return s;
}

absl::Status Validate(const MatrixF& w, const Eigen::MatrixXd& h, const DecomposeOptions& o) {
  const int64_t m = w.rows(), n = w.cols();
  if (m == 0 || n == 0) return absl::InvalidArgumentError("the weight matrix is empty");
  if (!w.allFinite()) {
    return absl::InvalidArgumentError("the weight matrix has non-finite values (NaN or Inf)");
  }
  if (h.rows() != n || h.cols() != n) {
    return absl::InvalidArgumentError(absl::StrCat("the Hessian is ", h.rows(), "x", h.cols(),
                                                   " but the weight has ", n,
                                                   " columns; it must be ", n, "x", n));
  }
  if (!h.allFinite()) return absl::InvalidArgumentError("the Hessian has non-finite values");
  double asym2 = 0;              // |H - Hᵀ|², without an n × n temporary, in tiles
  constexpr int64_t kTile = 64;  // two 64 × 64 double tiles stay in L1/L2
  for (int64_t j0 = 0; j0 < n; j0 += kTile) {
    for (int64_t i0 = j0; i0 < n; i0 += kTile) {
      for (int64_t j = j0; j < std::min(n, j0 + kTile); ++j) {
        for (int64_t i = std::max(i0, j + 1); i < std::min(n, i0 + kTile); ++i) {
          const double d = h(i, j) - h(j, i);
          asym2 += 2 * d * d;
        }
      }
    }
  }
  const double asym = std::sqrt(asym2);
  if (asym > 1e-5 * std::max(1e-30, h.norm())) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Hessian is not symmetric (|H - Hᵀ| / |H| = ", asym / h.norm(), ")"));
  }
  if (h.diagonal().minCoeff() < 0 || !(h.diagonal().mean() > 0)) {
    return absl::InvalidArgumentError(
        "the Hessian has a negative or all-zero diagonal; it is not a sum of x^T x");
  }
  if (o.method != "caldera" && o.method != "ldlq" && o.method != "rtn") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown method '", o.method, "'; use caldera, ldlq or rtn"));
  }
  if (o.method == "caldera" && (o.rank < 1 || o.rank > std::min(m, n))) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", o.rank, " is out of range for a ", m,
                                                   "x", n, " matrix; use 1..", std::min(m, n)));
  }
  if (absl::Status s = quant::ValidateSpec(o.q_spec); !s.ok()) return s;
  if (o.q_spec.kind == QuantizerSpec::Kind::kFloat) {
    return absl::InvalidArgumentError(absl::StrCat("--q-bits ", o.q_spec.bits,
                                                   " is not a quantized format; use 2-4 (e8p) or "
                                                   "2-8 (uniform)"));
  }
  if (o.method == "caldera") {
    if (absl::Status s = quant::ValidateSpec(o.lr_spec); !s.ok()) return s;
  }
  if (o.iters < 1 || o.lplr_iters < 1) {
    return absl::InvalidArgumentError("--iters and --lplr-iters must be at least 1");
  }
  return absl::OkStatus();
}

}  // namespace

double WeightedRelativeError(const MatrixF& w, const MatrixF& w_hat, const Eigen::MatrixXf& h) {
  const MatrixF e = w - w_hat;
  const double num = (e * h).cwiseProduct(e).cast<double>().sum();
  const double den = (w * h).cwiseProduct(w).cast<double>().sum();
  return den > 0 ? std::sqrt(std::max(0.0, num) / den) : 0.0;
}

absl::StatusOr<DecomposeResult> Decompose(const MatrixF& w, const Eigen::MatrixXd& h,
                                          const DecomposeOptions& o) {
  if (absl::Status s = Validate(w, h, o); !s.ok()) return s;
  const int64_t m = w.rows(), n = w.cols();
  const bool with_lr = o.method == "caldera";
  const int64_t k = with_lr ? o.rank : 0;
  auto progress = [&](const std::string& step, double f) {
    if (o.progress) o.progress(step, f);
  };
  auto cancelled = [&] { return o.cancelled && o.cancelled(); };

  float g = Rms(w);
  if (!(g > 0)) g = 1.0f;
  // Padding only where a quantizer needs it: Q's columns come in its blocks
  // (8 for E8P, 1 for uniform); L is quantized as Lᵀ (k × rows) and R (k ×
  // cols), so with L·R both sides come in the factors' blocks.
  const int64_t q_block = quant::BlockColsFor(o.q_spec);
  const int64_t lr_block = with_lr ? quant::BlockColsFor(FactorSpec(o)) : 1;
  absl::StatusOr<TwoSided> t =
      TwoSided::Make(m, n, PaddedSize(m, o.hadamard, lr_block),
                     PaddedSize(n, o.hadamard, std::lcm(q_block, lr_block)), o.hadamard, o.seed);
  if (!t.ok()) return t.status();
  const int64_t mp = t->mp(), np = t->np();

  // Algorithm Hessian: H / mean(diag) + damping·I, padded with the identity.
  Eigen::MatrixXd hp = Eigen::MatrixXd::Identity(np, np);
  hp.topLeftCorner(n, n) = h / h.diagonal().mean();
  hp.diagonal().array() += o.damping;
  const Eigen::MatrixXd ht = t->ForwardHessian(std::move(hp));
  const MatrixF wt = t->Forward(w / g);

  DecomposeResult result;
  result.padded_rows = mp;
  result.padded_cols = np;
  result.transform = t->Describe();

  // Errors. With no padding both transforms are orthogonal, so the error of
  // Ŵ = g·T⁻¹(Q + L·R) under H equals g²·tr(E·T(H)·Eᵀ) for E = W̃ − Q − L·R,
  // and T(H) = mean·(ht − damping·I). E·ht is assembled from G = (W̃ − Q)·ht,
  // which the next LR step needs anyway: one m × n × n product per Q step
  // serves both, and the LR step's error costs O(mnk). With padding the error
  // is measured in the original basis (inverse transform, E·H).
  const bool transformed_errors = mp == m && np == n;
  const double h_mean = h.diagonal().mean();
  // ht in float for the products with it; made when first needed (a plain
  // LDLQ-only run measures its errors from LDLQ's residuals and never is).
  MatrixF hf;
  auto ensure_hf = [&] {
    if (hf.size() == 0) hf = ht.cast<float>();
  };
  if (with_lr) ensure_hf();
  // H in float for errors measured in the original basis (padded shapes only).
  const Eigen::MatrixXf h_err = transformed_errors ? Eigen::MatrixXf() : h.cast<float>();
  // tr(W·H·Wᵀ), once for every step's relative error (set below).
  double denominator = 0;
  auto relative = [&](double num) {
    return denominator > 0 ? std::sqrt(std::max(0.0, num) / denominator) : 0.0;
  };

  // The lower Cholesky factor of ht: LR whitening and the downdate.
  std::optional<Eigen::MatrixXd> ht_chol;
  MatrixF m_chol;
  auto ensure_chol = [&]() -> absl::Status {
    if (ht_chol.has_value()) return absl::OkStatus();
    result.blas3_flops += static_cast<double>(np) * np * np / 3;
    Eigen::LLT<Eigen::MatrixXd> llt(ht);
    if (llt.info() != Eigen::Success) {
      return absl::FailedPreconditionError(
          "the damped Hessian is not positive definite (Cholesky failed)");
    }
    ht_chol = Eigen::MatrixXd(llt.matrixL());
    return absl::OkStatus();
  };
  if (with_lr) {
    progress("cholesky", 0.0);
    if (absl::Status s = ensure_chol(); !s.ok()) return s;
    m_chol = ht_chol->cast<float>();
    if (!o.hessian_downdate) ht_chol.reset();  // only the downdate needs it in double
  }

  MatrixF q = MatrixF::Zero(mp, np), l = MatrixF::Zero(mp, k), r = MatrixF::Zero(k, np);
  Exports q_export;
  int64_t q_bits = 0;
  LrState lr;
  bool have_q = false, have_lr = !with_lr;
  double best_err = std::numeric_limits<double>::infinity();
  MatrixF best_q_t, best_l_t, best_r_t;  // the kept iterate, transformed basis
  Exports best_q, best_l, best_r;
  int64_t best_bits = 0;
  // G = (W̃ − Q)·ht for the current Q; valid once computed for it. `work` is
  // an mp × np scratch matrix (the Q step's target, W̃ − Q, the error), kept
  // so the steps do not allocate and fault in a fresh one each time.
  MatrixF g_q, work;
  bool g_valid = false;
  auto ensure_g = [&] {
    if (g_valid) return;
    result.blas3_flops += 2.0 * mp * np * np;
    work = wt - q;
    ensure_hf();
    g_q.noalias() = work * hf;
    g_valid = true;
  };

  if (transformed_errors && with_lr && o.lr_first) {
    // With Q = 0, G = W̃·ht: the first LR step's product gives the
    // denominator too, g²·mean·(<G, W̃> − damping·|W̃|²) as for the errors.
    ensure_g();
    const double w_h_w = g_q.cwiseProduct(wt).cast<double>().sum();
    const double w_w = wt.cast<double>().squaredNorm();
    denominator = static_cast<double>(g) * g * h_mean * (w_h_w - o.damping * w_w);
  } else {
    result.blas3_flops += 2.0 * m * n * n;
    const MatrixF wh = transformed_errors ? MatrixF(w * h.cast<float>()) : MatrixF(w * h_err);
    denominator = wh.cwiseProduct(w).cast<double>().sum();
  }

  // After a plain LDLQ step: tr(E·H'·Eᵀ) from its rounding residuals (see
  // LdlqResult::factored_error) and the diagonal H' adds to ht; `work` still
  // holds that step's target, so E = work − Q.
  std::optional<std::pair<double, double>> q_step_error;
  auto error_of_current = [&]() -> double {
    if (transformed_errors && q_step_error.has_value()) {
      const double e_e = (work - q).cast<double>().squaredNorm();
      const double e_h_e = q_step_error->first - q_step_error->second * e_e;
      return relative(static_cast<double>(g) * g * h_mean * (e_h_e - o.damping * e_e));
    }
    const double lr_products = 4.0 * mp * np * k + 2.0 * k * np * np;
    if (!transformed_errors) {
      result.blas3_flops += 2.0 * m * n * n + lr_products / 2;
      MatrixF wt_hat = q;
      if (k > 0) wt_hat.noalias() += l * r;
      const MatrixF e = w - t->Inverse(wt_hat) * g;
      return relative((e * h_err).cwiseProduct(e).cast<double>().sum());
    }
    ensure_g();
    // E·ht = G − L·(R·ht), so tr(E·ht·Eᵀ) = <G, E> − <R·ht, Lᵀ·E>.
    MatrixF& e = work;
    e = wt - q;
    double e_h_e;
    if (k > 0) {
      result.blas3_flops += lr_products;
      e.noalias() -= l * r;
      const MatrixF rh = r * hf;
      const MatrixF lte = l.transpose() * e;
      e_h_e = g_q.cwiseProduct(e).cast<double>().sum() - rh.cwiseProduct(lte).cast<double>().sum();
    } else {
      e_h_e = g_q.cwiseProduct(e).cast<double>().sum();
    }
    const double e_e = e.cast<double>().squaredNorm();
    const double num = static_cast<double>(g) * g * h_mean * (e_h_e - o.damping * e_e);
    return relative(num);
  };
  auto evaluate = [&](const std::string& step) {
    const double err = error_of_current();
    result.history.emplace_back(step, err);
    if (have_q && have_lr && err < best_err) {
      best_err = err;
      best_q_t = q;
      best_l_t = l;
      best_r_t = r;
      best_q = CloneExports(q_export);
      if (k > 0) {
        best_l = CloneExports(lr.l_export);
        best_r = CloneExports(lr.r_export);
      }
      best_bits = q_bits + (k > 0 ? lr.bits : 0);
      result.best_step = static_cast<int>(result.history.size()) - 1;
    }
  };
  // LDLQ's factor of ht: the same for every Q step unless the downdate
  // changes the Hessian per step.
  LdlqOptions lo;
  // LDL blocks of 8 columns where they fit (a multiple of Q's block); a
  // uniform Q on an unpadded odd width uses the largest power of two dividing it.
  lo.block = 8;
  while (np % lo.block != 0 && lo.block > q_block) lo.block /= 2;
  lo.tune_sweeps = o.tune_sweeps;
  lo.act_order = o.act_order && q_block == 1;
  std::optional<LdlqFactor> ht_factor;
  auto q_step = [&]() -> absl::Status {
    q_step_error.reset();
    MatrixF& a = work;
    a = wt;
    if (k > 0) a.noalias() -= l * r;
    absl::StatusOr<std::unique_ptr<MatrixQuantizer>> qz = NewQuantizer(o.q_spec, mp, np, o.threads);
    if (!qz.ok()) return qz.status();
    if (o.method == "rtn") {
      q = TimedQuantizeNearest(**qz, a, &result.search_seconds);
    } else {
      absl::StatusOr<LdlqResult> res;
      // LDLQ's feedback products: m·n² in all.
      result.blas3_flops += static_cast<double>(mp) * np * np;
      if (o.hessian_downdate && k > 0 && have_lr) {
        if (absl::Status s = ensure_chol(); !s.ok()) return s;
        // R·M, M·V, the rank-k update and the new factor.
        result.blas3_flops += 4.0 * k * np * np + static_cast<double>(np) * np * np / 3;
        res = Ldlq(a, DowndatedHessian(ht, *ht_chol, l, r), **qz, lo);
      } else {
        if (!ht_factor.has_value()) {
          result.blas3_flops += static_cast<double>(np) * np * np / 3;
          absl::StatusOr<LdlqFactor> f = FactorForLdlq(ht, lo);
          if (!f.ok()) return f.status();
          ht_factor = *std::move(f);
        }
        res = Ldlq(a, ht, *ht_factor, **qz, lo);
      }
      if (!res.ok()) return res.status();
      q = std::move(res->q);
      if (!(o.hessian_downdate && k > 0 && have_lr) && res->factored_error >= 0) {
        q_step_error.emplace(res->factored_error, res->added_diagonal);
      }
      result.search_seconds += res->search_seconds;
      result.extra_damping = std::max(result.extra_damping, res->extra_damping);
    }
    q_export = (*qz)->Export();
    q_bits = (*qz)->StorageBits();
    have_q = true;
    g_valid = false;
    return absl::OkStatus();
  };
  auto lr_step = [&]() -> absl::Status {
    if (g_valid) {
      work = wt - q;
    } else {
      ensure_g();  // leaves W̃ − Q in work
    }
    absl::StatusOr<LrState> s =
        LowRankUpdate(work, g_q, hf, m_chol, k, o, &result.blas3_flops, &result.search_seconds);
    if (!s.ok()) return s.status();
    lr = *std::move(s);
    l = lr.l;
    r = lr.r;
    have_lr = true;
    q_step_error.reset();
    return absl::OkStatus();
  };

  const int outer = with_lr ? o.iters : 1;
  for (int it = 0; it < outer; ++it) {
    const std::vector<std::string> order = !with_lr
                                               ? std::vector<std::string>{"q"}
                                               : (o.lr_first ? std::vector<std::string>{"lr", "q"}
                                                             : std::vector<std::string>{"q", "lr"});
    for (const std::string& step : order) {
      if (cancelled()) return absl::CancelledError("decomposition cancelled");
      progress(step, static_cast<double>(it) / outer);
      absl::Status s = step == "q" ? q_step() : lr_step();
      if (!s.ok()) return s;
      evaluate(step);
    }
  }
  progress("done", 1.0);

  {
    MatrixF wt_hat = std::move(best_q_t);
    if (k > 0) wt_hat.noalias() += best_l_t * best_r_t;
    result.w_hat = t->Inverse(wt_hat) * g;
  }
  result.weighted_relative_error = best_err;
  result.relative_error = (w - result.w_hat).norm() / std::max(1e-30f, w.norm());
  result.storage_bits = best_bits + 32 /* global scale */ + (o.hadamard ? 64 : 0) /* seed */;
  result.bits_per_param = static_cast<double>(result.storage_bits) / static_cast<double>(m * n);

  format::MatrixRecordConfig config;
  config.method = o.method;
  config.rows = m;
  config.cols = n;
  config.padded_rows = mp;
  config.padded_cols = np;
  config.rank = k;
  config.q = SpecRecord(o.q_spec);
  config.lr = SpecRecord(FactorSpec(o));
  config.hadamard = o.hadamard;
  config.seed = o.seed;
  config.update_order = !with_lr ? "q" : (o.lr_first ? "lr,q" : "q,lr");
  config.hessian_downdate = o.hessian_downdate && with_lr;
  config.global_scale = g;
  result.record.emplace_back(format::kRecordConfigName, format::RecordConfigTensor(config));
  for (auto& [name, tensor] : best_q)
    result.record.emplace_back("caldera.q." + name, std::move(tensor));
  for (auto& [name, tensor] : best_l)
    result.record.emplace_back("caldera.l." + name, std::move(tensor));
  for (auto& [name, tensor] : best_r)
    result.record.emplace_back("caldera.r." + name, std::move(tensor));
  return result;
}

namespace {

// A record decoded in its own (padded, transformed) basis: Q (mp × np) and,
// when the rank is > 0, Lᵀ (k × mp) and R (k × np), plus the transform that
// maps back to the original basis.
struct DecodedRecord {
  format::MatrixRecordConfig config;
  MatrixF q, lt, r;
  std::optional<TwoSided> transform;
};

absl::StatusOr<DecodedRecord> DecodeRecord(const Exports& record) {
  const Tensor* config_t = nullptr;
  Exports qe, le, re;
  for (const auto& [name, t] : record) {
    if (name == "caldera.config") config_t = &t;
    if (name.rfind("caldera.q.", 0) == 0) qe.emplace_back(name.substr(10), t.Clone());
    if (name.rfind("caldera.l.", 0) == 0) le.emplace_back(name.substr(10), t.Clone());
    if (name.rfind("caldera.r.", 0) == 0) re.emplace_back(name.substr(10), t.Clone());
  }
  if (config_t == nullptr) return absl::InvalidArgumentError("record has no caldera.config");
  absl::StatusOr<format::MatrixRecordConfig> c = format::RecordConfigFromTensor(*config_t, "");
  if (!c.ok()) return c.status();
  DecodedRecord out;
  out.config = *std::move(c);
  const format::MatrixRecordConfig& cf = out.config;
  const int64_t mp = cf.padded_rows, np = cf.padded_cols, k = cf.rank;
  absl::StatusOr<QuantizerSpec> q_spec = SpecFromRecord(cf.q);
  if (!q_spec.ok()) return q_spec.status();
  absl::StatusOr<MatrixF> q = quant::Dequantize(*q_spec, mp, np, qe);
  if (!q.ok()) return q.status();
  out.q = *std::move(q);
  if (k > 0) {
    absl::StatusOr<QuantizerSpec> lr_spec = SpecFromRecord(cf.lr);
    if (!lr_spec.ok()) return lr_spec.status();
    absl::StatusOr<MatrixF> lt = quant::Dequantize(*lr_spec, k, mp, le);
    absl::StatusOr<MatrixF> r = quant::Dequantize(*lr_spec, k, np, re);
    if (!lt.ok()) return lt.status();
    if (!r.ok()) return r.status();
    out.lt = *std::move(lt);
    out.r = *std::move(r);
  }
  // The record's own padding (it depends on the quantizers that wrote it).
  absl::StatusOr<TwoSided> t = TwoSided::Make(cf.rows, cf.cols, mp, np, cf.hadamard, cf.seed);
  if (!t.ok()) return t.status();
  out.transform.emplace(*std::move(t));
  return out;
}

}  // namespace

absl::StatusOr<MatrixF> Reconstruct(const Exports& record) {
  absl::StatusOr<DecodedRecord> d = DecodeRecord(record);
  if (!d.ok()) return d.status();
  MatrixF wt = std::move(d->q);
  if (d->config.rank > 0) {
    const MatrixF l = d->lt.transpose();
    wt.noalias() += l * d->r;
  }
  return MatrixF(d->transform->Inverse(wt) * static_cast<float>(d->config.global_scale));
}

absl::StatusOr<RecordFactors> ReconstructFactors(const Exports& record) {
  absl::StatusOr<DecodedRecord> d = DecodeRecord(record);
  if (!d.ok()) return d.status();
  const float g = static_cast<float>(d->config.global_scale);
  RecordFactors out;
  out.method = d->config.method;
  out.q = MatrixF(d->transform->Inverse(d->q) * g);
  if (d->config.rank > 0) {
    out.l = MatrixF(d->transform->InverseLeft(d->lt.transpose()) * g);
    out.r = d->transform->InverseRight(d->r);
  } else {
    out.l = MatrixF(d->config.rows, 0);
    out.r = MatrixF(0, d->config.cols);
  }
  return out;
}

}  // namespace caldera::decompose
