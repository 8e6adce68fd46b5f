// The compression law fit (sweep_fit.h) on synthetic points with known
// coefficients, its inverse (SmallestBitsForLoss), and the SVG (sweep_plot.h).
#include "client/calderactl/sweep_fit.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "client/calderactl/sweep_plot.h"
#include "gtest/gtest.h"

namespace caldera::cli {
namespace {

std::vector<LawPoint> Exact(double l0, double b, double c, const std::vector<double>& bits) {
  std::vector<LawPoint> points;
  for (double x : bits) {
    const double r = CompressionRatio(x);
    points.push_back({r, l0 + b * (r - 1) + c * (r - 1) * (r - 1)});
  }
  return points;
}

TEST(CompressionRatioTest, IsSixteenOverBits) {
  EXPECT_DOUBLE_EQ(CompressionRatio(16), 1);
  EXPECT_DOUBLE_EQ(CompressionRatio(2), 8);
  EXPECT_DOUBLE_EQ(CompressionRatio(4), 4);
}

TEST(FitCompressionLawTest, RecoversKnownCoefficientsOnExactData) {
  for (const auto& [b, c] : std::vector<std::pair<double, double>>{
           {0.01, 0.02}, {-0.43, 0.14}, {0.0, 0.5}, {0.3, 0.0}, {1e-3, 7.0}}) {
    absl::StatusOr<CompressionLaw> law =
        FitCompressionLaw(1.3, Exact(1.3, b, c, {2, 2.28, 2.6, 3.1, 3.24, 3.52, 4.24, 4.52}));
    ASSERT_TRUE(law.ok()) << law.status();
    EXPECT_NEAR(law->b, b, 1e-9);
    EXPECT_NEAR(law->c, c, 1e-9);
    EXPECT_DOUBLE_EQ(law->l0, 1.3);
    EXPECT_LT(law->rmse, 1e-12);
    EXPECT_LT(law->max_abs_residual, 1e-12);
    EXPECT_EQ(law->residuals.size(), 8u);
  }
}

TEST(FitCompressionLawTest, TwoPointsAreInterpolated) {
  absl::StatusOr<CompressionLaw> law = FitCompressionLaw(2.0, Exact(2.0, 0.1, 0.05, {2, 4}));
  ASSERT_TRUE(law.ok()) << law.status();
  EXPECT_NEAR(law->b, 0.1, 1e-9);
  EXPECT_NEAR(law->c, 0.05, 1e-9);
}

TEST(FitCompressionLawTest, NoisyDataGivesErrorsOfTheNoiseSize) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0, 0.01);
  std::vector<double> bits;
  for (double x = 2; x <= 6; x += 0.1) bits.push_back(x);
  std::vector<LawPoint> points = Exact(1.0, 0.05, 0.03, bits);
  for (LawPoint& p : points) p.loss += noise(rng);
  absl::StatusOr<CompressionLaw> law = FitCompressionLaw(1.0, points);
  ASSERT_TRUE(law.ok()) << law.status();
  EXPECT_GT(law->rmse, 0.005);
  EXPECT_LT(law->rmse, 0.015);
  EXPECT_GE(law->max_abs_residual, law->rmse);
  EXPECT_LT(law->max_abs_residual, 0.04);
  EXPECT_NEAR(law->b, 0.05, 0.02);
  EXPECT_NEAR(law->c, 0.03, 0.005);
  EXPECT_GT(law->r_squared, 0.99);
  double sq = 0;
  for (double r : law->residuals) sq += r * r;
  EXPECT_NEAR(law->rmse, std::sqrt(sq / points.size()), 1e-15);
}

TEST(FitCompressionLawTest, RejectsTooFewOrBadPoints) {
  EXPECT_FALSE(FitCompressionLaw(1.0, {}).ok());
  EXPECT_FALSE(FitCompressionLaw(1.0, Exact(1, 0.1, 0.1, {3})).ok());
  EXPECT_FALSE(FitCompressionLaw(1.0, Exact(1, 0.1, 0.1, {3, 3})).ok());
  EXPECT_FALSE(FitCompressionLaw(1.0, {{8, 2.0}, {1, 1.0}}).ok());  // ratio 1
  EXPECT_FALSE(FitCompressionLaw(1.0, {{8, 2.0}, {4, NAN}}).ok());
  EXPECT_FALSE(FitCompressionLaw(INFINITY, Exact(1, 0.1, 0.1, {2, 3})).ok());
}

