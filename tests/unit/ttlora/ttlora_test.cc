#include <cstring>
#include <random>

#include "core/ttlora/adapter.h"
#include "core/ttlora/tt_svd.h"
#include "gtest/gtest.h"

namespace caldera::ttlora {
namespace {

Eigen::VectorXd Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  Eigen::VectorXd v(n);
  for (int64_t i = 0; i < n; ++i) v(i) = normal(rng);
  return v;
}

TEST(TtSvdTest, ExactWithUncappedRanks) {
  const std::vector<int64_t> shape = {3, 4, 2, 5};
  const Eigen::VectorXd a = Random(120, 1);
  absl::StatusOr<TensorTrain> tt = TtSvd(a, shape, {});
  ASSERT_TRUE(tt.ok()) << tt.status();
  EXPECT_LT((tt->Full() - a).norm(), 1e-10 * a.norm());
  EXPECT_EQ(tt->ranks, (std::vector<int64_t>{1, 3, 10, 5, 1}));
}

TEST(TtSvdTest, ToleranceGuaranteeOnRandomAndLowRankTensors) {
  const std::vector<int64_t> shape = {4, 4, 4, 4, 4};
  // A random tensor and a TT-low-rank one (built from random rank-2 cores).
  std::vector<Eigen::VectorXd> tensors = {Random(1024, 2)};
  TensorTrain low;
  low.shape = shape;
  low.ranks = {1, 2, 2, 2, 2, 1};
  for (size_t k = 0; k < shape.size(); ++k) {
    Eigen::VectorXd c = Random(low.ranks[k] * 4 * low.ranks[k + 1], 10 + k);
    low.cores.push_back(Eigen::Map<CoreMatrix>(c.data(), low.ranks[k] * 4, low.ranks[k + 1]));
  }
  tensors.push_back(low.Full() + 1e-3 * Random(1024, 3));
  for (const Eigen::VectorXd& a : tensors) {
    for (double eps : {0.01, 0.1, 0.3, 0.7}) {
      TtSvdOptions o;
      o.relative_tolerance = eps;
      absl::StatusOr<TensorTrain> tt = TtSvd(a, shape, o);
      ASSERT_TRUE(tt.ok());
      EXPECT_LE((tt->Full() - a).norm(), eps * a.norm() * (1 + 1e-9)) << eps;
    }
  }
  // The low-rank tensor is found at (about) its true ranks.
  TtSvdOptions o;
  o.relative_tolerance = 0.01;
  absl::StatusOr<TensorTrain> tt = TtSvd(tensors[1], shape, o);
  ASSERT_TRUE(tt.ok());
  EXPECT_EQ(tt->ranks, (std::vector<int64_t>{1, 2, 2, 2, 2, 1}));
}

TEST(TtSvdTest, BadInputs) {
  EXPECT_FALSE(TtSvd(Random(10, 1), {3, 3}, {}).ok());
  TtSvdOptions o;
  o.rank_caps = {2};
  EXPECT_FALSE(TtSvd(Random(27, 1), {3, 3, 3}, o).ok());
  o.rank_caps = {0, 1};
  EXPECT_FALSE(TtSvd(Random(27, 1), {3, 3, 3}, o).ok());
}

TEST(AdapterTest, ParameterCountsMatchTheFormulaAndPublishedShapes) {
  // 4096x4096, 12 cores [16,4,4,4,2,2 | 2,2,4,4,4,16], r = 5: 960 parameters.
  absl::StatusOr<InitResult> r =
      InitializeAdapter(Eigen::MatrixXf::Zero(64, 48), Eigen::MatrixXf::Zero(64, 48),
                        Eigen::MatrixXf::Identity(48, 48), AdapterShape{{4, 4, 3}, {4, 4, 4}}, 3,
                        1.0, InitMode::kZero, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  int64_t expect = 0;
  for (size_t k = 0; k < r->adapter.tt.shape.size(); ++k) {
    expect += r->adapter.tt.ranks[k] * r->adapter.tt.shape[k] * r->adapter.tt.ranks[k + 1];
  }
  EXPECT_EQ(r->adapter.Params(), expect);
  EXPECT_EQ(r->adapter.tt.ranks, (std::vector<int64_t>{1, 3, 3, 3, 3, 3, 1}));
  // The published 4096x4096 count, from the formula on the ranks TT-LoRA uses.
  TensorTrain t;
  t.shape = {16, 4, 4, 4, 2, 2, 2, 2, 4, 4, 4, 16};
  t.ranks = std::vector<int64_t>(13, 5);
  t.ranks.front() = t.ranks.back() = 1;
  EXPECT_EQ(t.Params(), 960);
}

TEST(AdapterTest, ZeroInitLeavesOutputsUnchangedBitForBit) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  Eigen::MatrixXf w(32, 24), x(7, 24);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = normal(rng);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
  absl::StatusOr<InitResult> r = InitializeAdapter(
      w, w, Eigen::MatrixXf::Identity(24, 24), *DefaultShape(32, 24), 4, 16.0, InitMode::kZero, 9);
  ASSERT_TRUE(r.ok()) << r.status();
  const Eigen::MatrixXf base = x * w.transpose();
  const Eigen::MatrixXf y = base + r->adapter.Apply(x);
  EXPECT_EQ(std::memcmp(y.data(), base.data(), sizeof(float) * y.size()), 0);
  // The input-side cores are orthonormal (non-trivial), only the last is zero.
  const Eigen::MatrixXd a = r->adapter.InputFactor();
  EXPECT_GT(a.norm(), 0.5);
}

TEST(AdapterTest, ContractionEqualsMaterializedAdapter) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  Eigen::MatrixXf w(48, 36), w_hat = Eigen::MatrixXf::Zero(48, 36), x(5, 36);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = normal(rng);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
  absl::StatusOr<InitResult> r =
      InitializeAdapter(w, w_hat, Eigen::MatrixXf::Identity(36, 36), *DefaultShape(48, 36), 6, 2.0,
                        InitMode::kResidual, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->fell_back_to_zero);
  const Eigen::MatrixXf dense = r->adapter.Materialize().cast<float>();
  const Eigen::MatrixXf via_contraction = r->adapter.Apply(x);
  EXPECT_LT((via_contraction - x * dense.transpose()).cwiseAbs().maxCoeff(), 1e-4f);
}

