#include "core/transform/randomized_hadamard.h"

#include "absl/strings/str_cat.h"

namespace caldera::transform {
namespace {

// x ← x · Had (or x · Hadᵀ).
template <typename Matrix>
void ApplyToRows(const HadamardTransform& t, Matrix* x, bool transpose) {
  // x·Had: each row u becomes (Hadᵀ·u)ᵀ, computed on the rows in place.
  t.ApplyToRows(x, !transpose);
}

}  // namespace

absl::StatusOr<RandomizedHadamard> RandomizedHadamard::Create(int64_t m, int64_t n, uint64_t seed) {
  if (m < 1 || n < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("randomized Hadamard: shape ", m, "x", n, " must be at least 1x1"));
  }
  return Create(SignsFromSeed(seed ^ kRowSignSalt, m), SignsFromSeed(seed, n));
}

absl::StatusOr<RandomizedHadamard> RandomizedHadamard::Create(std::vector<float> signs_v,
                                                              std::vector<float> signs_u) {
  absl::StatusOr<HadamardTransform> hm =
      HadamardTransform::Create(static_cast<int64_t>(signs_v.size()));
  if (!hm.ok()) return hm.status();
  absl::StatusOr<HadamardTransform> hn =
      HadamardTransform::Create(static_cast<int64_t>(signs_u.size()));
  if (!hn.ok()) return hn.status();
  return RandomizedHadamard(*std::move(hm), *std::move(hn), std::move(signs_v), std::move(signs_u));
}

Eigen::MatrixXf RandomizedHadamard::TransformWeight(Eigen::MatrixXf w) const {
  const Eigen::Map<const Eigen::VectorXf> sv(sv_.data(), rows());
  for (int64_t c = 0; c < w.cols(); ++c) w.col(c) = w.col(c).cwiseProduct(sv) * su_[c];
  hm_.ApplyToColumns(&w, /*transpose=*/true);
  ApplyToRows(hn_, &w, /*transpose=*/false);
  return w;
}

Eigen::MatrixXf RandomizedHadamard::InverseWeight(Eigen::MatrixXf wt) const {
  hm_.ApplyToColumns(&wt, /*transpose=*/false);
  ApplyToRows(hn_, &wt, /*transpose=*/true);
  const Eigen::Map<const Eigen::VectorXf> sv(sv_.data(), rows());
  for (int64_t c = 0; c < wt.cols(); ++c) wt.col(c) = wt.col(c).cwiseProduct(sv) * su_[c];
  return wt;
}

Eigen::MatrixXd RandomizedHadamard::TransformHessian(Eigen::MatrixXd h) const {
  for (int64_t c = 0; c < h.cols(); ++c) {
    for (int64_t r = 0; r < h.rows(); ++r) h(r, c) *= su_[r] * su_[c];
  }
  hn_.ApplyToColumns(&h, /*transpose=*/true);
  ApplyToRows(hn_, &h, /*transpose=*/false);
  return h;
}

}  // namespace caldera::transform
