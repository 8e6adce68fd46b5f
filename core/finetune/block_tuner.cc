#include "core/finetune/block_tuner.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "core/model/llama_block_grad.h"

namespace caldera::finetune {
namespace {

using model::BlockParams;
using model::RowMatrixF;

// Adam over a fixed list of parameter tensors, each stepping by lr · (its RMS
// when the optimiser was made), so one rate suits scales and factors alike.
class Adam {
 public:
  Adam(std::vector<MatrixF*> params, double lr) : params_(std::move(params)) {
    for (MatrixF* p : params_) {
      m_.push_back(MatrixF::Zero(p->rows(), p->cols()));
      v_.push_back(MatrixF::Zero(p->rows(), p->cols()));
      const double rms = p->size() > 0 ? std::sqrt(p->squaredNorm() / p->size()) : 0.0;
      lr_.push_back(static_cast<float>(lr * std::max(rms, 1e-8)));
    }
  }
  // `factor` scales this step's learning rate (a schedule).
  void Step(const std::vector<const MatrixF*>& grads, float factor = 1.0f) {
    ++t_;
    const double c1 = 1 - std::pow(kBeta1, t_), c2 = 1 - std::pow(kBeta2, t_);
    for (size_t i = 0; i < params_.size(); ++i) {
      m_[i] = kBeta1 * m_[i] + (1 - kBeta1) * *grads[i];
      v_[i] = kBeta2 * v_[i] + (1 - kBeta2) * grads[i]->cwiseAbs2();
      const float step = factor * lr_[i] / static_cast<float>(c1);
      const float root_c2 = static_cast<float>(std::sqrt(c2));
      params_[i]->array() -= step * m_[i].array() / ((v_[i].array().sqrt() / root_c2) + 1e-12f);
    }
  }

 private:
  static constexpr float kBeta1 = 0.9f, kBeta2 = 0.999f;
  std::vector<MatrixF*> params_;
  std::vector<MatrixF> m_, v_;
  std::vector<float> lr_;
  int t_ = 0;
};

struct Split {
  RowMatrixF x, target;
};

Split Rows(const RowMatrixF& x, const RowMatrixF& target, const std::vector<int64_t>& sequences,
           int64_t seq_len) {
  Split s;
  s.x.resize(static_cast<int64_t>(sequences.size()) * seq_len, x.cols());
  s.target.resize(s.x.rows(), x.cols());
  for (size_t i = 0; i < sequences.size(); ++i) {
    s.x.middleRows(static_cast<int64_t>(i) * seq_len, seq_len) =
        x.middleRows(sequences[i] * seq_len, seq_len);
    s.target.middleRows(static_cast<int64_t>(i) * seq_len, seq_len) =
        target.middleRows(sequences[i] * seq_len, seq_len);
  }
  return s;
}

// The tuner's state: the tunable modules, the norms as n × 1 matrices, and
// the dense parameters of the block they make.
class State {
 public:
  State(const model::ModelConfig& config, int64_t seq_len, const model::BlockWeights& weights,
        std::array<std::optional<TunableLinear>, 7> linears, bool tune_norms)
      : config_(config),
        seq_len_(seq_len),
        rope_(model::MakeRopeTable(config, seq_len)),
        linears_(std::move(linears)),
        tune_norms_(tune_norms) {
    params_ = model::ParamsFromWeights<float>(weights);
    norms_[0] = params_.input_norm;
    norms_[1] = params_.post_norm;
  }

  absl::Status Refresh() {
    for (int i = 0; i < 7; ++i) {
      if (!linears_[i].has_value()) continue;
      absl::StatusOr<MatrixF> w = linears_[i]->Weight();
      if (!w.ok()) return w.status();
      *params_.linear(i) = *w;
    }
    params_.input_norm = norms_[0].col(0);
    params_.post_norm = norms_[1].col(0);
    return absl::OkStatus();
  }

  double Loss(const Split& s) const {
    RowMatrixF y;
    return model::BlockLossAndGradient<float>(config_, params_, rope_, seq_len_, s.x, s.target, &y,
                                              nullptr, nullptr);
  }

  // One gradient evaluation: the gradients of Parameters() are set.
  absl::StatusOr<double> Gradient(const Split& s) {
    RowMatrixF y;
    BlockParams<float> g;
    const double loss = model::BlockLossAndGradient<float>(config_, params_, rope_, seq_len_, s.x,
                                                           s.target, &y, &g, nullptr);
    for (int i = 0; i < 7; ++i) {
      if (!linears_[i].has_value()) continue;
      if (absl::Status st = linears_[i]->Backward(MatrixF(*g.linear(i))); !st.ok()) return st;
    }
    d_norms_[0] = g.input_norm;
    d_norms_[1] = g.post_norm;
    return loss;
  }

