#include "core/model/llama_block.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/block_kernels.h"

namespace caldera::model {
namespace {

absl::StatusOr<VectorF> ReadVector(const Checkpoint& ckpt, const std::string& name, int64_t size) {
  absl::StatusOr<Tensor> t = ckpt.ReadF32(name);
  if (!t.ok()) return t.status();
  if (t->numel() != size || t->rank() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("model ", ckpt.name(), ": '", name,
                                                   "' has shape ", ShapeString(t->shape()),
                                                   ", expected [", size, "]"));
  }
  return Eigen::Map<const VectorF>(t->data<float>().data(), size);
}

}  // namespace

RowMatrixF* LinearOf(BlockWeights* w, const ModelConfig& c, size_t i) {
  RowMatrixF* dense[] = {&w->q, &w->k, &w->v, &w->o, &w->gate, &w->up, &w->down};
  if (!c.is_moe() || i < 4) return dense[i];
  ExpertWeights& e = w->experts[(i - 4) / 3];
  RowMatrixF* parts[] = {&e.gate, &e.up, &e.down};
  return parts[(i - 4) % 3];
}

absl::StatusOr<BlockWeights> LoadBlock(const Checkpoint& ckpt, int64_t layer) {
  const ModelConfig& c = ckpt.config();
  if (layer < 0 || layer >= c.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer, " out of range; the model has ", c.num_layers));
  }
  const std::string p = c.LayerPrefix(layer);
  BlockWeights w;
  absl::StatusOr<VectorF> n1 = ReadVector(ckpt, p + "input_layernorm.weight", c.hidden_size);
  if (!n1.ok()) return n1.status();
  w.input_norm = *std::move(n1);
  absl::StatusOr<VectorF> n2 =
      ReadVector(ckpt, p + "post_attention_layernorm.weight", c.hidden_size);
  if (!n2.ok()) return n2.status();
  w.post_norm = *std::move(n2);
  if (c.is_moe()) {
    w.experts.resize(static_cast<size_t>(c.num_experts));
    const std::string router = p + RouterSuffix(c) + ".weight";
    absl::StatusOr<Tensor> r = ckpt.ReadF32(router);
    if (!r.ok()) return r.status();
    if (r->shape() != std::vector<int64_t>{c.num_experts, c.hidden_size}) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model ", ckpt.name(), ": router '", router, "' has shape ", ShapeString(r->shape()),
          " but config.json implies [", c.num_experts, ", ", c.hidden_size, "]"));
    }
    w.router = Eigen::Map<const RowMatrixF>(r->data<float>().data(), r->dim(0), r->dim(1));
  }
  const std::vector<BlockLinear> linears = BlockLinears(c);
  for (size_t i = 0; i < linears.size(); ++i) {
    absl::StatusOr<Tensor> t = ckpt.ReadLinearWeight(p + linears[i].suffix, linears[i].name);
    if (!t.ok()) return t.status();
    *LinearOf(&w, c, i) =
        Eigen::Map<const RowMatrixF>(t->data<float>().data(), t->dim(0), t->dim(1));
  }
  if (c.attention_bias) {
    const int64_t q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
    for (auto [name, size, out] : {std::tuple{"self_attn.q_proj.bias", q_out, &w.q_bias},
                                   std::tuple{"self_attn.k_proj.bias", kv_out, &w.k_bias},
                                   std::tuple{"self_attn.v_proj.bias", kv_out, &w.v_bias}}) {
      absl::StatusOr<VectorF> b = ReadVector(ckpt, p + name, size);
      if (!b.ok()) return b.status();
      *out = *std::move(b);
    }
  }
  if (c.qk_norm) {
    for (auto [name, out] : {std::pair{"self_attn.q_norm.weight", &w.q_norm},
                             std::pair{"self_attn.k_norm.weight", &w.k_norm}}) {
      absl::StatusOr<VectorF> n = ReadVector(ckpt, p + name, c.head_dim);
      if (!n.ok()) return n.status();
      *out = *std::move(n);
    }
  }
  return w;
}

RopeTable MakeRopeTable(const ModelConfig& c, int64_t seq_len) {
  const int64_t half = c.head_dim / 2;
  std::vector<double> inv_freq(half);
  const RopeScaling& rs = c.rope_scaling;
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / c.head_dim);
    if (rs.type == "linear") {
      f /= rs.factor;
    } else if (rs.type == "llama3") {
      const double old_len = static_cast<double>(rs.original_max_position_embeddings);
      const double low_wavelen = old_len / rs.low_freq_factor;
      const double high_wavelen = old_len / rs.high_freq_factor;
      const double wavelen = 2 * M_PI / f;
      if (wavelen > low_wavelen) {
        f /= rs.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth =
            (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1 - smooth) * f / rs.factor + smooth * f;
      }
    }
    inv_freq[i] = f;
  }
  RopeTable t;
  t.cos.resize(seq_len, half);
  t.sin.resize(seq_len, half);
  for (int64_t pos = 0; pos < seq_len; ++pos) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(pos) * static_cast<float>(inv_freq[i]);
      t.cos(pos, i) = static_cast<float>(std::cos(angle));
      t.sin(pos, i) = static_cast<float>(std::sin(angle));
    }
  }
  return t;
}

