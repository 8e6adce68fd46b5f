#include "core/model/hessians_file.h"

#include <span>

#include "absl/strings/str_cat.h"

namespace caldera::model {
namespace {

absl::StatusOr<Tensor> ToTensor(const Eigen::MatrixXd& m) {
  return Tensor::FromValues<double>(
      {m.rows(), m.cols()}, std::span<const double>(m.data(), static_cast<size_t>(m.size())));
}

// Fills out->experts and out->matrices[3] (the mean down input) from a
// mixture's symmetrised sums; gate_mean is the router input's moment. When
// `consume` is not null (it is &h), each sum is normalised in place and freed
// once copied into its tensor, so at most one matrix is held twice.
absl::Status NormaliseExperts(const BlockHessians& h, BlockHessians* consume,
                              const Eigen::MatrixXd& gate_mean, int64_t layer,
                              format::Hessians* out) {
  int64_t pairs = 0;
  for (int64_t n : h.expert_tokens) pairs += n;
  if (pairs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration of block ", layer, " routed no tokens to any expert"));
  }
  Eigen::MatrixXd down_mean =
      Eigen::MatrixXd::Zero(h.expert_down[0].rows(), h.expert_down[0].cols());
  for (const Eigen::MatrixXd& d : h.expert_down) down_mean += d;
  down_mean *= 1.0 / static_cast<double>(pairs);
  const double m = static_cast<double>(kExpertPriorTokens);
  // sum -> its normalised Hessian, in place: S / n, or (S + (16 - n) M) / 16.
  auto normalise = [m](int64_t n, const Eigen::MatrixXd& mean, Eigen::MatrixXd* sum) {
    if (n >= kExpertPriorTokens) {
      *sum *= 1.0 / static_cast<double>(n);
      return;
    }
    const double prior = m - static_cast<double>(n);
    *sum += prior * mean;
    *sum *= 1.0 / m;
  };
  // One matrix at a time: normalised in place when consuming (else in a
  // copy), copied into its tensor, and the sum freed.
  auto convert = [&](int64_t n, const Eigen::MatrixXd& sum, Eigen::MatrixXd* owned,
                     const Eigen::MatrixXd& mean) -> absl::StatusOr<Tensor> {
    Eigen::MatrixXd copy;
    Eigen::MatrixXd* work = owned;
    if (work == nullptr) {
      copy = sum;
      work = &copy;
    }
    normalise(n, mean, work);
    absl::StatusOr<Tensor> t = ToTensor(*work);
    Eigen::MatrixXd().swap(*work);
    return t;
  };
  for (size_t e = 0; e < h.expert_tokens.size(); ++e) {
    const int64_t n = h.expert_tokens[e];
    format::ExpertHessians x;
    x.tokens = n;
    x.prior_share = n >= kExpertPriorTokens ? 0.0 : (m - static_cast<double>(n)) / m;
    absl::StatusOr<Tensor> g =
        convert(n, h.expert_gate[e], consume ? &consume->expert_gate[e] : nullptr, gate_mean);
    if (!g.ok()) return g.status();
    x.gate = *std::move(g);
    absl::StatusOr<Tensor> d =
        convert(n, h.expert_down[e], consume ? &consume->expert_down[e] : nullptr, down_mean);
    if (!d.ok()) return d.status();
    x.down = *std::move(d);
    out->experts.push_back(std::move(x));
  }
  absl::StatusOr<Tensor> t = ToTensor(down_mean);
  if (!t.ok()) return t.status();
  out->matrices[3] = *std::move(t);
  return absl::OkStatus();
}

}  // namespace

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
  if (!h.expert_tokens.empty()) {
    const Eigen::MatrixXd gate_mean = h.gate_proj * inv;
    if (absl::Status s = NormaliseExperts(h, nullptr, gate_mean, layer, &out); !s.ok()) return s;
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
  if (!h.expert_tokens.empty()) {
    // The experts first, while the router input's sum is still whole.
    const Eigen::MatrixXd gate_mean = h.gate_proj * inv;
    if (absl::Status s = NormaliseExperts(h, &h, gate_mean, layer, &out); !s.ok()) return s;
    h.expert_gate.clear();
    h.expert_down.clear();
  }
  Eigen::MatrixXd* parts[] = {&h.q_proj, &h.o_proj, &h.gate_proj, &h.down_proj};
  for (size_t i = 0; i < out.matrices.size(); ++i) {
    if (!h.expert_tokens.empty() && i == 3) break;  // the experts' mean, filled above
    *parts[i] *= inv;                               // the same products as the copying overload
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
