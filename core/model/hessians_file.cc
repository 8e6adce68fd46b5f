#include "core/model/hessians_file.h"

#include <span>

#include "absl/strings/str_cat.h"

namespace caldera::model {

absl::StatusOr<format::Hessians> NormalisedHessians(const BlockHessians& h, int64_t layer) {
  if (h.tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration of block ", layer, " saw no tokens"));
  }
  const double inv = 1.0 / static_cast<double>(h.tokens);
  format::Hessians out;
  out.layer = layer;
  out.tokens = h.tokens;
  const Eigen::MatrixXd* parts[] = {&h.q_proj, &h.o_proj, &h.gate_proj, &h.down_proj};
  for (size_t i = 0; i < out.matrices.size(); ++i) {
    const Eigen::MatrixXd scaled = *parts[i] * inv;
    absl::StatusOr<Tensor> t = Tensor::FromValues<double>(
        {scaled.rows(), scaled.cols()},
        std::span<const double>(scaled.data(), static_cast<size_t>(scaled.size())));
    if (!t.ok()) return t.status();
    out.matrices[i] = *std::move(t);
  }
  return out;
}

absl::StatusOr<format::Hessians> NormalisedHessians(BlockHessians&& h, int64_t layer) {
  if (h.tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration of block ", layer, " saw no tokens"));
  }
  const double inv = 1.0 / static_cast<double>(h.tokens);
  format::Hessians out;
  out.layer = layer;
  out.tokens = h.tokens;
  Eigen::MatrixXd* parts[] = {&h.q_proj, &h.o_proj, &h.gate_proj, &h.down_proj};
  for (size_t i = 0; i < out.matrices.size(); ++i) {
    *parts[i] *= inv;  // the same products as the copying overload
    absl::StatusOr<Tensor> t = Tensor::FromValues<double>(
        {parts[i]->rows(), parts[i]->cols()},
        std::span<const double>(parts[i]->data(), static_cast<size_t>(parts[i]->size())));
    if (!t.ok()) return t.status();
    out.matrices[i] = *std::move(t);
    Eigen::MatrixXd().swap(*parts[i]);
  }
  return out;
}

}  // namespace caldera::model
