// The compression law of `calderactl sweep` (issue 22, after "Compression Laws
// for Large Language Models", arXiv 2504.04342: test cross-entropy loss rises
// about quadratically with the compression ratio).
//
// Compression ratio r = 16 / bits_per_param: how many times smaller the
// compressed linears are than their fp16 originals (the original model is
// r = 1; 2 bits is r = 8). It is the paper's notion of ratio (size reduction)
// and, unlike 1 - bits/16, spreads the 2..4.5-bit points over a wide range.
//
// The law, with x = r - 1 and L0 the measured loss of the original model:
//     L(r) = L0 + b*x + c*x^2
// L0 is not fitted (the original's loss is measured exactly); b and c are the
// least-squares solution over the compressed points. Pure math: no I/O.
#ifndef CALDERA_CLIENT_CALDERACTL_SWEEP_FIT_H_
#define CALDERA_CLIENT_CALDERACTL_SWEEP_FIT_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"

namespace caldera::cli {

// 16 / bits; bits must be > 0.
double CompressionRatio(double bits_per_param);

struct LawPoint {
  double ratio = 1;  // CompressionRatio(bits)
  double loss = 0;   // mean next-token cross-entropy (nats)
};

struct CompressionLaw {
  double l0 = 0;  // loss of the original (r = 1)
  double b = 0;   // linear coefficient in x = r - 1
  double c = 0;   // quadratic coefficient
  // Fit error over the points fitted: residual_i = loss_i - Loss(ratio_i).
  std::vector<double> residuals;
  double rmse = 0;              // sqrt(mean residual^2)
  double max_abs_residual = 0;  // max |residual|
  double r_squared = 1;         // 1 - SS_res / SS_tot of (loss - L0); 1 when SS_tot = 0

  // Predicted loss at compression ratio r.
  double Loss(double ratio) const;
  // Predicted loss at `bits` per parameter (Loss(16 / bits)).
  double LossAtBits(double bits) const;
};

// Least squares of (loss - l0) = b*x + c*x^2 over `points`. INVALID_ARGUMENT
// unless there are at least two points with distinct ratios > 1 and every
// value is finite.
absl::StatusOr<CompressionLaw> FitCompressionLaw(double l0, const std::vector<LawPoint>& points);

// The smallest bits per parameter in [min_bits, 16] such that the law
// predicts loss <= target at that budget and at every larger one (so a
// non-monotone fit never returns an isolated dip). nullopt when even 16 bits
// (the original) is predicted above `target`. Resolution 1e-6 bits.
std::optional<double> SmallestBitsForLoss(const CompressionLaw& law, double target,
                                          double min_bits);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_SWEEP_FIT_H_
