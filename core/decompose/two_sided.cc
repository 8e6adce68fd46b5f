#include "core/decompose/two_sided.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace caldera::decompose {
namespace {

constexpr uint64_t kRowSignSalt = 0x5bd1e9955bd1e995ull;

using quant::MatrixF;

}  // namespace

int64_t PaddedSize(int64_t n, bool hadamard, int64_t multiple) {
  const int64_t first = (n + multiple - 1) / multiple * multiple;
  if (!hadamard) return first;
  for (int64_t v = first;; v += multiple) {
    if (transform::HadamardTransform::Create(v).ok()) return v;
  }
}

absl::StatusOr<TwoSided> TwoSided::Make(int64_t m, int64_t n, int64_t mp, int64_t np, bool hadamard,
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

std::string TwoSided::Describe() const {
  std::string s = hadamard_ ? absl::StrCat("rht K=", hm_->order(), "x", hn_->order()) : "none";
  if (mp_ != m_ || np_ != n_) {
    absl::StrAppend(&s, ", padded ", m_, "x", n_, " -> ", mp_, "x", np_);
  }
  return s;
}

absl::StatusOr<MatrixF> TwoSided::Forward(backend::ComputeBackend& be, const MatrixF& w) const {
  MatrixF x = MatrixF::Zero(mp_, np_);
  x.topLeftCorner(m_, n_) = w;
  if (!hadamard_) return x;
  for (int64_t c = 0; c < np_; ++c) {
    x.col(c) = x.col(c).cwiseProduct(Eigen::Map<const Eigen::VectorXf>(sv_.data(), mp_)) * su_[c];
  }
  if (absl::Status s = be.HadamardColumns(*hm_, /*transpose=*/true, &x); !s.ok()) return s;
  if (absl::Status s = be.HadamardRows(*hn_, /*transpose=*/true, &x); !s.ok()) return s;
  return x;
}

absl::StatusOr<MatrixF> TwoSided::Inverse(backend::ComputeBackend& be, const MatrixF& wt) const {
  if (!hadamard_) return MatrixF(wt.topLeftCorner(m_, n_));
  MatrixF x = wt;
  if (absl::Status s = be.HadamardColumns(*hm_, /*transpose=*/false, &x); !s.ok()) return s;
  if (absl::Status s = be.HadamardRows(*hn_, /*transpose=*/false, &x); !s.ok()) return s;
  MatrixF out(m_, n_);
  for (int64_t c = 0; c < n_; ++c) {
    out.col(c) =
        x.col(c).head(m_).cwiseProduct(Eigen::Map<const Eigen::VectorXf>(sv_.data(), m_)) * su_[c];
  }
  return out;
}

absl::StatusOr<MatrixF> TwoSided::InverseLeft(backend::ComputeBackend& be,
                                              const MatrixF& lt) const {
  if (!hadamard_) return MatrixF(lt.topRows(m_));
  MatrixF x = lt;
  if (absl::Status s = be.HadamardColumns(*hm_, /*transpose=*/false, &x); !s.ok()) return s;
  MatrixF out = x.topRows(m_);
  for (int64_t c = 0; c < out.cols(); ++c) {
    out.col(c) = out.col(c).cwiseProduct(Eigen::Map<const Eigen::VectorXf>(sv_.data(), m_));
  }
  return out;
}

absl::StatusOr<MatrixF> TwoSided::InverseRight(backend::ComputeBackend& be,
                                               const MatrixF& rt) const {
  if (!hadamard_) return MatrixF(rt.leftCols(n_));
  MatrixF x = rt;
  if (absl::Status s = be.HadamardRows(*hn_, /*transpose=*/false, &x); !s.ok()) return s;
  MatrixF out = x.leftCols(n_);
  for (int64_t c = 0; c < n_; ++c) out.col(c) *= su_[c];
  return out;
}

absl::StatusOr<Eigen::MatrixXd> TwoSided::ForwardHessian(backend::ComputeBackend& be,
                                                         Eigen::MatrixXd h) const {
  if (!hadamard_) return h;
  for (int64_t c = 0; c < np_; ++c) {
    for (int64_t r = 0; r < np_; ++r) h(r, c) *= su_[r] * su_[c];
  }
  if (absl::Status s = be.HadamardColumnsD(*hn_, /*transpose=*/true, &h); !s.ok()) return s;
  if (absl::Status s = be.HadamardRowsD(*hn_, /*transpose=*/true, &h); !s.ok()) return s;
  return h;
}

}  // namespace caldera::decompose
