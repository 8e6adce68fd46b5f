#include "core/model/llama_block_grad.h"

#include <cmath>
#include <vector>

namespace caldera::model {
namespace {

template <typename T>
using Mat = RowMatrix<T>;

// RMSNorm of each row; `inv_rms` receives 1 / sqrt(mean(x²) + eps) per row and
// `normed` x · inv_rms (before the weight).
template <typename T>
void NormForward(const Mat<T>& x, const Vector<T>& weight, double eps, Vector<T>* inv_rms,
                 Mat<T>* normed, Mat<T>* out) {
  inv_rms->resize(x.rows());
  normed->resize(x.rows(), x.cols());
  out->resize(x.rows(), x.cols());
  for (int64_t r = 0; r < x.rows(); ++r) {
    const double ms = static_cast<double>(x.row(r).squaredNorm()) / static_cast<double>(x.cols());
    (*inv_rms)(r) = static_cast<T>(1.0 / std::sqrt(ms + eps));
    normed->row(r) = x.row(r) * (*inv_rms)(r);
    out->row(r) = normed->row(r).cwiseProduct(weight.transpose());
  }
}

// dL/dx of out = normed ⊙ weight given dL/dout, added into `dx`; dL/dweight
// added into `dweight`.
template <typename T>
void NormBackward(const Mat<T>& d_out, const Vector<T>& weight, const Vector<T>& inv_rms,
                  const Mat<T>& normed, Mat<T>* dx, Vector<T>* dweight) {
  const T n = static_cast<T>(normed.cols());
  for (int64_t r = 0; r < d_out.rows(); ++r) {
    dweight->noalias() += d_out.row(r).cwiseProduct(normed.row(r)).transpose();
    const auto dn = d_out.row(r).cwiseProduct(weight.transpose());
    const T dot = dn.dot(normed.row(r)) / n;
    dx->row(r) += (dn - normed.row(r) * dot) * inv_rms(r);
  }
}

// Rotates the pairs (i, i + d/2) of every head by +angle (forward) or −angle
// (the transpose, for the backward).
template <typename T>
void Rope(const RopeTable& rope, int64_t seq_len, int64_t heads, int64_t d, bool inverse,
          Mat<T>* x) {
  const int64_t half = d / 2;
  for (int64_t r = 0; r < x->rows(); ++r) {
    const int64_t pos = r % seq_len;
    T* row = x->row(r).data();
    for (int64_t h = 0; h < heads; ++h) {
      T* v = row + h * d;
      for (int64_t i = 0; i < half; ++i) {
        const T c = static_cast<T>(rope.cos(pos, i));
        const T s = inverse ? -static_cast<T>(rope.sin(pos, i)) : static_cast<T>(rope.sin(pos, i));
        const T a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

template <typename T>
T Sigmoid(T g) {
  return T(1) / (T(1) + std::exp(-g));
}

}  // namespace

template <typename T>
BlockParams<T> ParamsFromWeights(const BlockWeights& w) {
  BlockParams<T> p;
  p.input_norm = w.input_norm.cast<T>();
  p.post_norm = w.post_norm.cast<T>();
  const RowMatrixF* src[] = {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down};
  for (int i = 0; i < 7; ++i) *p.linear(i) = src[i]->cast<T>();
  p.q_bias = w.q_bias.cast<T>();
  p.k_bias = w.k_bias.cast<T>();
  p.v_bias = w.v_bias.cast<T>();
  return p;
}

BlockWeights WeightsFromParams(const BlockParams<float>& p) {
  BlockWeights w;
  w.input_norm = p.input_norm;
  w.post_norm = p.post_norm;
  RowMatrixF* dst[] = {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down};
  for (int i = 0; i < 7; ++i) *dst[i] = *p.linear(i);
  w.q_bias = p.q_bias;
  w.k_bias = p.k_bias;
  w.v_bias = p.v_bias;
  return w;
}

template <typename T>
double BlockLossAndGradient(const ModelConfig& c, const BlockParams<T>& w, const RopeTable& rope,
                            int64_t seq_len, const Mat<T>& x, const Mat<T>& target, Mat<T>* y,
                            BlockParams<T>* grad, Mat<T>* dx) {
  const int64_t tokens = x.rows(), d = c.head_dim;
  const int64_t group = c.num_heads / c.num_kv_heads;
  const T scale = T(1) / std::sqrt(static_cast<T>(d));
  // ---- forward, keeping what the backward needs
  Vector<T> r1, r2;
  Mat<T> n1, a, n2, b;
  NormForward(x, w.input_norm, c.rms_norm_eps, &r1, &n1, &a);
  Mat<T> q = a * w.q.transpose(), k = a * w.k.transpose(), v = a * w.v.transpose();
  if (c.attention_bias) {
    q.rowwise() += w.q_bias.transpose();
    k.rowwise() += w.k_bias.transpose();
    v.rowwise() += w.v_bias.transpose();
  }
  Rope(rope, seq_len, c.num_heads, d, false, &q);
  Rope(rope, seq_len, c.num_kv_heads, d, false, &k);
  const int64_t sequences = tokens / seq_len;
  std::vector<Mat<T>> probs(static_cast<size_t>(sequences * c.num_heads));
  Mat<T> attn(tokens, c.num_heads * d);
  for (int64_t s = 0; s < sequences; ++s) {
    const int64_t s0 = s * seq_len;
    for (int64_t h = 0; h < c.num_heads; ++h) {
      const int64_t kv = h / group;
      Mat<T>& p = probs[static_cast<size_t>(s * c.num_heads + h)];
      p.noalias() = (q.block(s0, h * d, seq_len, d) * k.block(s0, kv * d, seq_len, d).transpose());
      p *= scale;
      for (int64_t i = 0; i < seq_len; ++i) {
        const T mx = p.row(i).head(i + 1).maxCoeff();
        T sum = 0;
        for (int64_t j = 0; j <= i; ++j) {
          p(i, j) = std::exp(p(i, j) - mx);
          sum += p(i, j);
        }
        p.row(i).head(i + 1) /= sum;
        p.row(i).tail(seq_len - i - 1).setZero();
      }
      attn.block(s0, h * d, seq_len, d).noalias() = p * v.block(s0, kv * d, seq_len, d);
    }
  }
  Mat<T> x1 = x;
  x1.noalias() += attn * w.o.transpose();
  NormForward(x1, w.post_norm, c.rms_norm_eps, &r2, &n2, &b);
  const Mat<T> g = b * w.gate.transpose(), u = b * w.up.transpose();
  Mat<T> m(g.rows(), g.cols());
  for (int64_t i = 0; i < g.size(); ++i)
    m.data()[i] = g.data()[i] * Sigmoid(g.data()[i]) * u.data()[i];
  *y = x1;
  y->noalias() += m * w.down.transpose();
  const Mat<T> diff = *y - target;
  const double count = static_cast<double>(diff.size());
  const double loss = static_cast<double>(diff.squaredNorm()) / count;
  if (grad == nullptr && dx == nullptr) return loss;

  // ---- backward
  BlockParams<T> local;
  BlockParams<T>& gr = grad != nullptr ? *grad : local;
  const Mat<T> dy = diff * static_cast<T>(2.0 / count);
  gr.down.noalias() = dy.transpose() * m;
  const Mat<T> dm = dy * w.down;
  Mat<T> dg(g.rows(), g.cols()), du(g.rows(), g.cols());
  for (int64_t i = 0; i < g.size(); ++i) {
    const T gi = g.data()[i], sg = Sigmoid(gi);
    du.data()[i] = dm.data()[i] * gi * sg;
    dg.data()[i] = dm.data()[i] * u.data()[i] * sg * (T(1) + gi * (T(1) - sg));
  }
  gr.gate.noalias() = dg.transpose() * b;
  gr.up.noalias() = du.transpose() * b;
  Mat<T> db = dg * w.gate;
  db.noalias() += du * w.up;
  Mat<T> dx1 = dy;
  gr.post_norm = Vector<T>::Zero(w.post_norm.size());
  NormBackward(db, w.post_norm, r2, n2, &dx1, &gr.post_norm);
  gr.o.noalias() = dx1.transpose() * attn;
  const Mat<T> dattn = dx1 * w.o;
  Mat<T> dq = Mat<T>::Zero(q.rows(), q.cols()), dk = Mat<T>::Zero(k.rows(), k.cols());
  Mat<T> dv = Mat<T>::Zero(v.rows(), v.cols());
  Mat<T> dp, ds;
  for (int64_t s = 0; s < sequences; ++s) {
    const int64_t s0 = s * seq_len;
    for (int64_t h = 0; h < c.num_heads; ++h) {
      const int64_t kv = h / group;
      const Mat<T>& p = probs[static_cast<size_t>(s * c.num_heads + h)];
      const auto dout = dattn.block(s0, h * d, seq_len, d);
      dp.noalias() = dout * v.block(s0, kv * d, seq_len, d).transpose();
      dv.block(s0, kv * d, seq_len, d).noalias() += p.transpose() * dout;
      ds = p.cwiseProduct(dp);
      const Vector<T> rowdot = ds.rowwise().sum();
      ds.noalias() -= p.cwiseProduct(rowdot.replicate(1, seq_len));
      ds *= scale;
      dq.block(s0, h * d, seq_len, d).noalias() += ds * k.block(s0, kv * d, seq_len, d);
      dk.block(s0, kv * d, seq_len, d).noalias() += ds.transpose() * q.block(s0, h * d, seq_len, d);
    }
  }
  Rope(rope, seq_len, c.num_heads, d, true, &dq);
  Rope(rope, seq_len, c.num_kv_heads, d, true, &dk);
  if (c.attention_bias) {
    gr.q_bias = dq.colwise().sum().transpose();
    gr.k_bias = dk.colwise().sum().transpose();
    gr.v_bias = dv.colwise().sum().transpose();
  }
  gr.q.noalias() = dq.transpose() * a;
  gr.k.noalias() = dk.transpose() * a;
  gr.v.noalias() = dv.transpose() * a;
  Mat<T> da = dq * w.q;
  da.noalias() += dk * w.k;
  da.noalias() += dv * w.v;
  Mat<T> dx0 = dx1;
  gr.input_norm = Vector<T>::Zero(w.input_norm.size());
  NormBackward(da, w.input_norm, r1, n1, &dx0, &gr.input_norm);
  if (dx != nullptr) *dx = std::move(dx0);
  return loss;
}

template double BlockLossAndGradient<float>(const ModelConfig&, const BlockParams<float>&,
                                            const RopeTable&, int64_t, const Mat<float>&,
                                            const Mat<float>&, Mat<float>*, BlockParams<float>*,
                                            Mat<float>*);
template double BlockLossAndGradient<double>(const ModelConfig&, const BlockParams<double>&,
                                             const RopeTable&, int64_t, const Mat<double>&,
                                             const Mat<double>&, Mat<double>*, BlockParams<double>*,
                                             Mat<double>*);
template BlockParams<float> ParamsFromWeights<float>(const BlockWeights&);
template BlockParams<double> ParamsFromWeights<double>(const BlockWeights&);

}  // namespace caldera::model
