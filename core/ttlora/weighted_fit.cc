#include "core/ttlora/weighted_fit.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace caldera::ttlora {
namespace {

double Dot(const CoreMatrix& a, const CoreMatrix& b) { return a.cwiseProduct(b).sum(); }

// Cores lo..k-1 contracted onto the identity of bond r_lo:
// (r_lo · s_lo ⋯ s_{k-1}) × r_k, rows in row-major order of (bond, digits).
CoreMatrix Prefix(const TensorTrain& tt, size_t lo, size_t k) {
  CoreMatrix acc = CoreMatrix::Identity(tt.ranks[lo], tt.ranks[lo]);
  for (size_t j = lo; j < k; ++j) {
    const int64_t rows = acc.rows(), s = tt.shape[j], rj = tt.ranks[j + 1];
    Eigen::Map<const CoreMatrix> g(tt.cores[j].data(), tt.ranks[j], s * rj);
    CoreMatrix next = acc * g;
    acc = Eigen::Map<CoreMatrix>(next.data(), rows * s, rj);
  }
  return acc;
}

// Cores k+1..hi contracted onto the identity of bond r_{hi+1}:
// r_k × (s_{k+1} ⋯ s_hi · r_{hi+1}).
CoreMatrix Suffix(const TensorTrain& tt, size_t k, size_t hi) {
  CoreMatrix acc = CoreMatrix::Identity(tt.ranks[hi + 1], tt.ranks[hi + 1]);
  for (size_t j = hi; j > k; --j) {
    const int64_t cols = acc.cols(), s = tt.shape[j], rj1 = tt.ranks[j];
    Eigen::Map<const CoreMatrix> g(tt.cores[j].data(), rj1 * s, tt.ranks[j + 1]);
    CoreMatrix next = g * acc;
    acc = Eigen::Map<CoreMatrix>(next.data(), rj1, s * cols);
  }
  return acc;
}

// Core k as the only free part of its segment's factor T (A for an input
// core, B for an output core): T = Φ(G) and the adjoint Φᵀ.
class CoreMap {
 public:
  CoreMap(const TensorTrain& tt, size_t lo, size_t hi, size_t k)
      : left_(Prefix(tt, lo, k)),
        right_(Suffix(tt, k, hi)),
        r_in_(tt.ranks[k]),
        s_(tt.shape[k]),
        r_out_(tt.ranks[k + 1]) {}

  // G ((r_in·s) × r_out) -> T ((left rows · s) × right cols), row-major.
  CoreMatrix Apply(const CoreMatrix& g) const {
    Eigen::Map<const CoreMatrix> gm(g.data(), r_in_, s_ * r_out_);
    CoreMatrix z = left_ * gm;  // rows × (s·r_out)
    Eigen::Map<const CoreMatrix> zr(z.data(), left_.rows() * s_, r_out_);
    return zr * right_;
  }

  // Φᵀ: T-shaped -> core-shaped.
  CoreMatrix Adjoint(const CoreMatrix& t) const {
    CoreMatrix w = t * right_.transpose();  // (rows·s) × r_out
    Eigen::Map<const CoreMatrix> wm(w.data(), left_.rows(), s_ * r_out_);
    CoreMatrix g = left_.transpose() * wm;  // r_in × (s·r_out)
    return Eigen::Map<const CoreMatrix>(g.data(), r_in_ * s_, r_out_);
  }

  int64_t rows() const { return left_.rows() * s_; }
  int64_t cols() const { return right_.cols(); }

 private:
  CoreMatrix left_, right_;
  int64_t r_in_, s_, r_out_;
};

// f − tr(E·H·Eᵀ) = ⟨T, 𝓜 T⟩ − 2⟨T, Y⟩ for the segment factor T viewed as a
// matrix (input: d_in × r_p; output: r_p × d_out), with
//   input:  𝓜 T = α²·H·T·S, S = B·Bᵀ;   Y = α·H·Eᵀ·Bᵀ
//   output: 𝓜 T = α²·K·T,  K = Aᵀ·H·A;  Y = α·Aᵀ·H·Eᵀ.
struct SegmentObjective {
  const Eigen::MatrixXd* h = nullptr;  // input segment: H; output: null (use k)
  Eigen::MatrixXd k;                   // output segment's K
  Eigen::MatrixXd s;                   // input segment's S
  double alpha2 = 1;
  CoreMatrix y;
  int64_t rows = 0, cols = 0;

