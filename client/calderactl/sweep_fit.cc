#include "client/calderactl/sweep_fit.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/status/status.h"

namespace caldera::cli {

double CompressionRatio(double bits_per_param) { return 16.0 / bits_per_param; }

double CompressionLaw::Loss(double ratio) const {
  const double x = ratio - 1;
  return l0 + b * x + c * x * x;
}

double CompressionLaw::LossAtBits(double bits) const { return Loss(CompressionRatio(bits)); }

absl::StatusOr<CompressionLaw> FitCompressionLaw(double l0, const std::vector<LawPoint>& points) {
  if (!std::isfinite(l0)) return absl::InvalidArgumentError("the original loss is not finite");
  std::set<double> distinct;
  double x_max = 0;
  for (const LawPoint& p : points) {
    if (!std::isfinite(p.ratio) || !std::isfinite(p.loss)) {
      return absl::InvalidArgumentError("a point of the fit is not finite");
    }
    if (p.ratio <= 1) {
      return absl::InvalidArgumentError("a point of the fit has compression ratio <= 1");
    }
    distinct.insert(p.ratio);
    x_max = std::max(x_max, p.ratio - 1);
  }
  if (distinct.size() < 2) {
    return absl::InvalidArgumentError(
        "the fit needs at least two points with distinct compression ratios");
  }
  // Normal equations in t = x / x_max (t in (0, 1]) for conditioning:
  // y = B*t + C*t^2 with B = b*x_max, C = c*x_max^2.
  double s2 = 0, s3 = 0, s4 = 0, sy1 = 0, sy2 = 0;
  for (const LawPoint& p : points) {
    const double t = (p.ratio - 1) / x_max;
    const double y = p.loss - l0;
    s2 += t * t;
    s3 += t * t * t;
    s4 += t * t * t * t;
    sy1 += t * y;
    sy2 += t * t * y;
  }
  const double det = s2 * s4 - s3 * s3;
  if (!(std::abs(det) > 1e-300)) {
    return absl::InvalidArgumentError("the fit's normal equations are singular");
  }
  const double big_b = (sy1 * s4 - s3 * sy2) / det;
  const double big_c = (s2 * sy2 - s3 * sy1) / det;
  CompressionLaw law;
  law.l0 = l0;
  law.b = big_b / x_max;
  law.c = big_c / (x_max * x_max);
  double ss_res = 0, ss_tot = 0;
  for (const LawPoint& p : points) {
    const double r = p.loss - law.Loss(p.ratio);
    law.residuals.push_back(r);
    ss_res += r * r;
    ss_tot += (p.loss - l0) * (p.loss - l0);
    law.max_abs_residual = std::max(law.max_abs_residual, std::abs(r));
  }
  law.rmse = std::sqrt(ss_res / static_cast<double>(points.size()));
  law.r_squared = ss_tot > 0 ? 1 - ss_res / ss_tot : 1;
  return law;
}

std::optional<double> SmallestBitsForLoss(const CompressionLaw& law, double target,
                                          double min_bits) {
  constexpr double kMaxBits = 16;
  if (law.LossAtBits(kMaxBits) > target) return std::nullopt;
  min_bits = std::clamp(min_bits, 1e-3, kMaxBits);
  // Walk down from 16 bits in small steps to the first budget predicted above
  // the target, then bisect between it and the last one below.
  constexpr double kStep = 1.0 / 256;
  double good = kMaxBits;
  for (double bits = kMaxBits - kStep; bits >= min_bits; bits -= kStep) {
    if (law.LossAtBits(bits) > target) {
      double lo = bits, hi = good;  // lo above target, hi at or below
      while (hi - lo > 1e-7) {
        const double mid = 0.5 * (lo + hi);
        (law.LossAtBits(mid) > target ? lo : hi) = mid;
      }
      return hi;
    }
    good = bits;
  }
  return law.LossAtBits(min_bits) <= target ? min_bits : good;
}

}  // namespace caldera::cli
