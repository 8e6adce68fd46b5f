// The Llama-family decoder block on CPU: RMSNorm, rotary embeddings (with the
// Llama-3 and linear scalings), grouped-query causal attention, SwiGLU MLP;
// optional q/k/v biases (Qwen2), optional RMSNorm of each q and k head before
// the rotary embedding (Qwen3), and a mixture-of-experts MLP (Mixtral,
// Qwen3-MoE: a dense router, top-k experts per token, each a SwiGLU MLP; the
// experts run in index order over the tokens routed to them, so the result is
// deterministic and does not depend on threads). Hidden states are row-major float32 matrices
// with one row per token; a batch is several sequences of equal length stacked.
//
// Matrix work is done by GEMMs over all tokens of the batch (Eigen on OpenBLAS),
// the Hessians by float32 SSYRK/SGEMM per batch accumulated in float64;
// attention materialises the scores of one head of one sequence at a time.
#ifndef CALDERA_CORE_MODEL_LLAMA_BLOCK_H_
#define CALDERA_CORE_MODEL_LLAMA_BLOCK_H_

#include <Eigen/Dense>
#include <cstdint>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/model_config.h"

namespace caldera::model {

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using VectorF = Eigen::VectorXf;

struct ExpertWeights {
  RowMatrixF gate, up, down;  // [moe_intermediate, hidden], same, [hidden, moe_intermediate]
};

struct BlockWeights {
  VectorF input_norm, post_norm;
  RowMatrixF q, k, v, o, gate, up, down;  // [out, in]; gate/up/down empty for a mixture
  VectorF q_bias, k_bias, v_bias;         // empty unless config.attention_bias
  VectorF q_norm, k_norm;                 // [head_dim]; empty unless config.qk_norm
  RowMatrixF router;                      // [num_experts, hidden]; empty unless config.is_moe()
  std::vector<ExpertWeights> experts;     // num_experts of them for a mixture
};

// The linear weight of BlockLinears(config)[i] inside `w` (q, ..., experts[e].down).
RowMatrixF* LinearOf(BlockWeights* w, const ModelConfig& config, size_t i);

// Reads block `layer` (linear weights through Checkpoint::ReadLinearWeight, so a
// compressed checkpoint is dequantised here), checking every shape.
absl::StatusOr<BlockWeights> LoadBlock(const Checkpoint& checkpoint, int64_t layer);

// cos/sin of the rotary embedding for positions [0, seq_len), [seq_len, head_dim/2].
struct RopeTable {
  RowMatrixF cos, sin;
};
RopeTable MakeRopeTable(const ModelConfig& config, int64_t seq_len);

// Second moments of the inputs of the block's linear layers, summed over tokens
// (float32 products per forward batch, summed in float64): H = sum of x^T x.
struct BlockHessians {
  // q/k/v share; gate/up share. For a mixture, gate_proj is the router's input
  // over every token and down_proj stays empty (NormalisedHessians fills it).
  Eigen::MatrixXd q_proj, o_proj, gate_proj, down_proj;
  int64_t tokens = 0;
  // A mixture's experts (empty for a dense block): the inputs of expert e's
  // gate/up and of its down, summed over the expert_tokens[e] tokens routed to
  // it (unweighted by the routing probability: each matrix is fitted to
  // reproduce its own output on the tokens it really sees).
  std::vector<Eigen::MatrixXd> expert_gate, expert_down;
  std::vector<int64_t> expert_tokens;
  // Accumulate with AccumulateLowerF64 instead (the float64 reference, half
  // the speed): for benchmarks and accuracy comparisons only.
  bool float64_reference = false;

  static BlockHessians Zeros(const ModelConfig& config);
  // Adds another (e.g. a shard's) sums.
  void Add(const BlockHessians& other);
  // Symmetrize()s every matrix (the experts' too), after the last forward.
  void SymmetrizeAll();
};

// Adds x^T x (x: tokens x n, float32) into the lower triangle of h (n x n,
// float64); call Symmetrize() when done. The product over x's rows is one
// float32 SSYRK/SGEMM (column panels of kAccumulatePanel, so the float32 scratch
// is n x kAccumulatePanel), added into float64: the float32 rounding is that of
// one call's dot products, and sums across calls are exact to float64. Callers
// pass chunks of whole sequences (a forward batch), so the error of a Hessian
// does not grow with the number of chunks (tests/unit/model/hessian_accuracy_test).
inline constexpr int64_t kAccumulatePanel = 1024;
void AccumulateLower(const RowMatrixF& x, Eigen::MatrixXd* h);
// The float64 reference of AccumulateLower (x cast to double, DSYRK): half the
// speed; for tests and benchmarks.
void AccumulateLowerF64(const RowMatrixF& x, Eigen::MatrixXd* h);
// Copies the lower triangle onto the upper one, in place.
void Symmetrize(Eigen::MatrixXd* h);

// Runs the block over `hidden` ([batch*seq_len, hidden_size], sequences stacked)
// in place. When `hessians` is not null, accumulates the four input moments
// (lower triangles; Symmetrize() them after the last call) and the token count.
void BlockForward(const ModelConfig& config, const BlockWeights& weights, const RopeTable& rope,
                  int64_t seq_len, RowMatrixF* hidden, BlockHessians* hessians);

// RMSNorm of each row: x / sqrt(mean(x^2) + eps) * weight.
void RmsNorm(const RowMatrixF& x, const VectorF& weight, double eps, RowMatrixF* out);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_LLAMA_BLOCK_H_