TEST(AdapterTest, ResidualNeverIncreasesTheWeightedError) {
  std::mt19937 rng(6);
  std::normal_distribution<float> normal;
  for (int trial = 0; trial < 4; ++trial) {
    Eigen::MatrixXf w(32, 32), noise(32, 32), mix(32, 32);
    for (int64_t i = 0; i < w.size(); ++i) {
      w.data()[i] = normal(rng);
      noise.data()[i] = 0.1f * normal(rng);
      mix.data()[i] = normal(rng);
    }
    const Eigen::MatrixXf h = mix.transpose() * mix;  // correlated H
    absl::StatusOr<InitResult> r = InitializeAdapter(w, w + noise, h, *DefaultShape(32, 32), 4, 1.0,
                                                     InitMode::kResidual, trial);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LE(r->weighted_error_after, r->weighted_error_before);
    if (!r->fell_back_to_zero) {
      EXPECT_GT(r->captured_energy, 0.0);
    }
  }
}

TEST(AdapterTest, ShapesAndRanksAreChecked) {
  EXPECT_EQ(*FactorizeDim(4096, 6), (std::vector<int64_t>{4, 4, 4, 4, 4, 4}));
  EXPECT_EQ(*FactorizeDim(172, 0), (std::vector<int64_t>{43, 2, 2}));
  EXPECT_EQ(*FactorizeDim(172, 2), (std::vector<int64_t>{43, 4}));
  absl::StatusOr<AdapterShape> s = ParseShape("16,4:8,8", 64, 64);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(ShapeSpec(*s), "16,4:8,8");
  EXPECT_NE(ParseShape("16,4:8,7", 64, 64).status().message().find("multiply to 56"),
            std::string::npos);
  EXPECT_NE(ParseShape("16,4", 64, 64).status().message().find("must be m1,m2"), std::string::npos);
  Eigen::MatrixXf w = Eigen::MatrixXf::Zero(8, 8);
  EXPECT_FALSE(InitializeAdapter(w, w, Eigen::MatrixXf::Identity(8, 8), *DefaultShape(8, 8), 0, 1.0,
                                 InitMode::kZero, 1)
                   .ok());
  EXPECT_EQ(ParseInitMode("pissa").status().message(),
            "--ttlora-init pissa is unknown; use zero or residual");
  EXPECT_EQ(*ParseInitMode("residual"), InitMode::kResidual);
  EXPECT_FALSE(InitializeAdapter(w, w, Eigen::MatrixXf::Identity(8, 8),
                                 AdapterShape{{4, 4}, {2, 4}}, 2, 1.0, InitMode::kZero, 1)
                   .ok());
}

}  // namespace
}  // namespace caldera::ttlora