BlockHessians BlockHessians::Zeros(const ModelConfig& c) {
  BlockHessians h;
  h.q_proj = Eigen::MatrixXd::Zero(c.hidden_size, c.hidden_size);
  h.o_proj = Eigen::MatrixXd::Zero(c.num_heads * c.head_dim, c.num_heads * c.head_dim);
  h.gate_proj = Eigen::MatrixXd::Zero(c.hidden_size, c.hidden_size);
  if (!c.is_moe()) {
    h.down_proj = Eigen::MatrixXd::Zero(c.intermediate_size, c.intermediate_size);
    return h;
  }
  const size_t e = static_cast<size_t>(c.num_experts);
  h.expert_gate.assign(e, Eigen::MatrixXd::Zero(c.hidden_size, c.hidden_size));
  h.expert_down.assign(e, Eigen::MatrixXd::Zero(c.moe_intermediate_size, c.moe_intermediate_size));
  h.expert_tokens.assign(e, 0);
  return h;
}

void BlockHessians::Add(const BlockHessians& other) {
  q_proj += other.q_proj;
  o_proj += other.o_proj;
  gate_proj += other.gate_proj;
  down_proj += other.down_proj;
  tokens += other.tokens;
  for (size_t e = 0; e < expert_tokens.size() && e < other.expert_tokens.size(); ++e) {
    expert_gate[e] += other.expert_gate[e];
    expert_down[e] += other.expert_down[e];
    expert_tokens[e] += other.expert_tokens[e];
  }
}

void BlockHessians::SymmetrizeAll() {
  for (Eigen::MatrixXd* h : {&q_proj, &o_proj, &gate_proj, &down_proj}) Symmetrize(h);
  for (Eigen::MatrixXd& h : expert_gate) Symmetrize(&h);
  for (Eigen::MatrixXd& h : expert_down) Symmetrize(&h);
}

void AccumulateLower(const RowMatrixF& x, Eigen::MatrixXd* h) {
  // One float32 product over all rows of x, added into float64 in column panels:
  // the diagonal block of a panel by SSYRK, the block below it by SGEMM, then
  // the panel's lower part is added into h. Float32 error is that of one
  // chunk's dot products (|error| <~ sqrt(rows)·2^-24·(|x|^T|x|) in practice,
  // rows·2^-24 at worst); the float64 sum across calls adds next to none.
  const int64_t n = x.cols();
  const int64_t rows = x.rows();
  if (rows == 0 || n == 0) return;
  const int64_t panel = std::min<int64_t>(n, kAccumulatePanel);
  std::vector<float> scratch(static_cast<size_t>(n * panel));
  const float* a = x.data();  // column-major view: A = x^T, n x rows, lda n
  const int lda = static_cast<int>(n);
  for (int64_t j0 = 0; j0 < n; j0 += panel) {
    const int64_t b = std::min(panel, n - j0);
    const int64_t below = n - j0 - b;
    const int ld = static_cast<int>(n - j0);  // scratch: (n-j0) x b, column-major
    cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, static_cast<int>(b),
                static_cast<int>(rows), 1.0f, a + j0, lda, 0.0f, scratch.data(), ld);
    if (below > 0) {
      cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, static_cast<int>(below),
                  static_cast<int>(b), static_cast<int>(rows), 1.0f, a + j0 + b, lda, a + j0, lda,
                  0.0f, scratch.data() + b, ld);
    }
    for (int64_t c = 0; c < b; ++c) {
      const float* src = scratch.data() + c * ld;
      double* dst = h->data() + (j0 + c) * h->rows() + j0;
      for (int64_t r = c; r < n - j0; ++r) dst[r] += static_cast<double>(src[r]);
    }
  }
}

void AccumulateLowerF64(const RowMatrixF& x, Eigen::MatrixXd* h) {
  constexpr int64_t kChunk = 2048;
  const int64_t n = x.cols();
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xd;
  for (int64_t r0 = 0; r0 < x.rows(); r0 += kChunk) {
    const int64_t rows = std::min(kChunk, x.rows() - r0);
    xd = x.middleRows(r0, rows).cast<double>();
    // Column-major view of the row-major chunk is xd^T (n x rows): C += A A^T.
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, static_cast<int>(n),
                static_cast<int>(rows), 1.0, xd.data(), static_cast<int>(n), 1.0, h->data(),
                static_cast<int>(h->rows()));
  }
}

