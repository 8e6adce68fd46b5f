#include "core/transform/hadamard.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/transform/williamson.h"
#include "gtest/gtest.h"

namespace caldera::transform {
namespace {

TEST(HadamardTest, EverySupportedOrderIsHadamard) {
  for (int k : SupportedHadamardOrders()) {
    absl::StatusOr<Eigen::MatrixXf> h = HadamardMatrix(k);
    ASSERT_TRUE(h.ok()) << k;
    EXPECT_EQ(h->rows(), k);
    EXPECT_TRUE((h->array().abs() == 1.0f).all()) << k;
    const Eigen::MatrixXf g = *h * h->transpose();
    EXPECT_LT((g - k * Eigen::MatrixXf::Identity(k, k)).cwiseAbs().maxCoeff(), 1e-3f) << k;
  }
  EXPECT_FALSE(HadamardMatrix(8 * 23).ok());  // 184 = 4 * 46: no construction here
  // The Williamson order(s) our search found are among the supported ones.
  for (int k : WilliamsonOrders()) {
    EXPECT_NE(std::find(SupportedHadamardOrders().begin(), SupportedHadamardOrders().end(), k),
              SupportedHadamardOrders().end())
        << k;
  }
  for (int k : {116, 156, 172}) {
    EXPECT_NE(std::find(WilliamsonOrders().begin(), WilliamsonOrders().end(), k),
              WilliamsonOrders().end())
        << k;
  }
}

Eigen::MatrixXf Dense(int64_t n) {
  HadamardTransform t = *HadamardTransform::Create(n);
  Eigen::MatrixXf id = Eigen::MatrixXf::Identity(n, n);
  t.ApplyToColumns(&id, false);
  return id;
}

TEST(HadamardTest, TransformIsOrthogonalAndMatchesKronecker) {
  for (int64_t n :
       {1, 8, 48, 64, 72, 104, 112, 116, 124, 156, 172, 232, 280, 312, 344, 4096, 11008, 14336}) {
    SCOPED_TRACE(n);
    absl::StatusOr<HadamardTransform> t = HadamardTransform::Create(n);
    ASSERT_TRUE(t.ok()) << t.status();
    std::mt19937 rng(static_cast<uint32_t>(n));
    std::normal_distribution<float> normal;
    Eigen::MatrixXf x(n, 3);
    for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
    Eigen::MatrixXf y = x;
    t->ApplyToColumns(&y, false);
    EXPECT_NEAR(y.norm(), x.norm(), 1e-4 * x.norm());
    t->ApplyToColumns(&y, true);
    EXPECT_LT((y - x).cwiseAbs().maxCoeff(), 1e-4f);
    if (n <= 344) {
      const Eigen::MatrixXf d = Dense(n);
      EXPECT_LT((d * d.transpose() - Eigen::MatrixXf::Identity(n, n)).cwiseAbs().maxCoeff(), 1e-4f);
      // (H_K ⊗ H_P)/sqrt(n) built densely.
      const int k = t->order();
      const int64_t p = n / k;
      Eigen::MatrixXf hp = Eigen::MatrixXf::Ones(1, 1);
      while (hp.rows() < p) {
        Eigen::MatrixXf next(2 * hp.rows(), 2 * hp.rows());
        next << hp, hp, hp, -hp;
        hp = next;
      }
      const Eigen::MatrixXf hk = *HadamardMatrix(k);
      Eigen::MatrixXf kron(n, n);
      for (int a = 0; a < k; ++a) {
        for (int b = 0; b < k; ++b) kron.block(a * p, b * p, p, p) = hk(a, b) * hp;
      }
      kron /= std::sqrt(static_cast<float>(n));
      EXPECT_LT((d - kron).cwiseAbs().maxCoeff(), 1e-5f);
    }
  }
}

TEST(HadamardTest, RowTransformEqualsTransposedColumnTransform) {
  for (int64_t n : {8, 48, 172, 344, 4096}) {
    for (bool transpose : {true, false}) {
      SCOPED_TRACE(absl::StrCat("n=", n, " transpose=", transpose));
      HadamardTransform t = *HadamardTransform::Create(n);
      std::mt19937 rng(static_cast<uint32_t>(n));
      std::normal_distribution<double> normal;
      Eigen::MatrixXd x(37, n);  // 37 rows: not a multiple of the row block
      for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
      Eigen::MatrixXd xt = x.transpose();
      t.ApplyToColumns(&xt, transpose);
      Eigen::MatrixXd rows = x;
      t.ApplyToRows(&rows, transpose);
      EXPECT_LT((rows - xt.transpose()).cwiseAbs().maxCoeff(), 1e-12);
      Eigen::MatrixXf xf = x.cast<float>();
      Eigen::MatrixXf xft = xf.transpose();
      t.ApplyToColumns(&xft, transpose);
      t.ApplyToRows(&xf, transpose);
      EXPECT_LT((xf - xft.transpose()).cwiseAbs().maxCoeff(), 1e-4f);
    }
  }
}

TEST(HadamardTest, UnsupportedSizeSaysWhatToPadTo) {
  absl::Status s = HadamardTransform::Create(10920).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("n=10920 is not 2^k*K for K in {1, 12, 20"), std::string::npos) << s;
  const int64_t pad = SupportedSizeAtLeast(10920);
  EXPECT_NE(s.message().find(absl::StrCat("pad to ", pad)), std::string::npos) << s;
  EXPECT_TRUE(HadamardTransform::Create(pad).ok());
  EXPECT_EQ(HadamardTransform::Create(0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SupportedSizeAtLeast(0), 1);
  EXPECT_EQ(SupportedSizeAtLeast(64), 64);
  EXPECT_EQ(SupportedSizeAtLeast(116), 116);
  EXPECT_EQ(SupportedSizeAtLeast(150), 156);
  EXPECT_EQ(SupportedSizeAtLeast(172), 172);
  EXPECT_EQ(SupportedSizeAtLeast(11008), 11008);
  EXPECT_EQ(SupportedSizeAtLeast(4096), 4096);
  EXPECT_EQ(SupportedSizeAtLeast(14336), 14336);
  EXPECT_EQ(SupportedSizeAtLeast(5120), 5120);
  EXPECT_EQ(SupportedSizeAtLeast(13824), 13824);
}

TEST(HadamardTest, SignsFromSeedAreReproducibleGoldenValues) {
  std::vector<float> a = SignsFromSeed(42, 130), b = SignsFromSeed(42, 130);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, SignsFromSeed(43, 130));
  // Golden: the first 16 signs for seed 42 (a change to the generator breaks
  // every stored record, so it must show up here).
  std::string golden;
  for (int i = 0; i < 16; ++i) golden += a[i] > 0 ? '+' : '-';
  EXPECT_EQ(golden, "-+-+-++-+---+--+");
}

TEST(HadamardTest, PackedSignsRoundTripLittleEndianBits) {
  for (int64_t n : {0, 1, 7, 8, 9, 64, 130}) {
    SCOPED_TRACE(n);
    const std::vector<float> s = SignsFromSeed(7, n);
    const std::vector<uint8_t> bits = PackSigns(s);
    EXPECT_EQ(static_cast<int64_t>(bits.size()), (n + 7) / 8);
    absl::StatusOr<std::vector<float>> back = UnpackSigns(bits, n);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, s);
  }
  // Bit i % 8 of byte i / 8, least significant first, 1 = -1.
  EXPECT_EQ(PackSigns({-1, 1, 1, 1, 1, 1, 1, 1, 1, -1}), (std::vector<uint8_t>{0x01, 0x02}));
  EXPECT_EQ(UnpackSigns({0x01}, 9).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caldera::transform