namespace caldera::ttlora {
namespace {

// The residual init on an LLM-like residual (low rank plus noise) under a
// correlated Hessian: it lowers the error recomputed from the materialised
// adapter, without falling back, and well below what the plain TT-SVD of the
// residual (its starting point, computed here independently) leaves.
TEST(AdapterTest, ResidualInitLowersTheRecomputedWeightedError) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  const int64_t d_out = 64, d_in = 48;
  Eigen::MatrixXf u(d_out, 2), v(2, d_in), noise(d_out, d_in), mix(d_in, d_in);
  for (int64_t i = 0; i < u.size(); ++i) u.data()[i] = normal(rng);
  for (int64_t i = 0; i < v.size(); ++i) v.data()[i] = normal(rng);
  for (int64_t i = 0; i < noise.size(); ++i) noise.data()[i] = 0.1f * normal(rng);
  for (int64_t i = 0; i < mix.size(); ++i) mix.data()[i] = normal(rng);
  for (int64_t j = 0; j < d_in; ++j) mix.col(j) *= std::pow(0.85f, static_cast<float>(j));
  const Eigen::MatrixXf h = mix * mix.transpose() + 1e-3f * Eigen::MatrixXf::Identity(d_in, d_in);
  const Eigen::MatrixXf w_hat = Eigen::MatrixXf::Zero(d_out, d_in);
  const Eigen::MatrixXf w = u * v + noise;
  const AdapterShape shape{{4, 4, 3}, {4, 4, 4}};
  const double alpha = 2.0;
  absl::StatusOr<InitResult> r =
      InitializeAdapter(w, w_hat, h, shape, 4, alpha, InitMode::kResidual, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->fell_back_to_zero);
  const Eigen::MatrixXd e = w.cast<double>(), hd = h.cast<double>();
  const Eigen::MatrixXd left = e - r->adapter.Materialize();
  const double recomputed = (left * hd).cwiseProduct(left).sum();
  EXPECT_NEAR(r->weighted_error_after, recomputed, 1e-9 * r->weighted_error_before);
  // The plain TT-SVD of E at the same caps.
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> et = e.transpose();
  TtSvdOptions o;
  o.rank_caps = {4, 4, 4, 4, 4};
  const Eigen::VectorXd plain_t =
      TtSvd(Eigen::Map<const Eigen::VectorXd>(et.data(), et.size()), {4, 4, 3, 4, 4, 4}, o)->Full();
  const Eigen::MatrixXd plain =
      e - Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
              plain_t.data(), d_in, d_out)
              .transpose();
  const double plain_error = (plain * hd).cwiseProduct(plain).sum();
  EXPECT_LT(recomputed, 0.7 * plain_error);
}

}  // namespace
}  // namespace caldera::ttlora