void Symmetrize(Eigen::MatrixXd* h) {
  // In place, in tiles so that both the read and the transposed write stay in cache.
  constexpr int64_t kTile = 64;
  const int64_t n = h->rows();
  double* d = h->data();
  for (int64_t j0 = 0; j0 < n; j0 += kTile) {
    for (int64_t i0 = j0; i0 < n; i0 += kTile) {
      for (int64_t j = j0; j < std::min(j0 + kTile, n); ++j) {
        for (int64_t i = std::max(i0, j + 1); i < std::min(i0 + kTile, n); ++i) {
          d[i * n + j] = d[j * n + i];  // (j, i) = (i, j)
        }
      }
    }
  }
}

void RmsNorm(const RowMatrixF& x, const VectorF& weight, double eps, RowMatrixF* out) {
  out->resize(x.rows(), x.cols());
  for (int64_t r = 0; r < x.rows(); ++r) {
    const double ms = x.row(r).cast<double>().squaredNorm() / static_cast<double>(x.cols());
    const float scale = static_cast<float>(1.0 / std::sqrt(ms + eps));
    out->row(r) = (x.row(r) * scale).cwiseProduct(weight.transpose());
  }
}

namespace {

// Rotates the head-dim pairs (i, i + d/2) of every head in `x` ([tokens, heads*d]).
// RMSNorm of every head_dim-wide head of every row of x ([tokens, heads*d],
// row-major, so the heads are the rows of a [tokens*heads, d] view), in place.
void HeadRmsNorm(const VectorF& weight, double eps, int64_t d, RowMatrixF* x) {
  Eigen::Map<RowMatrixF> heads(x->data(), x->size() / d, d);
  const RowMatrixF in = heads;
  RowMatrixF out;
  RmsNorm(in, weight, eps, &out);
  heads = out;
}

void ApplyRope(const RopeTable& rope, int64_t seq_len, int64_t heads, int64_t d, RowMatrixF* x) {
  const int64_t half = d / 2;
  for (int64_t r = 0; r < x->rows(); ++r) {
    const int64_t pos = r % seq_len;
    float* row = x->row(r).data();
    const float* c = rope.cos.row(pos).data();
    const float* s = rope.sin.row(pos).data();
    for (int64_t h = 0; h < heads; ++h) {
      float* v = row + h * d;
      for (int64_t i = 0; i < half; ++i) kernels::RopeRotatePair(v, i, half, c[i], s[i]);
    }
  }
}

// The top-k routing of one token: `logits` [num_experts] in, the chosen
// experts (highest probability first; the lower index wins a tie) and their
// weights out, as transformers' MixtralTopKRouter / Qwen3MoeTopKRouter: softmax
// over all logits, top-k, divided by the top-k sum when norm_topk_prob.
void Route(const ModelConfig& c, const float* logits, std::vector<int64_t>* chosen,
           std::vector<float>* weights) {
  const int64_t n = c.num_experts;
  float max = logits[0];
  for (int64_t e = 1; e < n; ++e) max = std::max(max, logits[e]);
  std::vector<double> prob(static_cast<size_t>(n));
  double sum = 0;
  for (int64_t e = 0; e < n; ++e) sum += prob[e] = std::exp(static_cast<double>(logits[e] - max));
  for (double& p : prob) p /= sum;
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e) order[e] = e;
  std::partial_sort(
      order.begin(), order.begin() + c.num_experts_per_tok, order.end(),
      [&](int64_t a, int64_t b) { return prob[a] > prob[b] || (prob[a] == prob[b] && a < b); });
  chosen->assign(order.begin(), order.begin() + c.num_experts_per_tok);
  double top = 0;
  for (int64_t e : *chosen) top += prob[e];
  weights->clear();
  for (int64_t e : *chosen) {
    weights->push_back(static_cast<float>(c.norm_topk_prob ? prob[e] / top : prob[e]));
  }
}