TEST(SmallestBitsForLossTest, InvertsTheLaw) {
  CompressionLaw law;
  law.l0 = 1.0;
  law.b = 0.02;
  law.c = 0.01;
  // Loss at 4 bits: r - 1 = 3: 1 + 0.06 + 0.09 = 1.15.
  std::optional<double> bits = SmallestBitsForLoss(law, 1.15, 1.0);
  ASSERT_TRUE(bits.has_value());
  EXPECT_NEAR(*bits, 4.0, 1e-5);
  EXPECT_LE(law.LossAtBits(*bits), 1.15 + 1e-12);
  // Below the original's loss: nothing reaches it.
  EXPECT_FALSE(SmallestBitsForLoss(law, 0.99, 1.0).has_value());
  // Exactly the original's loss: only 16 bits (to the step).
  std::optional<double> at_l0 = SmallestBitsForLoss(law, 1.0, 1.0);
  ASSERT_TRUE(at_l0.has_value());
  EXPECT_NEAR(*at_l0, 16.0, 1e-5);
  // A very loose target: clamped at min_bits.
  std::optional<double> loose = SmallestBitsForLoss(law, 100.0, 2.0);
  ASSERT_TRUE(loose.has_value());
  EXPECT_DOUBLE_EQ(*loose, 2.0);
}

TEST(SmallestBitsForLossTest, NonMonotoneFitStopsAtTheFirstCrossing) {
  // b < 0: the curve dips below l0 just under 16 bits, then rises.
  CompressionLaw law;
  law.l0 = 1.0;
  law.b = -0.1;
  law.c = 0.05;  // zero of b*x + c*x^2 at x = 2 (r = 3, 5.33 bits)
  std::optional<double> bits = SmallestBitsForLoss(law, 1.0, 1.0);
  ASSERT_TRUE(bits.has_value());
  EXPECT_NEAR(*bits, 16.0 / 3, 1e-5);
}

TEST(NiceTicksTest, CoversTheRangeWithRoundSteps) {
  std::vector<double> t = NiceTicks(1.75, 4.75, 6);
  ASSERT_GE(t.size(), 2u);
  EXPECT_LE(t.front(), 1.75);
  EXPECT_GE(t.back(), 4.75);
  EXPECT_NEAR(t[1] - t[0], 0.5, 1e-12);
  std::vector<double> s = NiceTicks(3.6, 40.1, 6);
  EXPECT_NEAR(s[1] - s[0], 10, 1e-12);
  EXPECT_EQ(s.front(), 0);
}

TEST(RenderSweepSvgTest, HasPanelsPointsCurvesAndEscapedText) {
  absl::StatusOr<CompressionLaw> law = FitCompressionLaw(1.0, Exact(1.0, 0.02, 0.01, {2, 3, 4}));
  ASSERT_TRUE(law.ok());
  std::vector<SweepPlotPoint> points = {
      {2, law->LossAtBits(2), std::exp(law->LossAtBits(2)), "a"},
      {3, law->LossAtBits(3), std::exp(law->LossAtBits(3)), "b"},
      {4, law->LossAtBits(4), std::exp(law->LossAtBits(4)), "--x <y> & \"z\""}};
  const std::string svg = RenderSweepSvg(points, &*law, 1.0, "t<1>");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = svg.find(needle); at != std::string::npos; at = svg.find(needle, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<circle class=\"point\""), 6u);  // 3 points in each panel
  EXPECT_EQ(count("<polyline class=\"fit\""), 2u);
  EXPECT_EQ(count("<line class=\"original\""), 2u);
  EXPECT_EQ(count(">bits per parameter</text>"), 2u);
  EXPECT_NE(svg.find(">perplexity (log scale)</text>"), std::string::npos);
  EXPECT_NE(svg.find("t&lt;1&gt;"), std::string::npos);
  EXPECT_NE(svg.find("--x &lt;y&gt; &amp; &quot;z&quot;"), std::string::npos);
  EXPECT_EQ(svg.find("<y>"), std::string::npos);
  EXPECT_GE(count("<text class=\"tick-label\""), 8u);
  // Without a fit: no curve.
  const std::string bare = RenderSweepSvg(points, nullptr, 1.0, "t");
  EXPECT_EQ(bare.find("<polyline"), std::string::npos);
}

}  // namespace
}  // namespace caldera::cli
