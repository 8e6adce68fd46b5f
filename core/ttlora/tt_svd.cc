#include "core/ttlora/tt_svd.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace caldera::ttlora {

int64_t TensorTrain::Params() const {
  int64_t p = 0;
  for (size_t k = 0; k < shape.size(); ++k) p += ranks[k] * shape[k] * ranks[k + 1];
  return p;
}

Eigen::VectorXd TensorTrain::Full() const {
  // Left-to-right contraction: P (prefix × r_k).
  CoreMatrix p = CoreMatrix::Ones(1, 1);
  for (size_t k = 0; k < shape.size(); ++k) {
    const int64_t rows = p.rows(), rk1 = ranks[k], s = shape[k], rk = ranks[k + 1];
    // P (rows × r_{k-1}) · G_k viewed (r_{k-1} × s·r_k) -> (rows × s·r_k) = ((rows·s) × r_k).
    Eigen::Map<const CoreMatrix> g(cores[k].data(), rk1, s * rk);
    CoreMatrix next = p * g;
    p = Eigen::Map<CoreMatrix>(next.data(), rows * s, rk);
  }
  return Eigen::Map<const Eigen::VectorXd>(p.data(), p.size());
}

absl::StatusOr<TensorTrain> TtSvd(const Eigen::VectorXd& data, const std::vector<int64_t>& shape,
                                  const TtSvdOptions& o) {
  const size_t d = shape.size();
  if (d == 0) return absl::InvalidArgumentError("TT-SVD needs at least one dimension");
  int64_t total = 1;
  for (int64_t s : shape) {
    if (s < 1) return absl::InvalidArgumentError("TT shape factors must be >= 1");
    total *= s;
  }
  if (total != data.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TT shape product ", total, " does not match the tensor size ", data.size()));
  }
  if (!o.rank_caps.empty() && o.rank_caps.size() != d - 1) {
    return absl::InvalidArgumentError(absl::StrCat("TT-SVD needs ", d - 1, " rank caps for ", d,
                                                   " dimensions, got ", o.rank_caps.size()));
  }
  for (int64_t c : o.rank_caps) {
    if (c < 1) return absl::InvalidArgumentError(absl::StrCat("TT rank cap ", c, " must be >= 1"));
  }
  if (o.relative_tolerance < 0) return absl::InvalidArgumentError("tolerance must be >= 0");
  const double delta =
      d > 1 ? o.relative_tolerance / std::sqrt(static_cast<double>(d - 1)) * data.norm() : 0;

  TensorTrain tt;
  tt.shape = shape;
  tt.ranks.assign(d + 1, 1);
  CoreMatrix c = Eigen::Map<const CoreMatrix>(data.data(), 1, data.size());
  for (size_t k = 0; k + 1 < d; ++k) {
    const int64_t rows = tt.ranks[k] * shape[k];
    const int64_t cols = c.size() / rows;
    const CoreMatrix m = Eigen::Map<const CoreMatrix>(c.data(), rows, cols);
    Eigen::BDCSVD<Eigen::MatrixXd> svd(m, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const Eigen::VectorXd& sv = svd.singularValues();
    int64_t r = sv.size();
    // Smallest r whose discarded tail energy is <= delta².
    double tail = 0;
    while (r > 1 && tail + sv(r - 1) * sv(r - 1) <= delta * delta) {
      tail += sv(r - 1) * sv(r - 1);
      --r;
    }
    if (!o.rank_caps.empty()) r = std::min(r, o.rank_caps[k]);
    r = std::max<int64_t>(1, std::min({r, rows, cols}));
    tt.ranks[k + 1] = r;
    tt.cores.push_back(svd.matrixU().leftCols(r));
    CoreMatrix rest = sv.head(r).asDiagonal() * svd.matrixV().leftCols(r).transpose();
    c = std::move(rest);
  }
  tt.cores.push_back(Eigen::Map<const CoreMatrix>(c.data(), tt.ranks[d - 1] * shape[d - 1], 1));
  return tt;
}

}  // namespace caldera::ttlora
