// The compute seam: the handful of dense operations the decomposition and
// the calibration forward (a decoder block over activations, with its
// Hessians) run through, so that a device is a folder behind one interface
// (ggml's backend idea, not a framework).
//
// Every operation takes and returns host (Eigen) matrices. A backend that
// computes elsewhere copies in and out itself; the CPU backend (cpu/) is the
// reference and runs exactly the Eigen/BLAS/LAPACK calls the code made before
// the seam existed, in the same order, so its results are bit-identical to
// them. Other backends (cuda/) are checked against it within tolerances,
// except for the nearest-point searches, which must return the same codes.
//
// Thread-safety: a backend object is used by one thread at a time (a CUDA
// backend owns one stream and its handles). Backends are not copyable.
#ifndef CALDERA_CORE_BACKEND_BACKEND_H_
#define CALDERA_CORE_BACKEND_BACKEND_H_

#include <Eigen/Dense>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/block_runner.h"
#include "core/model/model_config.h"
#include "core/quant/quantizer.h"
#include "core/transform/hadamard.h"

namespace caldera::backend {

using MatrixF = Eigen::MatrixXf;  // column-major
using MatrixD = Eigen::MatrixXd;
using RefF = Eigen::Ref<MatrixF>;
using ConstRefF = Eigen::Ref<const MatrixF>;

// op(X) for the products: X or Xᵀ.
enum class Op { kN, kT };

// How a product lands in c: c = α·op(a)·op(b) (kAssign, c already sized) or
// c += α·op(a)·op(b) (kAdd).
enum class Accumulate { kAssign, kAdd };

// A device's memory (bytes), as the device reports it now.
struct DeviceMemoryInfo {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};

// model::BlockRunner (core/model/block_runner.h): a decoder block prepared
// for repeated forwards, which a device backend keeps on the device.
using model::BlockRunner;

class ComputeBackend {
 public:
  ComputeBackend() = default;
  ComputeBackend(const ComputeBackend&) = delete;
  ComputeBackend& operator=(const ComputeBackend&) = delete;
  virtual ~ComputeBackend() = default;

  // "cpu", "cuda:0", ... (what --device names).
  virtual std::string Name() const = 0;

  // Free and total memory of the device this backend computes on;
  // UNIMPLEMENTED for a backend that computes in host memory (the CPU).
  virtual absl::StatusOr<DeviceMemoryInfo> DeviceMemory() {
    return absl::UnimplementedError(Name() + " computes in host memory");
  }

  // ---- Dense algebra (float unless the name says D). Shapes must agree; c
  // is sized by the caller. Errors: the device call that failed, by name.
  virtual absl::Status Gemm(Op op_a, Op op_b, float alpha, ConstRefF a, ConstRefF b, Accumulate acc,
                            RefF c) = 0;
  // c = op(a)·op(b) in double (c resized).
  virtual absl::Status GemmD(Op op_a, Op op_b, const Eigen::Ref<const MatrixD>& a,
                             const Eigen::Ref<const MatrixD>& b, MatrixD* c) = 0;
  // Lower triangle of c += α·a·aᵀ (SYRK; the strict upper triangle is left
  // as it was).
  virtual absl::Status SyrkLowerD(double alpha, const MatrixD& a, MatrixD* c) = 0;
  // y = a·tril(l) (TRMM from the right; y resized).
  virtual absl::Status TrmmRightLower(const MatrixF& a, const MatrixF& l, MatrixF* y) = 0;
  // x ← x·tril(l)⁻¹ (TRSM from the right).
  virtual absl::Status TrsmRightLower(const MatrixF& l, MatrixF* x) = 0;
  // The lower Cholesky factor of a symmetric matrix; FAILED_PRECONDITION
  // when it is not positive definite.
  virtual absl::StatusOr<MatrixD> CholeskyLowerD(const MatrixD& h) = 0;
  // s⁻¹·b for a small symmetric positive (semi)definite s (k × k), by LDLᵀ.
  virtual absl::StatusOr<MatrixF> SpdSolve(const MatrixF& s, const MatrixF& b) = 0;
  // (s⁻¹·bᵀ)ᵀ = b·s⁻¹ for b m × k (the solve runs on the transposed,
  // row-major right-hand side, as Eigen evaluates it).
  virtual absl::StatusOr<MatrixF> SpdSolveTransposed(const MatrixF& s, const MatrixF& b) = 0;
  // The unit block-lower-triangular L of H = L·D·Lᵀ (blocks of `block`) and
  // the lower Cholesky factors of D's blocks stacked in d_chol (n × block)
  // when given; FAILED_PRECONDITION when H is not positive definite.
  virtual absl::StatusOr<MatrixD> BlockLdlD(const MatrixD& h, int64_t block, MatrixD* d_chol) = 0;

