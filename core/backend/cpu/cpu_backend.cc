#include "core/backend/cpu/cpu_backend.h"

#include <algorithm>
#include <memory>

namespace caldera::backend {
namespace {

// c (=|+=) α·a·b with the Eigen expression the callers used to write, so
// the BLAS call (and its rounding) is the same: α = 1 and −1 are the plain
// and subtracting forms, any other α scales the product.
template <typename A, typename B>
void Product(float alpha, const A& a, const B& b, Accumulate acc, RefF c) {
  if (acc == Accumulate::kAssign) {
    if (alpha == 1.0f) {
      c.noalias() = a * b;
    } else {
      c.noalias() = alpha * (a * b);
    }
  } else if (alpha == 1.0f) {
    c.noalias() += a * b;
  } else if (alpha == -1.0f) {
    c.noalias() -= a * b;
  } else {
    c.noalias() += alpha * (a * b);
  }
}

template <typename A, typename B>
void ProductD(const A& a, const B& b, MatrixD* c) {
  c->noalias() = a * b;
}

}  // namespace

absl::Status CpuBackend::Gemm(Op op_a, Op op_b, float alpha, ConstRefF a, ConstRefF b,
                              Accumulate acc, RefF c) {
  if (op_a == Op::kN && op_b == Op::kN) {
    Product(alpha, a, b, acc, c);
  } else if (op_a == Op::kN) {
    Product(alpha, a, b.transpose(), acc, c);
  } else if (op_b == Op::kN) {
    Product(alpha, a.transpose(), b, acc, c);
  } else {
    Product(alpha, a.transpose(), b.transpose(), acc, c);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::GemmD(Op op_a, Op op_b, const Eigen::Ref<const MatrixD>& a,
                               const Eigen::Ref<const MatrixD>& b, MatrixD* c) {
  if (op_a == Op::kN && op_b == Op::kN) {
    ProductD(a, b, c);
  } else if (op_a == Op::kN) {
    ProductD(a, b.transpose(), c);
  } else if (op_b == Op::kN) {
    ProductD(a.transpose(), b, c);
  } else {
    ProductD(a.transpose(), b.transpose(), c);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::SyrkLowerD(double alpha, const MatrixD& a, MatrixD* c) {
  c->selfadjointView<Eigen::Lower>().rankUpdate(a, alpha);
  return absl::OkStatus();
}

absl::Status CpuBackend::TrmmRightLower(const MatrixF& a, const MatrixF& l, MatrixF* y) {
  y->resize(a.rows(), l.cols());
  y->noalias() = a * l.triangularView<Eigen::Lower>();
  return absl::OkStatus();
}

absl::Status CpuBackend::TrsmRightLower(const MatrixF& l, MatrixF* x) {
  l.triangularView<Eigen::Lower>().solveInPlace<Eigen::OnTheRight>(*x);
  return absl::OkStatus();
}

absl::StatusOr<MatrixD> CpuBackend::CholeskyLowerD(const MatrixD& h) {
  Eigen::LLT<MatrixD> llt(h);
  if (llt.info() != Eigen::Success) {
    return absl::FailedPreconditionError("the matrix is not positive definite (Cholesky failed)");
  }
  return MatrixD(llt.matrixL());
}

absl::StatusOr<MatrixF> CpuBackend::SpdSolve(const MatrixF& s, const MatrixF& b) {
  return MatrixF(s.ldlt().solve(b));
}

absl::StatusOr<MatrixF> CpuBackend::SpdSolveTransposed(const MatrixF& s, const MatrixF& b) {
  // Solve<> under a transpose evaluates into its own plain object, which for
  // bᵀ is row-major: the triangular solves then run on rows (their rounding
  // is what the decomposition's results were made with).
  return MatrixF(s.ldlt().solve(b.transpose()).transpose());
}

absl::StatusOr<MatrixD> CpuBackend::BlockLdlD(const MatrixD& h, int64_t block, MatrixD* d_chol) {
  const int64_t n = h.rows();
  // In place: the lower Cholesky factor C overwrites the copy, then each block
  // column becomes C[:, J] · DL⁻¹ (DL its diagonal block), so only one n × n
  // double matrix is alive besides h.
  MatrixD l = h;
  Eigen::LLT<Eigen::Ref<MatrixD>> llt(l);
  if (llt.info() != Eigen::Success) {
    return absl::FailedPreconditionError("Hessian is not positive definite");
  }
  l.triangularView<Eigen::StrictlyUpper>().setZero();
  if (!l.allFinite()) return absl::FailedPreconditionError("Hessian is not positive definite");
  if (d_chol != nullptr) *d_chol = MatrixD::Zero(n, block);
  for (int64_t j0 = 0; j0 < n; j0 += block) {
    const int64_t b = std::min(block, n - j0);
    const MatrixD dl = l.block(j0, j0, b, b);
    if (d_chol != nullptr) d_chol->block(j0, 0, b, b) = dl;
    dl.triangularView<Eigen::Lower>().solveInPlace<Eigen::OnTheRight>(l.block(j0, j0, n - j0, b));
  }
  return l;
}

absl::Status CpuBackend::ThinSvd(const MatrixF& y, MatrixF* u, Eigen::VectorXf* s, MatrixF* v) {
  Eigen::BDCSVD<MatrixF> svd(y, Eigen::ComputeThinU | Eigen::ComputeThinV);
  *u = svd.matrixU();
  *s = svd.singularValues();
  *v = svd.matrixV();
  return absl::OkStatus();
}

absl::StatusOr<MatrixF> CpuBackend::OrthonormalBasis(const MatrixF& z, int64_t cols) {
  Eigen::HouseholderQR<MatrixF> qr(z);
  return MatrixF(qr.householderQ() * MatrixF::Identity(z.rows(), cols));
}

absl::StatusOr<MatrixD> CpuBackend::QrUpperD(const MatrixD& a) {
  Eigen::HouseholderQR<MatrixD> qr(a);
  return MatrixD(qr.matrixQR().topRows(a.cols()).triangularView<Eigen::Upper>().toDenseMatrix());
}

absl::Status CpuBackend::RightSingularD(const MatrixD& z, Eigen::VectorXd* s, MatrixD* v) {
  Eigen::JacobiSVD<MatrixD> svd(z, Eigen::ComputeThinV);
  *s = svd.singularValues();
  *v = svd.matrixV();
  return absl::OkStatus();
}

absl::Status CpuBackend::HadamardColumns(const transform::HadamardTransform& t, bool transpose,
                                         MatrixF* x) {
  t.ApplyToColumns(x, transpose);
  return absl::OkStatus();
}
absl::Status CpuBackend::HadamardRows(const transform::HadamardTransform& t, bool transpose,
                                      MatrixF* x) {
  t.ApplyToRows(x, transpose);
  return absl::OkStatus();
}
absl::Status CpuBackend::HadamardColumnsD(const transform::HadamardTransform& t, bool transpose,
                                          MatrixD* x) {
  t.ApplyToColumns(x, transpose);
  return absl::OkStatus();
}
absl::Status CpuBackend::HadamardRowsD(const transform::HadamardTransform& t, bool transpose,
                                       MatrixD* x) {
  t.ApplyToRows(x, transpose);
  return absl::OkStatus();
}

absl::StatusOr<MatrixF> CpuBackend::QuantizeNearest(quant::MatrixQuantizer& q, const MatrixF& a) {
  return quant::QuantizeNearest(q, a);
}

absl::Status CpuBackend::LdlqBlockStep(quant::MatrixQuantizer& q, int64_t c0, ConstRefF target,
                                       RefF out) {
  q.QuantizeBlock(c0, target, out);
  return absl::OkStatus();
}

absl::Status CpuBackend::E8pNearest(const float* x, int64_t count, uint16_t* codes, float* out) {
  if (!e8p_.has_value()) e8p_.emplace();
  e8p_->QuantizeBatch(x, count, codes, out);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BlockRunner>> CpuBackend::PrepareBlock(
    const model::ModelConfig& config, const model::BlockWeights& weights, int64_t seq_len,
    model::BlockHessians* hessians) {
  return model::MakeCpuBlockRunner(config, weights, seq_len, hessians);
}

}  // namespace caldera::backend