  // 𝓜 applied to a T given in any row-major shape of rows·cols entries;
  // the result has the same shape.
  CoreMatrix Apply(const CoreMatrix& t_any) const {
    Eigen::Map<const CoreMatrix> t(t_any.data(), rows, cols);
    const CoreMatrix m =
        h != nullptr ? CoreMatrix(alpha2 * ((*h) * t) * s) : CoreMatrix(alpha2 * k * t);
    return Eigen::Map<const CoreMatrix>(m.data(), t_any.rows(), t_any.cols());
  }
};

SegmentObjective InputObjective(const TensorTrain& tt, size_t p, const Eigen::MatrixXd& e,
                                const Eigen::MatrixXd& h, double alpha) {
  const CoreMatrix b = Suffix(tt, p - 1, tt.shape.size() - 1);  // r_p × d_out
  SegmentObjective o;
  o.h = &h;
  o.s = b * b.transpose();
  o.alpha2 = alpha * alpha;
  o.y = alpha * (h * (e.transpose() * b.transpose()));  // d_in × r_p
  o.rows = e.cols();
  o.cols = b.rows();
  return o;
}

SegmentObjective OutputObjective(const TensorTrain& tt, size_t p, const Eigen::MatrixXd& e,
                                 const Eigen::MatrixXd& h, double alpha) {
  const CoreMatrix a = Prefix(tt, 0, p);  // d_in × r_p
  const Eigen::MatrixXd ha = h * a;
  SegmentObjective o;
  o.k = a.transpose() * ha;
  o.alpha2 = alpha * alpha;
  o.y = alpha * (ha.transpose() * e.transpose());  // r_p × d_out
  o.rows = a.cols();
  o.cols = e.rows();
  return o;
}

// Makes core k left-orthonormal, moving its R factor into core k+1.
void LeftOrthonormalize(TensorTrain& tt, size_t k) {
  CoreMatrix& g = tt.cores[k];
  const int64_t r = g.cols();
  if (g.rows() < r) return;  // cannot be orthonormal; only conditioning is lost
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  const Eigen::MatrixXd rf = qr.matrixQR().topRows(r).triangularView<Eigen::Upper>();
  g = qr.householderQ() * Eigen::MatrixXd::Identity(g.rows(), r);
  Eigen::Map<CoreMatrix> next(tt.cores[k + 1].data(), r, tt.shape[k + 1] * tt.ranks[k + 2]);
  const CoreMatrix moved = rf * next;
  next = moved;
}

// Makes core k right-orthonormal (as r_{k-1} × (s_k·r_k)), moving its L
// factor into core k-1.
void RightOrthonormalize(TensorTrain& tt, size_t k) {
  const int64_t r = tt.ranks[k], n = tt.shape[k] * tt.ranks[k + 1];
  if (n < r) return;
  Eigen::Map<CoreMatrix> g(tt.cores[k].data(), r, n);
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g.transpose());
  const Eigen::MatrixXd rf = qr.matrixQR().topRows(r).triangularView<Eigen::Upper>();
  const Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(n, r);
  g = q.transpose();
  tt.cores[k - 1] = tt.cores[k - 1] * rf.transpose();
}

}  // namespace

