// Hadamard transforms for incoherence processing.
//
// Had_n = (H_K ⊗ H_{n/K}) / sqrt(n): H_{n/K} the Sylvester (natural order)
// Walsh-Hadamard matrix of a power-of-two size, H_K a ±1 Hadamard matrix of a
// small order K. We construct (our own code, no tables): Sylvester (K = 1),
// Paley I (K = q + 1, q a prime power ≡ 3 mod 4: 12, 20, 28, 60, 108, 140) and
// Paley II (K = 2(q + 1), q a prime power ≡ 1 mod 4: 36, 52, 124). Orders 116,
// 156 and 172 need Williamson-type constructions that are not built yet: sizes
// that need them are unsupported and callers pad (SupportedSizeAtLeast).
#ifndef CALDERA_CORE_TRANSFORM_HADAMARD_H_
#define CALDERA_CORE_TRANSFORM_HADAMARD_H_

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace caldera::transform {

// The orders K with a construction here, ascending (1 first).
const std::vector<int>& SupportedHadamardOrders();

// The ±1 Hadamard matrix of order K (H Hᵀ = K I). INVALID_ARGUMENT otherwise.
absl::StatusOr<Eigen::MatrixXf> HadamardMatrix(int k);

// The smallest n' >= n of the form 2^j * K for a supported K.
int64_t SupportedSizeAtLeast(int64_t n);

// A plan for Had_n applied to the columns of matrices (x ← Had_n x or Had_nᵀ x).
class HadamardTransform {
 public:
  // INVALID_ARGUMENT naming n when it is not 2^j * K for a supported K, with
  // the size to pad to.
  static absl::StatusOr<HadamardTransform> Create(int64_t n);

  int64_t size() const { return n_; }
  int order() const { return k_; }

  // x (n × cols, column-major): every column ← Had_n · column (or Had_nᵀ ·).
  void ApplyToColumns(Eigen::MatrixXf* x, bool transpose) const;
  void ApplyToColumns(Eigen::MatrixXd* x, bool transpose) const;

 private:
  int64_t n_ = 0;
  int k_ = 1;
  Eigen::MatrixXf hk_;  // K × K, ±1
};

// Random ±1 signs from a seed with SplitMix64 (bit-reproducible everywhere):
// sign i is bit (i % 64) of the (i / 64)-th output, 1 meaning -1.
std::vector<float> SignsFromSeed(uint64_t seed, int64_t n);

}  // namespace caldera::transform

#endif  // CALDERA_CORE_TRANSFORM_HADAMARD_H_
