// The decoder block's backward pass (the forward of llama_block.h, written
// again in plain Eigen over a scalar type so that float runs the fine-tuning
// and double checks the gradients against finite differences): RMSNorm, q/k/v
// linears with optional biases, RoPE, grouped-query causal attention with
// softmax, the o linear, RMSNorm, SwiGLU and the down linear, both residuals.
//
// The loss is the mean squared error of the block's output against a target,
// mean over every element: L = Σ (y − t)² / (tokens · hidden). Deterministic
// for given inputs (no threads of its own; Eigen's products).
#ifndef CALDERA_CORE_MODEL_LLAMA_BLOCK_GRAD_H_
#define CALDERA_CORE_MODEL_LLAMA_BLOCK_GRAD_H_

#include <Eigen/Dense>
#include <cstdint>

#include "core/model/llama_block.h"
#include "core/model/model_config.h"

namespace caldera::model {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// A block's parameters (the same names and shapes as BlockWeights), or their
// gradients.
template <typename T>
struct BlockParams {
  Vector<T> input_norm, post_norm;
  RowMatrix<T> q, k, v, o, gate, up, down;  // [out, in]
  Vector<T> q_bias, k_bias, v_bias;         // empty unless config.attention_bias

  // The seven linears in kLinearModules order (q, k, v, o, gate, up, down).
  RowMatrix<T>* linear(int i) {
    RowMatrix<T>* all[] = {&q, &k, &v, &o, &gate, &up, &down};
    return all[i];
  }
  const RowMatrix<T>* linear(int i) const {
    const RowMatrix<T>* all[] = {&q, &k, &v, &o, &gate, &up, &down};
    return all[i];
  }
};

template <typename T>
BlockParams<T> ParamsFromWeights(const BlockWeights& w);
BlockWeights WeightsFromParams(const BlockParams<float>& p);

// Runs the block over `x` ([sequences · seq_len, hidden], sequences stacked)
// into `y` and returns the mean squared error against `target` (same shape).
// When `grad` is not null it receives dL/d(every parameter) (resized; biases
// only with config.attention_bias), and when `dx` is not null dL/dx.
template <typename T>
double BlockLossAndGradient(const ModelConfig& config, const BlockParams<T>& w,
                            const RopeTable& rope, int64_t seq_len, const RowMatrix<T>& x,
                            const RowMatrix<T>& target, RowMatrix<T>* y, BlockParams<T>* grad,
                            RowMatrix<T>* dx);

extern template double BlockLossAndGradient<float>(const ModelConfig&, const BlockParams<float>&,
                                                   const RopeTable&, int64_t,
                                                   const RowMatrix<float>&, const RowMatrix<float>&,
                                                   RowMatrix<float>*, BlockParams<float>*,
                                                   RowMatrix<float>*);
extern template double BlockLossAndGradient<double>(const ModelConfig&, const BlockParams<double>&,
                                                    const RopeTable&, int64_t,
                                                    const RowMatrix<double>&,
                                                    const RowMatrix<double>&, RowMatrix<double>*,
                                                    BlockParams<double>*, RowMatrix<double>*);
extern template BlockParams<float> ParamsFromWeights<float>(const BlockWeights&);
extern template BlockParams<double> ParamsFromWeights<double>(const BlockWeights&);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_LLAMA_BLOCK_GRAD_H_