  // ---- Small factorizations (a few hundred columns at most).
  // Thin SVD y = u·diag(s)·vᵀ (all min(rows, cols) components, descending).
  virtual absl::Status ThinSvd(const MatrixF& y, MatrixF* u, Eigen::VectorXf* s, MatrixF* v) = 0;
  // The first `cols` columns of the orthogonal factor of a Householder QR of z.
  virtual absl::StatusOr<MatrixF> OrthonormalBasis(const MatrixF& z, int64_t cols) = 0;
  // The k × k upper-triangular R of a thin QR of a (m × k, m >= k).
  virtual absl::StatusOr<MatrixD> QrUpperD(const MatrixD& a) = 0;
  // Singular values and thin right singular vectors of a small matrix z.
  virtual absl::Status RightSingularD(const MatrixD& z, Eigen::VectorXd* s, MatrixD* v) = 0;

  // ---- Two-sided Hadamard transform, one side at a time (see
  // transform::HadamardTransform): columns of x ← Had·column (or Hadᵀ·),
  // rows of x ← row·Had (transpose) or row·Hadᵀ.
  virtual absl::Status HadamardColumns(const transform::HadamardTransform& t, bool transpose,
                                       MatrixF* x) = 0;
  virtual absl::Status HadamardRows(const transform::HadamardTransform& t, bool transpose,
                                    MatrixF* x) = 0;
  virtual absl::Status HadamardColumnsD(const transform::HadamardTransform& t, bool transpose,
                                        MatrixD* x) = 0;
  virtual absl::Status HadamardRowsD(const transform::HadamardTransform& t, bool transpose,
                                     MatrixD* x) = 0;

  // ---- Nearest-point searches.
  // The quantizer's round-to-nearest of a whole matrix (its codes kept in the
  // quantizer for Export).
  virtual absl::StatusOr<MatrixF> QuantizeNearest(quant::MatrixQuantizer& q, const MatrixF& a) = 0;
  // LDLQ's block step: quantize one block of target columns starting at
  // column c0 into out (the quantizer keeps the codes).
  virtual absl::Status LdlqBlockStep(quant::MatrixQuantizer& q, int64_t c0, ConstRefF target,
                                     RefF out) = 0;
  // The E8P codebook's nearest points of `count` 8-vectors (x and out
  // count × 8 row-major; codes[i] the 16-bit code of vector i). The CPU
  // backend runs E8PCodebook::QuantizeBatch; a device backend runs the full
  // search of kernels/e8p_search.h, whose codes equal QuantizeExhaustive's
  // (and QuantizeBatch's but for exact ties within float rounding).
  virtual absl::Status E8pNearest(const float* x, int64_t count, uint16_t* codes, float* out) = 0;

  // ---- The calibration forward.
  // `weights` of one block of `config` for sequences of seq_len tokens;
  // `hessians` (may be null: a forward only) receives the sums. The CPU
  // backend's runner is model::BlockForward itself (bit-identical); a device
  // backend's fails with RESOURCE_EXHAUSTED naming the bytes when the block
  // does not fit.
  virtual absl::StatusOr<std::unique_ptr<BlockRunner>> PrepareBlock(
      const model::ModelConfig& config, const model::BlockWeights& weights, int64_t seq_len,
      model::BlockHessians* hessians) = 0;
};

}  // namespace caldera::backend

#endif  // CALDERA_CORE_BACKEND_BACKEND_H_