absl::StatusOr<WeightedFitStats> FitWeighted(const Eigen::MatrixXd& e, const Eigen::MatrixXd& h,
                                             double residual_error, double alpha,
                                             size_t input_cores, const WeightedFitOptions& options,
                                             TensorTrain* tt) {
  const size_t d = tt->shape.size();
  if (input_cores < 1 || input_cores >= d) {
    return absl::InvalidArgumentError(
        absl::StrCat("weighted TT fit: ", input_cores, " input cores of ", d));
  }
  if (tt->cores.size() != d || tt->ranks.size() != d + 1 || tt->ranks.front() != 1 ||
      tt->ranks.back() != 1) {
    return absl::InvalidArgumentError("weighted TT fit: inconsistent tensor train");
  }
  int64_t d_in = 1, d_out = 1;
  for (size_t k = 0; k < d; ++k) {
    if (tt->cores[k].rows() != tt->ranks[k] * tt->shape[k] ||
        tt->cores[k].cols() != tt->ranks[k + 1]) {
      return absl::InvalidArgumentError(absl::StrCat("weighted TT fit: core ", k, " is misshaped"));
    }
    (k < input_cores ? d_in : d_out) *= tt->shape[k];
  }
  if (e.rows() != d_out || e.cols() != d_in || h.rows() != d_in || h.cols() != d_in) {
    return absl::InvalidArgumentError(
        absl::StrCat("weighted TT fit: residual ", e.rows(), "x", e.cols(), " and Hessian ",
                     h.rows(), "x", h.cols(), " do not match a ", d_out, "x", d_in, " train"));
  }
  const double base = residual_error;
  WeightedFitStats stats;
  bool first = true;

  // Cores 1..d-1 right-orthonormal before the first left-to-right sweep.
  for (size_t k = d - 1; k >= 1; --k) RightOrthonormalize(*tt, k);

  for (int sweep = 0; sweep < options.sweeps; ++sweep) {
    const bool forward = sweep % 2 == 0;
    for (size_t step = 0; step < d; ++step) {
      const size_t k = forward ? step : d - 1 - step;
      const bool input = k < input_cores;
      const SegmentObjective obj = input ? InputObjective(*tt, input_cores, e, h, alpha)
                                         : OutputObjective(*tt, input_cores, e, h, alpha);
      const CoreMap phi(*tt, input ? 0 : input_cores, input ? input_cores - 1 : d - 1, k);
      auto m_apply = [&](const CoreMatrix& g) { return phi.Adjoint(obj.Apply(phi.Apply(g))); };
      const CoreMatrix y_view = Eigen::Map<const CoreMatrix>(obj.y.data(), phi.rows(), phi.cols());
      const CoreMatrix b = phi.Adjoint(y_view);

      // Conjugate gradients on (Φᵀ𝓜Φ) g = Φᵀ Y from the current core: each
      // step lowers ⟨g, Mg⟩ − 2⟨g, b⟩, i.e. f.
      CoreMatrix& g = tt->cores[k];
      CoreMatrix mg = m_apply(g);
      if (first) {
        stats.error_start = base + Dot(g, mg) - 2 * Dot(g, b);
        first = false;
      }
      CoreMatrix r = b - mg;
      CoreMatrix dir = r;
      double rs = r.squaredNorm();
      const double stop =
          options.cg_tolerance * options.cg_tolerance * std::max(b.squaredNorm(), 1e-300);
      for (int it = 0; it < options.max_cg_steps && rs > stop; ++it) {
        const CoreMatrix md = m_apply(dir);
        const double dmd = Dot(dir, md);
        if (!(dmd > 0)) break;
        const double step_len = rs / dmd;
        g += step_len * dir;
        mg += step_len * md;
        r -= step_len * md;
        const double rs_next = r.squaredNorm();
        dir = r + (rs_next / rs) * dir;
        rs = rs_next;
        ++stats.cg_steps;
      }
      ++stats.core_updates;
      stats.error_end = base + Dot(g, mg) - 2 * Dot(g, b);
      if (forward && k + 1 < d) LeftOrthonormalize(*tt, k);
      if (!forward && k > 0) RightOrthonormalize(*tt, k);
    }
  }
  if (first) stats.error_start = stats.error_end = base;  // no sweeps
  return stats;
}

}  // namespace caldera::ttlora
