// The CPU backend: the reference. Each operation is exactly the Eigen (BLAS,
// LAPACK-free) call the decomposition made before the seam, so results are
// bit-identical to that code and do not depend on how the caller is split
// into steps. Dense products use the BLAS library's own threads.
#ifndef CALDERA_CORE_BACKEND_CPU_CPU_BACKEND_H_
#define CALDERA_CORE_BACKEND_CPU_CPU_BACKEND_H_

#include <optional>
#include <string>

#include "core/backend/backend.h"
#include "core/quant/e8p.h"

namespace caldera::backend {

class CpuBackend final : public ComputeBackend {
 public:
  CpuBackend() = default;

  std::string Name() const override { return "cpu"; }

  absl::Status Gemm(Op op_a, Op op_b, float alpha, ConstRefF a, ConstRefF b, Accumulate acc,
                    RefF c) override;
  absl::Status GemmD(Op op_a, Op op_b, const Eigen::Ref<const MatrixD>& a,
                     const Eigen::Ref<const MatrixD>& b, MatrixD* c) override;
  absl::Status SyrkLowerD(double alpha, const MatrixD& a, MatrixD* c) override;
  absl::Status TrmmRightLower(const MatrixF& a, const MatrixF& l, MatrixF* y) override;
  absl::Status TrsmRightLower(const MatrixF& l, MatrixF* x) override;
  absl::StatusOr<MatrixD> CholeskyLowerD(const MatrixD& h) override;
  absl::StatusOr<MatrixF> SpdSolve(const MatrixF& s, const MatrixF& b) override;
  absl::StatusOr<MatrixF> SpdSolveTransposed(const MatrixF& s, const MatrixF& b) override;
  absl::StatusOr<MatrixD> BlockLdlD(const MatrixD& h, int64_t block, MatrixD* d_chol) override;
  absl::Status ThinSvd(const MatrixF& y, MatrixF* u, Eigen::VectorXf* s, MatrixF* v) override;
  absl::StatusOr<MatrixF> OrthonormalBasis(const MatrixF& z, int64_t cols) override;
  absl::StatusOr<MatrixD> QrUpperD(const MatrixD& a) override;
  absl::Status RightSingularD(const MatrixD& z, Eigen::VectorXd* s, MatrixD* v) override;
  absl::Status HadamardColumns(const transform::HadamardTransform& t, bool transpose,
                               MatrixF* x) override;
  absl::Status HadamardRows(const transform::HadamardTransform& t, bool transpose,
                            MatrixF* x) override;
  absl::Status HadamardColumnsD(const transform::HadamardTransform& t, bool transpose,
                                MatrixD* x) override;
  absl::Status HadamardRowsD(const transform::HadamardTransform& t, bool transpose,
                             MatrixD* x) override;
  absl::StatusOr<MatrixF> QuantizeNearest(quant::MatrixQuantizer& q, const MatrixF& a) override;
  absl::Status LdlqBlockStep(quant::MatrixQuantizer& q, int64_t c0, ConstRefF target,
                             RefF out) override;
  absl::Status E8pNearest(const float* x, int64_t count, uint16_t* codes, float* out) override;
  absl::StatusOr<std::unique_ptr<BlockRunner>> PrepareBlock(
      const model::ModelConfig& config, const model::BlockWeights& weights, int64_t seq_len,
      model::BlockHessians* hessians) override;

 private:
  std::optional<quant::E8PCodebook> e8p_;  // made on first use
};

}  // namespace caldera::backend

#endif  // CALDERA_CORE_BACKEND_CPU_CPU_BACKEND_H_
