#include "core/ttlora/weighted_fit.h"

#include <random>

#include "core/ttlora/adapter.h"
#include "core/ttlora/tt_svd.h"
#include "gtest/gtest.h"

namespace caldera::ttlora {
namespace {

Eigen::MatrixXd Gaussian(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  Eigen::MatrixXd m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

// A Hessian like a calibrated one: X·Xᵀ/n of correlated activations with a
// decaying spectrum, plus a little damping.
Eigen::MatrixXd CorrelatedHessian(int64_t d, uint32_t seed) {
  Eigen::MatrixXd mix = Gaussian(d, d, seed);
  for (int64_t j = 0; j < d; ++j) mix.col(j) *= std::pow(0.85, j);
  const Eigen::MatrixXd x = mix * Gaussian(d, 4 * d, seed + 1);
  Eigen::MatrixXd h = x * x.transpose() / (4.0 * d);
  h.diagonal().array() += 1e-3 * h.diagonal().mean();
  return h;
}

double Weighted(const Eigen::MatrixXd& e, const Eigen::MatrixXd& h) {
  return (e * h).cwiseProduct(e).sum();
}

// The train's ΔW (d_out × d_in) for `input_cores` input digits.
Eigen::MatrixXd Delta(const TensorTrain& tt, int64_t d_out, int64_t d_in) {
  const Eigen::VectorXd full = tt.Full();  // ΔWᵀ row-major: d_in × d_out
  return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
             full.data(), d_in, d_out)
      .transpose();
}

TensorTrain SvdStart(const Eigen::MatrixXd& e, const std::vector<int64_t>& dims,
                     std::vector<int64_t> caps, double alpha) {
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> et = e.transpose();
  TtSvdOptions o;
  o.rank_caps = std::move(caps);
  TensorTrain tt = *TtSvd(Eigen::Map<const Eigen::VectorXd>(et.data(), et.size()), dims, o);
  tt.cores.back() /= alpha;
  return tt;
}

// Two cores (one input digit, one output digit) with bond r is a rank-r
// matrix, whose weighted optimum is known in closed form: with H = M·Mᵀ,
// f = ‖(E − α·ΔW)·M‖², minimised by α·ΔW·M = [E·M]_r, leaving Σ_{i>r} σ_i².
TEST(WeightedFitTest, TwoCoresReachTheExactWeightedRankROptimum) {
  const int64_t d_out = 24, d_in = 20, r = 3;
  const double alpha = 2.0;
  const Eigen::MatrixXd e = Gaussian(d_out, d_in, 1);
  const Eigen::MatrixXd h = CorrelatedHessian(d_in, 2);
  const Eigen::MatrixXd m = Eigen::LLT<Eigen::MatrixXd>(h).matrixL();
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(e * m);
  const double optimum = svd.singularValues().tail(d_in - r).squaredNorm();

  TensorTrain tt = SvdStart(e, {d_in, d_out}, {r}, alpha);
  const double plain = Weighted(e - alpha * Delta(tt, d_out, d_in), h);
  WeightedFitOptions o;
  o.sweeps = 40;
  o.max_cg_steps = 200;
  absl::StatusOr<WeightedFitStats> s = FitWeighted(e, h, Weighted(e, h), alpha, 1, o, &tt);
  ASSERT_TRUE(s.ok()) << s.status();
  const double fitted = Weighted(e - alpha * Delta(tt, d_out, d_in), h);
  EXPECT_NEAR(s->error_start, plain, 1e-9 * plain);
  EXPECT_NEAR(s->error_end, fitted, 1e-9 * plain);
  // The unweighted start is clearly off the weighted optimum; the fit reaches it.
  EXPECT_GT(plain, 2 * optimum);
  EXPECT_NEAR(fitted, optimum, 1e-6 * optimum);
}

// With uncapped bonds the train can hold any matrix: the fit removes the
// whole residual.
TEST(WeightedFitTest, FullRankTrainRemovesTheResidual) {
  const Eigen::MatrixXd e = Gaussian(12, 8, 3);
  const Eigen::MatrixXd h = CorrelatedHessian(8, 4);
  // ΔWᵀ is 8 × 12 over [4, 2 | 3, 4]; TT-SVD of a random tensor at caps
  // [4, 8, 4] is exact, so start from a perturbed train instead.
  TensorTrain tt = SvdStart(Gaussian(12, 8, 5), {4, 2, 3, 4}, {4, 8, 4}, 1.0);
  WeightedFitOptions o;
  o.sweeps = 6;
  o.max_cg_steps = 500;
  const double before = Weighted(e, h);
  absl::StatusOr<WeightedFitStats> s = FitWeighted(e, h, before, 1.0, 2, o, &tt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_LT(Weighted(e - Delta(tt, 12, 8), h), 1e-12 * before);
}

// A multi-core adapter on an LLM-like residual: every core update lowers f,
// the tracked value agrees with the recomputed one, and the weighted fit
// beats the unweighted TT-SVD it starts from by a wide margin.
TEST(WeightedFitTest, MultiCoreFitLowersTheRecomputedError) {
  const int64_t d_out = 64, d_in = 48;
  const Eigen::MatrixXd e = Gaussian(d_out, d_in, 7) * 0.1 +
                            Gaussian(d_out, 2, 8) * Gaussian(2, d_in, 9);  // low rank + noise
  const Eigen::MatrixXd h = CorrelatedHessian(d_in, 10);
  const std::vector<int64_t> dims = {4, 4, 3, 4, 4, 4};
  TensorTrain tt = SvdStart(e, dims, {4, 4, 4, 4, 4}, 1.0);
  const double before = Weighted(e, h);
  const double plain = Weighted(e - Delta(tt, d_out, d_in), h);
  double previous = plain;
  for (int sweep = 0; sweep < 4; ++sweep) {
    WeightedFitOptions o;
    o.sweeps = 1;
    absl::StatusOr<WeightedFitStats> s = FitWeighted(e, h, before, 1.0, 3, o, &tt);
    ASSERT_TRUE(s.ok()) << s.status();
    const double now = Weighted(e - Delta(tt, d_out, d_in), h);
    EXPECT_NEAR(s->error_end, now, 1e-8 * before);
    EXPECT_LE(now, previous * (1 + 1e-12));
    previous = now;
  }
  EXPECT_LT(previous, 0.57 * plain);
  EXPECT_LT(previous, before);
}

TEST(WeightedFitTest, BadShapesAreRefused) {
  TensorTrain tt = SvdStart(Gaussian(6, 4, 1), {2, 2, 2, 3}, {2, 2, 2}, 1.0);
  const Eigen::MatrixXd h = Eigen::MatrixXd::Identity(4, 4);
  EXPECT_FALSE(FitWeighted(Gaussian(6, 4, 1), h, 1, 1, 0, {}, &tt).ok());
  EXPECT_FALSE(FitWeighted(Gaussian(6, 4, 1), h, 1, 1, 4, {}, &tt).ok());
  EXPECT_FALSE(FitWeighted(Gaussian(4, 6, 1), h, 1, 1, 2, {}, &tt).ok());
  EXPECT_TRUE(FitWeighted(Gaussian(6, 4, 1), h, 1, 1, 2, {}, &tt).ok());
}

}  // namespace
}  // namespace caldera::ttlora
