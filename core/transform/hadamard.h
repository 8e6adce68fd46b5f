// Hadamard transforms for incoherence processing.
//
// Had_n = (H_K ⊗ H_{n/K}) / sqrt(n): H_{n/K} the Sylvester (natural order)
// Walsh-Hadamard matrix of a power-of-two size, H_K a ±1 Hadamard matrix of a
// small order K. We construct (our own code, no tables): Sylvester (K = 1),
// Paley I (K = q + 1, q a prime power ≡ 3 mod 4: 12, 20, 28, 60, 108, 140) and
// Paley II (K = 2(q + 1), q a prime power ≡ 1 mod 4: 36, 52, 124) and
// Williamson arrays (williamson.h) for the orders whose rows our search found.
// Sizes that need an order without a construction are unsupported and callers
// pad (SupportedSizeAtLeast).
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

  // x (rows × n): x ← x · Had_n (transpose = true) or x · Had_nᵀ; the same as
  // ApplyToColumns on xᵀ, transposed back, without forming the transposes (the
  // butterflies run down whole columns, a block of rows at a time).
  void ApplyToRows(Eigen::MatrixXf* x, bool transpose) const;
  void ApplyToRows(Eigen::MatrixXd* x, bool transpose) const;

 private:
  int64_t n_ = 0;
  int k_ = 1;
  Eigen::MatrixXf hk_;  // K × K, ±1
};

// Random ±1 signs from a seed with SplitMix64 (bit-reproducible everywhere):
// sign i is bit (i % 64) of the (i / 64)-th output, 1 meaning -1.
std::vector<float> SignsFromSeed(uint64_t seed, int64_t n);

// Signs stored as bits: byte i / 8, bit i % 8 (least significant first) is 1
// for sign i = -1 and 0 for +1; ceil(n / 8) bytes, unused high bits zero.
// PackSigns reads only the sign bit of each value (x < 0 means -1).
std::vector<uint8_t> PackSigns(const std::vector<float>& signs);
// INVALID_ARGUMENT when `bits` holds fewer than ceil(n / 8) bytes.
absl::StatusOr<std::vector<float>> UnpackSigns(const std::vector<uint8_t>& bits, int64_t n);

}  // namespace caldera::transform

#endif  // CALDERA_CORE_TRANSFORM_HADAMARD_H_
