// Error of the float32 Hessian accumulation (AccumulateLower: SSYRK/SGEMM per
// chunk, summed in float64) against float64 references computed independently
// of it: X^T X by a double GEMM of the float inputs (products of floats are
// exact in double, so the reference is exact to ~rows·2^-53), and the DSYRK
// path (AccumulateLowerF64) the service used before.
//
// Bounds: a dot product of k float32 terms has |error| <= gamma_k·(|x|^T|y|)
// with gamma_k = k·u/(1 - k·u), u = 2^-24 (Higham, Accuracy and Stability of
// Numerical Algorithms, 3.1): the rigorous bound, checked entry by entry (BLAS
// blocking makes the achieved error 20-100x smaller). The Frobenius-relative
// error of one chunk is checked against 6·u (3.6e-7); achieved on this data:
// 2.5e-7 (4.3 u) for 256-row chunks, 1.4e-7 (2.4 u) for 1024 rows (a few
// roundings of each entry's partial sums), and it falls as chunks are summed
// in float64 (the chunks' errors are independent): 1.9e-7 -> 2.4e-8 for 16
// chunks of 512 rows. For comparison, the float32 hidden states
// themselves carry a relative rounding of u/2 per entry.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/model/llama_block.h"
#include "gtest/gtest.h"

namespace caldera::model {
namespace {

constexpr double kUnit = 1.0 / (1 << 24);  // float32 unit roundoff

// Activation-like data: normal values, a non-zero mean per column, and a few
// outlier columns 20x larger (as in LLM hidden states).
RowMatrixF Activations(int64_t rows, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Eigen::VectorXf mean(n), scale(n);
  for (int64_t j = 0; j < n; ++j) {
    mean(j) = 0.3f * normal(rng);
    scale(j) = j % 97 == 5 ? 20.0f : 1.0f;
  }
  RowMatrixF x(rows, n);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < n; ++j) x(i, j) = scale(j) * (mean(j) + normal(rng));
  }
  return x;
}

struct Errors {
  double worst_vs_gamma = 0;  // max over entries of |error| / (gamma_k·(|X|^T|X|)_ij)
  double frobenius_rel = 0;   // ||H - H_ref||_F / ||H_ref||_F
};

// Accumulates `chunks` chunks of `rows` rows each through AccumulateLower and
// compares with the exact sum.
Errors Measure(int64_t rows, int64_t n, int chunks) {
  Eigen::MatrixXd h = Eigen::MatrixXd::Zero(n, n);
  Eigen::MatrixXd exact = Eigen::MatrixXd::Zero(n, n);
  Eigen::MatrixXd abs_products = Eigen::MatrixXd::Zero(n, n);
  for (int c = 0; c < chunks; ++c) {
    const RowMatrixF x = Activations(rows, n, 1234u + static_cast<uint32_t>(c));
    AccumulateLower(x, &h);
    const Eigen::MatrixXd xd = x.cast<double>();
    exact.noalias() += xd.transpose() * xd;
    abs_products.noalias() += xd.cwiseAbs().transpose() * xd.cwiseAbs();
  }
  Symmetrize(&h);
  const double k = static_cast<double>(rows);
  const double gamma = k * kUnit / (1 - k * kUnit);
  Errors e;
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = j; i < n; ++i) {
      e.worst_vs_gamma = std::max(e.worst_vs_gamma,
                                  std::abs(h(i, j) - exact(i, j)) / (gamma * abs_products(i, j)));
    }
  }
  e.frobenius_rel = (h - exact).norm() / exact.norm();
  return e;
}

TEST(HessianAccuracyTest, Float32ChunksWithinTheDotProductBoundOfFloat64) {
  // n above kAccumulatePanel, so the SSYRK diagonal blocks and the SGEMM blocks
  // below them are both exercised.
  for (int64_t rows : {256, 1024}) {
    const int64_t n = kAccumulatePanel + 77;
    const Errors e = Measure(rows, n, 1);
    std::printf(
        "rows %lld, n %lld: max |err| / gamma_k bound %.3g; Frobenius relative error "
        "%.3g = %.2f u\n",
        static_cast<long long>(rows), static_cast<long long>(n), e.worst_vs_gamma, e.frobenius_rel,
        e.frobenius_rel / kUnit);
    EXPECT_LE(e.worst_vs_gamma, 1.0);  // the rigorous bound, entry by entry
    EXPECT_LE(e.frobenius_rel, 6 * kUnit);
    EXPECT_GE(e.frobenius_rel, kUnit);  // the 6u bound is within 6x of what is achieved
  }
}

TEST(HessianAccuracyTest, ErrorDoesNotGrowWithTheNumberOfChunks) {
  const Errors one = Measure(512, 300, 1);
  const Errors many = Measure(512, 300, 16);
  std::printf("1 chunk: %.3g, 16 chunks: %.3g (Frobenius relative)\n", one.frobenius_rel,
              many.frobenius_rel);
  EXPECT_LE(many.frobenius_rel, one.frobenius_rel);
  EXPECT_LE(many.frobenius_rel, 6 * kUnit);
  EXPECT_LE(many.worst_vs_gamma, 1.0);
}

TEST(HessianAccuracyTest, Float64PathAgreesWithTheExactProduct) {
  const int64_t n = 200;
  const RowMatrixF x = Activations(700, n, 99u);
  Eigen::MatrixXd h = Eigen::MatrixXd::Zero(n, n);
  AccumulateLowerF64(x, &h);
  Symmetrize(&h);
  const Eigen::MatrixXd xd = x.cast<double>();
  const Eigen::MatrixXd exact = xd.transpose() * xd;
  EXPECT_LT((h - exact).norm(), 1e-13 * exact.norm());
}

TEST(HessianAccuracyTest, SymmetrizeCopiesTheLowerTriangleUp) {
  for (int64_t n : {1, 5, 64, 130}) {
    Eigen::MatrixXd h = Eigen::MatrixXd::Random(n, n);
    const Eigen::MatrixXd lower = h.triangularView<Eigen::Lower>();
    Symmetrize(&h);
    const Eigen::MatrixXd expect = lower.selfadjointView<Eigen::Lower>();
    EXPECT_EQ(h, expect) << n;
  }
}

}  // namespace
}  // namespace caldera::model
