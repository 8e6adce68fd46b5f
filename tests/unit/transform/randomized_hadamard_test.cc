#include "core/transform/randomized_hadamard.h"

#include "core/util/splitmix64.h"
#include "gtest/gtest.h"

namespace caldera::transform {
namespace {

Eigen::MatrixXf RandomMatrix(int64_t rows, int64_t cols, uint64_t seed) {
  SplitMix64 rng(seed);
  Eigen::MatrixXf x(rows, cols);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(rng.Normal());
  return x;
}

TEST(RandomizedHadamardTest, WeightRoundTripsAndWeightedErrorIsPreserved) {
  const int64_t m = 48, n = 116;
  absl::StatusOr<RandomizedHadamard> t = RandomizedHadamard::Create(m, n, 1234);
  ASSERT_TRUE(t.ok()) << t.status();
  const Eigen::MatrixXf w = RandomMatrix(m, n, 1);
  const Eigen::MatrixXf wt = t->TransformWeight(w);
  EXPECT_GT((wt - w).cwiseAbs().maxCoeff(), 0.1f);  // it did something
  EXPECT_NEAR(wt.norm(), w.norm(), 1e-4 * w.norm());
  EXPECT_LT((t->InverseWeight(wt) - w).cwiseAbs().maxCoeff(), 1e-4f);

  // tr(E·H·Eᵀ) is the same before and after, for E the error of a perturbation.
  const Eigen::MatrixXf x = RandomMatrix(200, n, 2);
  const Eigen::MatrixXd h = (x.transpose() * x).cast<double>();
  const Eigen::MatrixXd e = RandomMatrix(m, n, 3).cast<double>();
  const Eigen::MatrixXd et = t->TransformWeight(e.cast<float>()).cast<double>();
  const Eigen::MatrixXd ht = t->TransformHessian(h);
  const double before = (e * h * e.transpose()).trace();
  const double after = (et * ht * et.transpose()).trace();
  EXPECT_NEAR(after, before, 1e-4 * before);
  EXPECT_LT((ht - ht.transpose()).cwiseAbs().maxCoeff(), 1e-6 * ht.cwiseAbs().maxCoeff());
}

TEST(RandomizedHadamardTest, SignsComeFromTheSeedOrFromStorage) {
  RandomizedHadamard a = *RandomizedHadamard::Create(64, 12, 99);
  RandomizedHadamard b = *RandomizedHadamard::Create(64, 12, 99);
  EXPECT_EQ(a.signs_u(), b.signs_u());
  EXPECT_EQ(a.signs_v(), b.signs_v());
  EXPECT_EQ(a.signs_u(), SignsFromSeed(99, 12));
  EXPECT_NE(RandomizedHadamard::Create(64, 12, 100)->signs_u(), a.signs_u());
  RandomizedHadamard c = *RandomizedHadamard::Create(*UnpackSigns(PackSigns(a.signs_v()), 64),
                                                     *UnpackSigns(PackSigns(a.signs_u()), 12));
  const Eigen::MatrixXf w = RandomMatrix(64, 12, 4);
  EXPECT_EQ(c.TransformWeight(w), a.TransformWeight(w));
}

TEST(RandomizedHadamardTest, UnsupportedShapeIsInvalidArgument) {
  absl::Status s = RandomizedHadamard::Create(64, 10920, 1).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("n=10920"), std::string::npos) << s;
  EXPECT_EQ(RandomizedHadamard::Create(0, 64, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caldera::transform
