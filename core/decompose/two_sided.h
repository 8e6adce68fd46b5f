// Two-sided randomized Hadamard transform with zero padding, the basis the
// decomposition works in: W̃ = Had_mᵀ·diag(SV)·W·diag(SU)·Had_n, and the
// matching transform of the Hessian. The signs come from the seed (SU from
// `seed`, SV from seed ^ kRowSignSalt), so a record's seed rebuilds them.
// The butterflies run through a compute backend (the CPU one when none is
// given).
#ifndef CALDERA_CORE_DECOMPOSE_TWO_SIDED_H_
#define CALDERA_CORE_DECOMPOSE_TWO_SIDED_H_

#include <Eigen/Dense>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/quant/quantizer.h"
#include "core/transform/hadamard.h"

namespace caldera::decompose {

// The smallest size >= n that is a multiple of `multiple` and, with
// `hadamard`, a size the transform accepts.
int64_t PaddedSize(int64_t n, bool hadamard, int64_t multiple);

class TwoSided {
 public:
  // m × n padded to mp × np (>= m, n; sizes the transform accepts when
  // `hadamard`, see PaddedSize). INVALID_ARGUMENT otherwise.
  static absl::StatusOr<TwoSided> Make(int64_t m, int64_t n, int64_t mp, int64_t np, bool hadamard,
                                       uint64_t seed);

  int64_t mp() const { return mp_; }
  int64_t np() const { return np_; }
  std::string Describe() const;

  // m × n → mp × np (padded, transformed).
  absl::StatusOr<quant::MatrixF> Forward(backend::ComputeBackend& be,
                                         const quant::MatrixF& w) const;
  // mp × np → m × n.
  absl::StatusOr<quant::MatrixF> Inverse(backend::ComputeBackend& be,
                                         const quant::MatrixF& wt) const;
  // The left and right halves of Inverse for a product: Inverse(lt·rt) ==
  // InverseLeft(lt)·InverseRight(rt) (lt mp × k, rt k × np; m × k and k × n).
  absl::StatusOr<quant::MatrixF> InverseLeft(backend::ComputeBackend& be,
                                             const quant::MatrixF& lt) const;
  absl::StatusOr<quant::MatrixF> InverseRight(backend::ComputeBackend& be,
                                              const quant::MatrixF& rt) const;
  // Had_nᵀ·diag(SU)·H·diag(SU)·Had_n of an np × np matrix.
  absl::StatusOr<Eigen::MatrixXd> ForwardHessian(backend::ComputeBackend& be,
                                                 Eigen::MatrixXd h) const;

 private:
  int64_t m_ = 0, n_ = 0, mp_ = 0, np_ = 0;
  bool hadamard_ = false;
  std::optional<transform::HadamardTransform> hm_, hn_;
  std::vector<float> su_, sv_;
};

}  // namespace caldera::decompose

#endif  // CALDERA_CORE_DECOMPOSE_TWO_SIDED_H_
