// Two-sided randomized Hadamard transform (QuIP#/CALDERA incoherence
// processing) for an m × n weight W (y = x·Wᵀ) and its n × n Hessian H:
//   W̃ = Had_mᵀ · diag(SV) · W · diag(SU) · Had_n
//   H̃ = Had_nᵀ · diag(SU) · H · diag(SU) · Had_n
// so tr(Ẽ·H̃·Ẽᵀ) = tr(E·H·Eᵀ) for Ẽ the transformed error. Both factors are
// orthogonal, so InverseWeight undoes TransformWeight exactly (to rounding).
// Matrices are Eigen column-major (Eigen::MatrixXf / MatrixXd). No padding:
// m and n must be supported sizes (pad first with SupportedSizeAtLeast).
#ifndef CALDERA_CORE_TRANSFORM_RANDOMIZED_HADAMARD_H_
#define CALDERA_CORE_TRANSFORM_RANDOMIZED_HADAMARD_H_

#include <Eigen/Dense>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/transform/hadamard.h"

namespace caldera::transform {

class RandomizedHadamard {
 public:
  // SU = SignsFromSeed(seed, n), SV = SignsFromSeed(seed ^ kRowSignSalt, m).
  // INVALID_ARGUMENT (from HadamardTransform::Create) for unsupported m or n.
  static absl::StatusOr<RandomizedHadamard> Create(int64_t m, int64_t n, uint64_t seed);
  // Explicit signs (e.g. unpacked from storage); sizes must be m and n.
  static absl::StatusOr<RandomizedHadamard> Create(std::vector<float> signs_v,
                                                   std::vector<float> signs_u);

  static constexpr uint64_t kRowSignSalt = 0x5bd1e9955bd1e995ull;

  int64_t rows() const { return hm_.size(); }
  int64_t cols() const { return hn_.size(); }
  const std::vector<float>& signs_u() const { return su_; }  // n, input side
  const std::vector<float>& signs_v() const { return sv_; }  // m, output side

  // W (m × n) -> W̃ and back.
  Eigen::MatrixXf TransformWeight(Eigen::MatrixXf w) const;
  Eigen::MatrixXf InverseWeight(Eigen::MatrixXf wt) const;
  // H (n × n) -> H̃.
  Eigen::MatrixXd TransformHessian(Eigen::MatrixXd h) const;

 private:
  RandomizedHadamard(HadamardTransform hm, HadamardTransform hn, std::vector<float> sv,
                     std::vector<float> su)
      : hm_(std::move(hm)), hn_(std::move(hn)), sv_(std::move(sv)), su_(std::move(su)) {}

  HadamardTransform hm_, hn_;
  std::vector<float> sv_, su_;
};

}  // namespace caldera::transform

#endif  // CALDERA_CORE_TRANSFORM_RANDOMIZED_HADAMARD_H_
