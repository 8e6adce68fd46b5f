// The block's backward pass against central finite differences (float64), for
// every parameter kind and the input, with and without q/k/v biases; and the
// float forward of the gradient code against model::BlockForward.
#include "core/model/llama_block_grad.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

namespace caldera::model {
namespace {

using MatD = RowMatrix<double>;

ModelConfig SmallConfig(bool bias) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 12;
  c.intermediate_size = 20;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.num_layers = 1;
  c.rms_norm_eps = 1e-5;
  c.attention_bias = bias;
  return c;
}

template <typename M>
void FillRandom(std::mt19937_64* rng, double scale, M* m) {
  std::normal_distribution<double> n(0.0, scale);
  for (int64_t i = 0; i < m->size(); ++i) m->data()[i] = n(*rng);
}

BlockParams<double> RandomParams(const ModelConfig& c, std::mt19937_64* rng) {
  BlockParams<double> p;
  const int64_t h = c.hidden_size, qd = c.num_heads * c.head_dim, kd = c.num_kv_heads * c.head_dim;
  const int64_t f = c.intermediate_size;
  p.input_norm.resize(h);
  p.post_norm.resize(h);
  FillRandom(rng, 0.3, &p.input_norm);
  FillRandom(rng, 0.3, &p.post_norm);
  p.input_norm.array() += 1.0;
  p.post_norm.array() += 1.0;
  const int64_t shapes[7][2] = {{qd, h}, {kd, h}, {kd, h}, {h, qd}, {f, h}, {f, h}, {h, f}};
  for (int i = 0; i < 7; ++i) {
    p.linear(i)->resize(shapes[i][0], shapes[i][1]);
    FillRandom(rng, 0.5, p.linear(i));
  }
  if (c.attention_bias) {
    p.q_bias.resize(qd);
    p.k_bias.resize(kd);
    p.v_bias.resize(kd);
    FillRandom(rng, 0.3, &p.q_bias);
    FillRandom(rng, 0.3, &p.k_bias);
    FillRandom(rng, 0.3, &p.v_bias);
  }
  return p;
}

struct Problem {
  ModelConfig config;
  RopeTable rope;
  int64_t seq_len = 5;
  MatD x, target;
};

Problem MakeProblem(bool bias, std::mt19937_64* rng) {
  Problem pr;
  pr.config = SmallConfig(bias);
  pr.rope = MakeRopeTable(pr.config, pr.seq_len);
  pr.x.resize(2 * pr.seq_len, pr.config.hidden_size);
  pr.target.resize(pr.x.rows(), pr.x.cols());
  FillRandom(rng, 1.0, &pr.x);
  FillRandom(rng, 1.0, &pr.target);
  return pr;
}

double Loss(const Problem& pr, const BlockParams<double>& p, const MatD& x) {
  MatD y;
  return BlockLossAndGradient<double>(pr.config, p, pr.rope, pr.seq_len, x, pr.target, &y, nullptr,
                                      nullptr);
}

// Central differences of every entry of `value` (a parameter or the input)
// against `analytic`.
template <typename M>
void CheckEntries(const std::string& what, M* value, const M& analytic,
                  const std::function<double()>& loss) {
  ASSERT_EQ(value->size(), analytic.size()) << what;
  const double h = 1e-6;
  for (int64_t i = 0; i < value->size(); ++i) {
    const double saved = value->data()[i];
    value->data()[i] = saved + h;
    const double up = loss();
    value->data()[i] = saved - h;
    const double down = loss();
    value->data()[i] = saved;
    const double fd = (up - down) / (2 * h);
    const double a = analytic.data()[i];
    EXPECT_NEAR(a, fd, 1e-7 + 1e-5 * std::abs(fd)) << what << " entry " << i;
  }
}

void CheckGradients(bool bias) {
  std::mt19937_64 rng(bias ? 7 : 3);
  Problem pr = MakeProblem(bias, &rng);
  BlockParams<double> p = RandomParams(pr.config, &rng);
  BlockParams<double> grad;
  MatD y, dx;
  BlockLossAndGradient<double>(pr.config, p, pr.rope, pr.seq_len, pr.x, pr.target, &y, &grad, &dx);
  auto loss = [&] { return Loss(pr, p, pr.x); };
  CheckEntries("input_norm", &p.input_norm, grad.input_norm, loss);
  CheckEntries("post_norm", &p.post_norm, grad.post_norm, loss);
  const char* names[] = {"q", "k", "v", "o", "gate", "up", "down"};
  for (int i = 0; i < 7; ++i) CheckEntries(names[i], p.linear(i), *grad.linear(i), loss);
  if (bias) {
    CheckEntries("q_bias", &p.q_bias, grad.q_bias, loss);
    CheckEntries("k_bias", &p.k_bias, grad.k_bias, loss);
    CheckEntries("v_bias", &p.v_bias, grad.v_bias, loss);
  }
  MatD x = pr.x;
  CheckEntries("input", &x, dx, [&] { return Loss(pr, p, x); });
}

TEST(LlamaBlockGradTest, GradientsMatchFiniteDifferences) { CheckGradients(false); }

TEST(LlamaBlockGradTest, GradientsWithBiasesMatchFiniteDifferences) { CheckGradients(true); }

// The gradient code's forward is the block of llama_block.h.
TEST(LlamaBlockGradTest, ForwardMatchesBlockForward) {
  std::mt19937_64 rng(11);
  Problem pr = MakeProblem(true, &rng);
  const BlockParams<double> pd = RandomParams(pr.config, &rng);
  BlockParams<float> pf;
  pf.input_norm = pd.input_norm.cast<float>();
  pf.post_norm = pd.post_norm.cast<float>();
  for (int i = 0; i < 7; ++i) *pf.linear(i) = pd.linear(i)->cast<float>();
  pf.q_bias = pd.q_bias.cast<float>();
  pf.k_bias = pd.k_bias.cast<float>();
  pf.v_bias = pd.v_bias.cast<float>();
  const BlockWeights w = WeightsFromParams(pf);
  RowMatrixF hidden = pr.x.cast<float>();
  const RowMatrixF x = hidden;
  BlockForward(pr.config, w, pr.rope, pr.seq_len, &hidden, nullptr);
  RowMatrix<float> y;
  const RowMatrix<float> t = pr.target.cast<float>();
  BlockLossAndGradient<float>(pr.config, pf, pr.rope, pr.seq_len, x, t, &y, nullptr, nullptr);
  EXPECT_LT((y - hidden).cwiseAbs().maxCoeff(), 1e-4 * (1 + hidden.cwiseAbs().maxCoeff()));
}

}  // namespace
}  // namespace caldera::model
