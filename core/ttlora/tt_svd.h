// Tensor-train decomposition (TT-SVD, Oseledets 2011): sequential truncated
// SVDs of the unfoldings of a d-way tensor, with per-bond rank caps and an
// optional relative tolerance ε that guarantees ‖A − TT(A)‖_F ≤ ε‖A‖_F.
#ifndef CALDERA_CORE_TTLORA_TT_SVD_H_
#define CALDERA_CORE_TTLORA_TT_SVD_H_

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace caldera::ttlora {

// Core k holds G_k[a, i, b] (a < r_{k-1}, i < s_k, b < r_k) row-major, i.e. as
// an (r_{k-1}·s_k) × r_k matrix.
using CoreMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct TensorTrain {
  std::vector<int64_t> shape;  // s_1..s_d
  std::vector<int64_t> ranks;  // r_0 = 1, ..., r_d = 1 (d + 1 entries)
  std::vector<CoreMatrix> cores;

  int64_t Params() const;  // Σ r_{k-1}·s_k·r_k
  // The full tensor, row-major (s_1 most significant).
  Eigen::VectorXd Full() const;
};

struct TtSvdOptions {
  std::vector<int64_t> rank_caps;  // d − 1 caps (empty: no caps)
  double relative_tolerance = 0;   // ε; 0 = exact up to the caps
};

// `data` is the tensor in row-major order with shape `shape` (product must match).
// INVALID_ARGUMENT for a bad shape or caps.
absl::StatusOr<TensorTrain> TtSvd(const Eigen::VectorXd& data, const std::vector<int64_t>& shape,
                                  const TtSvdOptions& options);

}  // namespace caldera::ttlora

#endif  // CALDERA_CORE_TTLORA_TT_SVD_H_
