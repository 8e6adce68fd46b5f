// LDLQ: adaptive rounding with linear feedback from the block LDL factorisation
// of the Hessian (QuIP's form of OPTQ/GPTQ, with 8-column blocks for vector
// codebooks). Minimises tr((A - Q) H (A - Q)ᵀ) greedily block by block, from the
// last block to the first.
#ifndef CALDERA_CORE_DECOMPOSE_LDLQ_H_
#define CALDERA_CORE_DECOMPOSE_LDLQ_H_

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/quant/quantizer.h"

namespace caldera::decompose {

struct LdlqOptions {
  int64_t block = 8;    // columns per LDL block (a multiple of the quantizer's block)
  int tune_sweeps = 0;  // block Gauss-Seidel passes after the greedy pass
  // GPTQ's "act order": quantise the columns in order of decreasing diag(H)
  // (the inputs with the most activation energy first, while the most
  // columns are left to absorb their rounding error). Only for quantizers
  // with 1-column blocks (uniform); the codes stay in the original column
  // order, so the stored record does not change shape or meaning.
  bool act_order = false;
  // Added to the diagonal, relative to its mean, if Cholesky fails; multiplied
  // by 10 on each further failure (at most 6 tries).
  double retry_damping = 0.01;
  // Where the factorization, the feedback products and the block steps run
  // (not owned; must outlive the call). Null: the CPU backend. The tune
  // sweeps run on the CPU.
  backend::ComputeBackend* backend = nullptr;
};

struct LdlqResult {
  quant::MatrixF q;           // dequantised values, m × n
  double extra_damping = 0;   // relative damping that had to be added
  double search_seconds = 0;  // wall time inside quantizer.QuantizeBlock
  // tr(E·H'·Eᵀ) for E = A − Q and H' = H + added_diagonal·I (the matrix the
  // factor is of), from the rounding residuals: with H' = L·D·Lᵀ and η the
  // difference between each block's target and its quantized value, E·L = η,
  // so tr(E·H'·Eᵀ) = Σ_J |η_J·C_J|² (D_J = C_J·C_Jᵀ): O(m·n·block), no
  // product with H. Negative when unknown (after tune sweeps).
  double factored_error = -1;
  double added_diagonal = 0;  // absolute value added to H's diagonal
};

// What LDLQ needs from H: its block LDL factor (after any extra damping). It
// depends on H only, so a caller quantising several matrices against the same
// H (every Q step of a decomposition) computes it once.
struct LdlqFactor {
  // With act_order: the processing order, order[j] = the original column at
  // position j (diag(H) ascending: LDLQ runs from the last position to the
  // first); l and d_chol are of H permuted so. Empty = the identity.
  std::vector<int64_t> order;
  Eigen::MatrixXf l;  // unit block-lower-triangular, n × n
  // The lower Cholesky factors C_J of D's diagonal blocks, stacked: n × block.
  Eigen::MatrixXf d_chol;
  double extra_damping = 0;   // relative damping that had to be added
  double added_diagonal = 0;  // the same as an absolute value on H's diagonal
};

// FAILED_PRECONDITION when H stays indefinite even with 1000x damping.
absl::StatusOr<LdlqFactor> FactorForLdlq(const Eigen::MatrixXd& h, const LdlqOptions& options);

// `a` is m × n with n a multiple of options.block; `h` is n × n symmetric
// positive (semi)definite. `quantizer` must be made for m × n; Prepare() is
// called here with `a`.
absl::StatusOr<LdlqResult> Ldlq(const quant::MatrixF& a, const Eigen::MatrixXd& h,
                                quant::MatrixQuantizer& quantizer, const LdlqOptions& options);

// The same with a factor from FactorForLdlq(h, options).
absl::StatusOr<LdlqResult> Ldlq(const quant::MatrixF& a, const Eigen::MatrixXd& h,
                                const LdlqFactor& factor, quant::MatrixQuantizer& quantizer,
                                const LdlqOptions& options);

// The unit block-lower-triangular L of H = L D Lᵀ (blocks of `block`), or
// FAILED_PRECONDITION when H is not positive definite. `d_chol`, when given,
// receives the lower Cholesky factors of D's diagonal blocks (n × block).
absl::StatusOr<Eigen::MatrixXd> BlockLdl(const Eigen::MatrixXd& h, int64_t block,
                                         Eigen::MatrixXd* d_chol = nullptr);

}  // namespace caldera::decompose

#endif  // CALDERA_CORE_DECOMPOSE_LDLQ_H_
