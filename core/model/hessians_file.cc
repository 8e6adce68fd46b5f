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
// `consume` is not null (it is &h), each expert's sums are freed once
// converted, so at most one expert's matrices are held twice.
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
  for (size_t e = 0; e < h.expert_tokens.size(); ++e) {
    const int64_t n = h.expert_tokens[e];
    format::ExpertHessians x;
    x.tokens = n;
    Eigen::MatrixXd gate, down;
    if (n >= kExpertPriorTokens) {
      gate = h.expert_gate[e] * (1.0 / static_cast<double>(n));
      down = h.expert_down[e] * (1.0 / static_cast<double>(n));
    } else {
      const double prior = m - static_cast<double>(n);
      x.prior_share = prior / m;
      gate = (h.expert_gate[e] + prior * gate_mean) * (1.0 / m);
      down = (h.expert_down[e] + prior * down_mean) * (1.0 / m);
    }
    absl::StatusOr<Tensor> g = ToTensor(gate);
    if (!g.ok()) return g.status();
    absl::StatusOr<Tensor> d = ToTensor(down);
    if (!d.ok()) return d.status();
    x.gate = *std::move(g);
    x.down = *std::move(d);
    if (consume != nullptr) {
      Eigen::MatrixXd().swap(consume->expert_gate[e]);
      Eigen::MatrixXd().swap(consume->expert_down[e]);
    }
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