  std::vector<MatrixF*> Parameters() {
    std::vector<MatrixF*> p;
    for (auto& l : linears_) {
      if (!l.has_value()) continue;
      for (MatrixF* m : l->Parameters()) p.push_back(m);
    }
    if (tune_norms_) p.insert(p.end(), {&norms_[0], &norms_[1]});
    return p;
  }
  std::vector<const MatrixF*> Gradients() {
    std::vector<const MatrixF*> g;
    for (auto& l : linears_) {
      if (!l.has_value()) continue;
      for (MatrixF* m : l->Gradients()) g.push_back(m);
    }
    if (tune_norms_) g.insert(g.end(), {&d_norms_[0], &d_norms_[1]});
    return g;
  }

  std::vector<MatrixF*> Offsets() {
    std::vector<MatrixF*> v;
    for (auto& l : linears_) {
      if (l.has_value() && l->rounding()) v.push_back(l->offsets());
    }
    return v;
  }
  std::vector<const MatrixF*> OffsetGradients() {
    std::vector<const MatrixF*> v;
    for (auto& l : linears_) {
      if (l.has_value() && l->rounding()) v.push_back(&l->offset_gradient());
    }
    return v;
  }

  std::array<std::optional<TunableLinear>, 7>& linears() { return linears_; }
  const BlockParams<float>& params() const { return params_; }
  const std::array<MatrixF, 2>& norms() const { return norms_; }