// The mixture-of-experts MLP of one batch: `x` is the normalised input
// [tokens, hidden]; adds the experts' weighted outputs into `hidden`. Expert e
// runs once over the rows routed to it (in token order); when `hessians` is not
// null its gate/up and down inputs are accumulated into expert_gate[e] and
// expert_down[e] with expert_tokens[e] += its rows.
template <typename AccumulateFn>
void MoeForward(const ModelConfig& c, const BlockWeights& w, const RowMatrixF& x,
                BlockHessians* hessians, const AccumulateFn& accumulate, RowMatrixF* hidden) {
  const int64_t tokens = x.rows();
  const RowMatrixF logits = x * w.router.transpose();
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(c.num_experts));
  std::vector<std::vector<float>> scales(static_cast<size_t>(c.num_experts));
  std::vector<int64_t> chosen;
  std::vector<float> weights;
  for (int64_t t = 0; t < tokens; ++t) {
    Route(c, logits.row(t).data(), &chosen, &weights);
    for (size_t k = 0; k < chosen.size(); ++k) {
      rows[chosen[k]].push_back(t);
      scales[chosen[k]].push_back(weights[k]);
    }
  }
  RowMatrixF out = RowMatrixF::Zero(tokens, c.hidden_size);
  for (int64_t e = 0; e < c.num_experts; ++e) {
    const std::vector<int64_t>& r = rows[e];
    if (r.empty()) continue;
    const int64_t n = static_cast<int64_t>(r.size());
    RowMatrixF xe(n, c.hidden_size);
    for (int64_t i = 0; i < n; ++i) xe.row(i) = x.row(r[i]);
    const ExpertWeights& ew = w.experts[e];
    if (hessians != nullptr) {
      accumulate(xe, &hessians->expert_gate[e]);
      hessians->expert_tokens[e] += n;
    }
    RowMatrixF gate = xe * ew.gate.transpose();
    const RowMatrixF up = xe * ew.up.transpose();
    for (int64_t i = 0; i < gate.size(); ++i) {
      gate.data()[i] = kernels::SwiGlu(gate.data()[i], up.data()[i]);
    }
    if (hessians != nullptr) accumulate(gate, &hessians->expert_down[e]);
    const RowMatrixF y = gate * ew.down.transpose();
    for (int64_t i = 0; i < n; ++i) out.row(r[i]) += scales[e][i] * y.row(i);
  }
  *hidden += out;
}

}  // namespace

void BlockForward(const ModelConfig& c, const BlockWeights& w, const RopeTable& rope,
                  int64_t seq_len, RowMatrixF* hidden, BlockHessians* hessians) {
  const int64_t tokens = hidden->rows();
  const int64_t d = c.head_dim;
  const int64_t group = c.num_heads / c.num_kv_heads;
  auto Accumulate = [hessians](const RowMatrixF& in, Eigen::MatrixXd* h) {
    if (hessians->float64_reference) {
      AccumulateLowerF64(in, h);
    } else {
      AccumulateLower(in, h);
    }
  };
  RowMatrixF x;
  RmsNorm(*hidden, w.input_norm, c.rms_norm_eps, &x);
  if (hessians != nullptr) {
    Accumulate(x, &hessians->q_proj);
    hessians->tokens += tokens;
  }
  RowMatrixF q = x * w.q.transpose();
  RowMatrixF k = x * w.k.transpose();
  RowMatrixF v = x * w.v.transpose();
  if (c.attention_bias) {
    q.rowwise() += w.q_bias.transpose();
    k.rowwise() += w.k_bias.transpose();
    v.rowwise() += w.v_bias.transpose();
  }
  if (c.qk_norm) {
    HeadRmsNorm(w.q_norm, c.rms_norm_eps, d, &q);
    HeadRmsNorm(w.k_norm, c.rms_norm_eps, d, &k);
  }
  ApplyRope(rope, seq_len, c.num_heads, d, &q);
  ApplyRope(rope, seq_len, c.num_kv_heads, d, &k);

  RowMatrixF attn(tokens, c.num_heads * d);
  RowMatrixF scores(seq_len, seq_len);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int64_t s0 = 0; s0 < tokens; s0 += seq_len) {
    for (int64_t h = 0; h < c.num_heads; ++h) {
      const int64_t kv = h / group;
      auto qh = q.block(s0, h * d, seq_len, d);
      auto kh = k.block(s0, kv * d, seq_len, d);
      auto vh = v.block(s0, kv * d, seq_len, d);
      scores.noalias() = (qh * kh.transpose()) * scale;
      for (int64_t i = 0; i < seq_len; ++i) {
        kernels::CausalSoftmaxRow(scores.row(i).data(), i, seq_len);
      }
      attn.block(s0, h * d, seq_len, d).noalias() = scores * vh;
    }
  }
  if (hessians != nullptr) Accumulate(attn, &hessians->o_proj);
  hidden->noalias() += attn * w.o.transpose();

  RmsNorm(*hidden, w.post_norm, c.rms_norm_eps, &x);
  if (hessians != nullptr) Accumulate(x, &hessians->gate_proj);
  if (c.is_moe()) {
    MoeForward(c, w, x, hessians, Accumulate, hidden);
    return;
  }
  RowMatrixF gate = x * w.gate.transpose();
  RowMatrixF up = x * w.up.transpose();
  for (int64_t i = 0; i < gate.size(); ++i) {
    gate.data()[i] = kernels::SwiGlu(gate.data()[i], up.data()[i]);
  }
  if (hessians != nullptr) Accumulate(gate, &hessians->down_proj);
  hidden->noalias() += gate * w.down.transpose();
}

}  // namespace caldera::model