 private:
  const model::ModelConfig& config_;
  int64_t seq_len_;
  model::RopeTable rope_;
  std::array<std::optional<TunableLinear>, 7> linears_;
  bool tune_norms_;
  BlockParams<float> params_;
  std::array<MatrixF, 2> norms_, d_norms_;
};

// Runs up to `steps` Adam steps on the state's current parameters over
// minibatches of the `train` sequences, evaluating the held-out sequences
// every o.eval_every steps and at the end, and leaves the parameters of the
// best evaluation (`*best`, the held-out error coming in, is lowered to it).
// Returns the steps run.
absl::StatusOr<int> Train(State& state, const RowMatrixF& x, const RowMatrixF& target,
                          int64_t seq_len, const std::vector<int64_t>& train, const Split& holdout,
                          int steps, const FineTuneOptions& o, std::mt19937_64& rng, double* best) {
  std::vector<MatrixF*> params = state.Parameters();
  const std::vector<MatrixF*> offsets = state.Offsets();
  if ((params.empty() && offsets.empty()) || steps <= 0 || train.empty()) return 0;
  Adam adam(params, o.lr);
  const float round_lr = static_cast<float>(o.round_lr > 0   ? o.round_lr
                                            : o.linear_decay ? std::min(4.0 / steps, 0.02)
                                                             : 1.0 / steps);
  params.insert(params.end(), offsets.begin(), offsets.end());  // snapshots hold both
  std::vector<MatrixF> snapshot;
  for (MatrixF* p : params) snapshot.push_back(*p);
  std::vector<int64_t> order = train;
  size_t next = order.size();
  const size_t batch =
      std::min<size_t>(static_cast<size_t>(std::max(o.batch_sequences, 1)), order.size());
  const int every = std::max(o.eval_every, 1);
  int since_best = 0, step = 0;
  while (step < steps) {
    if (o.cancelled && o.cancelled()) return absl::CancelledError("fine-tuning was cancelled");
    std::vector<int64_t> picked;
    for (size_t i = 0; i < batch; ++i) {
      if (next == order.size()) {
        std::shuffle(order.begin(), order.end(), rng);
        next = 0;
      }
      picked.push_back(order[next++]);
    }
    const Split b = Rows(x, target, picked, seq_len);
    absl::StatusOr<double> loss = state.Gradient(b);
    if (!loss.ok()) return loss.status();
    // AutoRound's schedule when asked: the rates fall linearly to 0.
    const float factor =
        o.linear_decay ? 1.0f - static_cast<float>(step) / static_cast<float>(steps) : 1.0f;
    adam.Step(state.Gradients(), factor);
    // Signed gradient descent on the rounding offsets (AutoRound).
    const std::vector<const MatrixF*> d_offsets = state.OffsetGradients();
    for (size_t i = 0; i < offsets.size(); ++i) {
      offsets[i]->array() = (offsets[i]->array() - factor * round_lr * d_offsets[i]->array().sign())
                                .cwiseMax(-1.0f)
                                .cwiseMin(1.0f);
    }
    if (absl::Status s = state.Refresh(); !s.ok()) return s;
    ++step;
    if (step % every != 0 && step != steps) continue;
    const double h = state.Loss(holdout);
    if (std::isfinite(h) && h < *best) {
      *best = h;
      for (size_t i = 0; i < params.size(); ++i) snapshot[i] = *params[i];
      since_best = 0;
    } else if (++since_best >= o.patience) {
      break;
    }
  }
  for (size_t i = 0; i < params.size(); ++i) *params[i] = snapshot[i];
  if (absl::Status s = state.Refresh(); !s.ok()) return s;
  return step;
}

}  // namespace

absl::StatusOr<BlockTuneResult> TuneBlock(const model::ModelConfig& config, int64_t seq_len,
                                          const RowMatrixF& x, const RowMatrixF& target,
                                          const model::BlockWeights& weights,
                                          std::array<std::optional<TunableLinear>, 7> linears,
                                          const FineTuneOptions& o) {
  if (seq_len <= 0 || x.rows() % seq_len != 0 || x.rows() != target.rows() ||
      x.cols() != config.hidden_size || target.cols() != config.hidden_size) {
    return absl::InvalidArgumentError(
        "fine-tuning: the inputs and targets must be whole sequences of the block's width");
  }
  const int64_t sequences = x.rows() / seq_len;
  if (sequences < 2) {
    return absl::InvalidArgumentError(
        "fine-tuning needs at least 2 calibration sequences (one is held out)");
  }
  const int64_t held = std::clamp<int64_t>(
      static_cast<int64_t>(std::llround(o.holdout * static_cast<double>(sequences))), 1,
      sequences - 1);
  std::vector<int64_t> train(static_cast<size_t>(sequences - held)),
      rest(static_cast<size_t>(held));
  std::iota(train.begin(), train.end(), 0);
  std::iota(rest.begin(), rest.end(), sequences - held);
  const Split holdout = Rows(x, target, rest, seq_len);
  const Split training = Rows(x, target, train, seq_len);

  BlockTuneResult result;
  if (o.tune_rounding) {
    for (auto& l : linears) {
      if (l.has_value()) l->EnableRounding();
    }
  }
  State state(config, seq_len, weights, std::move(linears), o.tune_norms);
  if (absl::Status s = state.Refresh(); !s.ok()) return s;
  result.report.train_before = state.Loss(training);
  result.report.holdout_before = state.Loss(holdout);
  std::mt19937_64 rng(o.seed);
  double best = result.report.holdout_before;
  absl::StatusOr<int> ran =
      Train(state, x, target, seq_len, train, holdout, o.steps, o, rng, &best);
  if (!ran.ok()) return ran.status();
  result.report.steps = *ran;
  result.report.holdout_tuned = best;
  // The codes fixed, then L and R to their stored precision one after the
  // other, the rest adapting to each: L quantized while R, the scales and
  // norms train; then R, while the scales and norms train.
  const int later = static_cast<int>(std::lround(o.scale_phase * o.steps));
  for (bool left : {true, false}) {
    for (auto& l : state.linears()) {
      if (!l.has_value()) continue;
      l->FreezeRounding();
      if (absl::Status s = left ? l->QuantizeLeft() : l->QuantizeFactors(); !s.ok()) return s;
    }
    if (absl::Status s = state.Refresh(); !s.ok()) return s;
    best = state.Loss(holdout);
    ran = Train(state, x, target, seq_len, train, holdout, later, o, rng, &best);
    if (!ran.ok()) return ran.status();
    result.report.steps += *ran;
  }

  // Export, and measure the block exactly as the records rebuild it.
  model::BlockWeights out = weights;
  out.input_norm = state.norms()[0].col(0);
  out.post_norm = state.norms()[1].col(0);
  RowMatrixF* dense[] = {&out.q, &out.k, &out.v, &out.o, &out.gate, &out.up, &out.down};
  for (int i = 0; i < 7; ++i) {
    std::optional<TunableLinear>& l = state.linears()[i];
    if (!l.has_value()) continue;
    absl::StatusOr<NamedTensors> rec = l->Export();
    if (!rec.ok()) return rec.status();
    absl::StatusOr<MatrixF> w = decompose::Reconstruct(*rec);
    if (!w.ok()) return w.status();
    *dense[i] = *w;
    result.records[i] = *std::move(rec);
  }
  const BlockParams<float> exported = model::ParamsFromWeights<float>(out);
  RowMatrixF y;
  const model::RopeTable rope = model::MakeRopeTable(config, seq_len);
  result.report.holdout_after = model::BlockLossAndGradient<float>(
      config, exported, rope, seq_len, holdout.x, holdout.target, &y, nullptr, nullptr);
  if (!(result.report.holdout_after < result.report.holdout_before)) {
    result.report.kept_input = true;
    result.report.holdout_after = result.report.holdout_before;
    for (auto& r : result.records) r.reset();
    result.weights = weights;
  } else {
    result.weights = std::move(out);
  }
  return result;
}

}  // namespace caldera::finetune
