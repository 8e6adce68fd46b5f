#include "core/decompose/caldera_solver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/format/matrix_record.h"

namespace caldera::decompose {
namespace {

using backend::Accumulate;
using backend::Op;
using quant::MatrixF;
using quant::MatrixQuantizer;
using quant::QuantizerSpec;

float Rms(const MatrixF& a) {
  return static_cast<float>(
      std::sqrt(a.cast<double>().squaredNorm() / std::max<Eigen::Index>(1, a.size())));
}

NamedTensors CloneExports(const NamedTensors& e) {
  NamedTensors out;
  for (const auto& [n, t] : e) out.emplace_back(n, t.Clone());
  return out;
}

format::RecordQuantizer SpecRecord(const QuantizerSpec& s) {
  const char* kind = s.kind == QuantizerSpec::Kind::kLattice   ? "e8p"
                     : s.kind == QuantizerSpec::Kind::kUniform ? "uniform"
                     : s.kind == QuantizerSpec::Kind::kInt     ? "int"
                     : s.kind == QuantizerSpec::Kind::kQ4k     ? "q4k"
                                                               : "float";
  return {kind, s.bits, s.group_size, s.symmetric, s.row_scales};
}

}  // namespace

CalderaSolver::CalderaSolver(const MatrixF& w, const Eigen::MatrixXd& h, const DecomposeOptions& o,
                             backend::ComputeBackend& be)
    : w_(w), h_(h), o_(o), be_(be) {}

absl::StatusOr<DecomposeResult> CalderaSolver::Run() {
  if (absl::Status s = Prepare(); !s.ok()) return s;
  const int outer = with_lr_ ? o_.iters : 1;
  const std::vector<std::string> order = !with_lr_
                                             ? std::vector<std::string>{"q"}
                                             : (o_.lr_first ? std::vector<std::string>{"lr", "q"}
                                                            : std::vector<std::string>{"q", "lr"});
  for (int it = 0; it < outer; ++it) {
    for (const std::string& step : order) {
      if (o_.cancelled && o_.cancelled()) return absl::CancelledError("decomposition cancelled");
      if (o_.progress) o_.progress(step, static_cast<double>(it) / outer);
      absl::Status s = step == "q" ? QStep() : LrStep();
      if (!s.ok()) return s;
      if (s = Evaluate(step); !s.ok()) return s;
    }
  }
  if (o_.progress) o_.progress("done", 1.0);
  return Finish();
}

absl::Status CalderaSolver::Prepare() {
  m_ = w_.rows();
  n_ = w_.cols();
  with_lr_ = o_.method == Method::kCaldera;
  k_ = with_lr_ ? o_.rank : 0;
  have_lr_ = !with_lr_;
  best_err_ = std::numeric_limits<double>::infinity();

  g_ = Rms(w_);
  if (!(g_ > 0)) g_ = 1.0f;
  // An int Q's scales are the served ones (compressed-tensors stores no
  // global scale): Ŵ = Q + L·R with no factor, so the export is exact.
  if (o_.q_spec.kind == QuantizerSpec::Kind::kInt || o_.q_spec.kind == QuantizerSpec::Kind::kQ4k) {
    g_ = 1.0f;  // llama.cpp's Q4_K stores no global scale either
  }
  // Padding only where a quantizer needs it: Q's columns come in its blocks
  // (8 for E8P, 1 for uniform); L is quantized as Lᵀ (k × rows) and R (k ×
  // cols), so with L·R both sides come in the factors' blocks.
  const int64_t q_block = quant::BlockColsFor(o_.q_spec);
  const int64_t lr_block = with_lr_ ? quant::BlockColsFor(FactorSpec(o_)) : 1;
  absl::StatusOr<TwoSided> t = TwoSided::Make(
      m_, n_, PaddedSize(m_, o_.hadamard, lr_block),
      PaddedSize(n_, o_.hadamard, std::lcm(q_block, lr_block)), o_.hadamard, o_.seed);
  if (!t.ok()) return t.status();
  t_.emplace(*std::move(t));
  mp_ = t_->mp();
  np_ = t_->np();

  // Algorithm Hessian: H / mean(diag) + damping·I, padded with the identity.
  Eigen::MatrixXd hp = Eigen::MatrixXd::Identity(np_, np_);
  hp.topLeftCorner(n_, n_) = h_ / h_.diagonal().mean();
  hp.diagonal().array() += o_.damping;
  absl::StatusOr<Eigen::MatrixXd> ht = t_->ForwardHessian(be_, std::move(hp));
  if (!ht.ok()) return ht.status();
  ht_ = *std::move(ht);
  absl::StatusOr<MatrixF> wt = t_->Forward(be_, w_ / g_);
  if (!wt.ok()) return wt.status();
  wt_ = *std::move(wt);

  result_.padded_rows = mp_;
  result_.padded_cols = np_;
  result_.transform = t_->Describe();

  // Errors. With no padding both transforms are orthogonal, so the error of
  // Ŵ = g·T⁻¹(Q + L·R) under H equals g²·tr(E·T(H)·Eᵀ) for E = W̃ − Q − L·R,
  // and T(H) = mean·(ht − damping·I). E·ht is assembled from G = (W̃ − Q)·ht,
  // which the next LR step needs anyway: one m × n × n product per Q step
  // serves both, and the LR step's error costs O(mnk). With padding the error
  // is measured in the original basis (inverse transform, E·H).
  transformed_errors_ = mp_ == m_ && np_ == n_;
  h_mean_ = h_.diagonal().mean();
  // A plain LDLQ-only run measures its errors from LDLQ's residuals and never
  // needs ht in float.
  if (with_lr_) EnsureHf();
  if (!transformed_errors_) h_err_ = h_.cast<float>();

  if (with_lr_) {
    if (o_.progress) o_.progress("cholesky", 0.0);
    if (absl::Status s = EnsureCholesky(); !s.ok()) return s;
    m_chol_ = ht_chol_->cast<float>();
    if (!o_.hessian_downdate) ht_chol_.reset();  // only the downdate needs it in double
  }

  q_ = MatrixF::Zero(mp_, np_);
  l_ = MatrixF::Zero(mp_, k_);
  r_ = MatrixF::Zero(k_, np_);

  // tr(W·H·Wᵀ), once for every step's relative error.
  if (transformed_errors_ && with_lr_ && o_.lr_first) {
    // With Q = 0, G = W̃·ht: the first LR step's product gives the
    // denominator too, g²·mean·(<G, W̃> − damping·|W̃|²) as for the errors.
    if (absl::Status s = EnsureG(); !s.ok()) return s;
    const double w_h_w = g_q_.cwiseProduct(wt_).cast<double>().sum();
    const double w_w = wt_.cast<double>().squaredNorm();
    denominator_ = static_cast<double>(g_) * g_ * h_mean_ * (w_h_w - o_.damping * w_w);
  } else {
    result_.blas3_flops += 2.0 * m_ * n_ * n_;
    const MatrixF h_cast = transformed_errors_ ? MatrixF(h_.cast<float>()) : MatrixF();
    MatrixF wh(m_, n_);
    if (absl::Status s = be_.Gemm(Op::kN, Op::kN, 1.0f, w_, transformed_errors_ ? h_cast : h_err_,
                                  Accumulate::kAssign, wh);
        !s.ok())
      return s;
    denominator_ = wh.cwiseProduct(w_).cast<double>().sum();
  }

  // LDL blocks of 8 columns where they fit (a multiple of Q's block); a
  // uniform Q on an unpadded odd width uses the largest power of two dividing it.
  lo_.block = 8;
  while (np_ % lo_.block != 0 && lo_.block > q_block) lo_.block /= 2;
  lo_.tune_sweeps = o_.tune_sweeps;
  lo_.act_order = o_.act_order && q_block == 1;
  lo_.backend = &be_;
  return absl::OkStatus();
}

void CalderaSolver::EnsureHf() {
  if (hf_.size() == 0) hf_ = ht_.cast<float>();
}

absl::Status CalderaSolver::EnsureCholesky() {
  if (ht_chol_.has_value()) return absl::OkStatus();
  result_.blas3_flops += static_cast<double>(np_) * np_ * np_ / 3;
  absl::StatusOr<Eigen::MatrixXd> c = be_.CholeskyLowerD(ht_);
  if (!c.ok()) {
    if (absl::IsFailedPrecondition(c.status())) {
      return absl::FailedPreconditionError(
          "the damped Hessian is not positive definite (Cholesky failed)");
    }
    return c.status();
  }
  ht_chol_ = *std::move(c);
  return absl::OkStatus();
}

absl::Status CalderaSolver::EnsureG() {
  if (g_valid_) return absl::OkStatus();
  result_.blas3_flops += 2.0 * mp_ * np_ * np_;
  work_ = wt_ - q_;
  EnsureHf();
  g_q_.resize(mp_, np_);
  if (absl::Status s = be_.Gemm(Op::kN, Op::kN, 1.0f, work_, hf_, Accumulate::kAssign, g_q_);
      !s.ok())
    return s;
  g_valid_ = true;
  return absl::OkStatus();
}

double CalderaSolver::Relative(double num) const {
  return denominator_ > 0 ? std::sqrt(std::max(0.0, num) / denominator_) : 0.0;
}

absl::StatusOr<double> CalderaSolver::ErrorOfCurrent() {
  const double g = static_cast<double>(g_);
  if (transformed_errors_ && q_step_error_.has_value()) {
    const double e_e = (work_ - q_).cast<double>().squaredNorm();
    const double e_h_e = q_step_error_->first - q_step_error_->second * e_e;
    return Relative(g * g_ * h_mean_ * (e_h_e - o_.damping * e_e));
  }
  const double lr_products = 4.0 * mp_ * np_ * k_ + 2.0 * k_ * np_ * np_;
  if (!transformed_errors_) {
    result_.blas3_flops += 2.0 * m_ * n_ * n_ + lr_products / 2;
    MatrixF wt_hat = q_;
    if (k_ > 0) {
      if (absl::Status s = be_.Gemm(Op::kN, Op::kN, 1.0f, l_, r_, Accumulate::kAdd, wt_hat);
          !s.ok())
        return s;
    }
    absl::StatusOr<MatrixF> inv = t_->Inverse(be_, wt_hat);
    if (!inv.ok()) return inv.status();
    const MatrixF e = w_ - *inv * g_;
    MatrixF eh(m_, n_);
    if (absl::Status s = be_.Gemm(Op::kN, Op::kN, 1.0f, e, h_err_, Accumulate::kAssign, eh);
        !s.ok())
      return s;
    return Relative(eh.cwiseProduct(e).cast<double>().sum());
  }
  if (absl::Status s = EnsureG(); !s.ok()) return s;
  // E·ht = G − L·(R·ht), so tr(E·ht·Eᵀ) = <G, E> − <R·ht, Lᵀ·E>.
  MatrixF& e = work_;
  e = wt_ - q_;
  double e_h_e;
  if (k_ > 0) {
    result_.blas3_flops += lr_products;
    if (absl::Status s = be_.Gemm(Op::kN, Op::kN, -1.0f, l_, r_, Accumulate::kAdd, e); !s.ok())
      return s;
    MatrixF rh(k_, np_), lte(k_, np_);
    if (absl::Status s = be_.Gemm(Op::kN, Op::kN, 1.0f, r_, hf_, Accumulate::kAssign, rh); !s.ok())
      return s;
    if (absl::Status s = be_.Gemm(Op::kT, Op::kN, 1.0f, l_, e, Accumulate::kAssign, lte); !s.ok())
      return s;
    e_h_e = g_q_.cwiseProduct(e).cast<double>().sum() - rh.cwiseProduct(lte).cast<double>().sum();
  } else {
    e_h_e = g_q_.cwiseProduct(e).cast<double>().sum();
  }
  const double e_e = e.cast<double>().squaredNorm();
  const double num = g * g_ * h_mean_ * (e_h_e - o_.damping * e_e);
  return Relative(num);
}

absl::Status CalderaSolver::Evaluate(const std::string& step) {
  absl::StatusOr<double> err = ErrorOfCurrent();
  if (!err.ok()) return err.status();
  result_.history.emplace_back(step, *err);
  if (have_q_ && have_lr_ && *err < best_err_) {
    best_err_ = *err;
    best_q_t_ = q_;
    best_l_t_ = l_;
    best_r_t_ = r_;
    best_q_ = CloneExports(q_export_);
    if (k_ > 0) {
      best_l_ = CloneExports(lr_.l_export);
      best_r_ = CloneExports(lr_.r_export);
    }
    best_bits_ = q_bits_ + (k_ > 0 ? lr_.bits : 0);
    result_.best_step = static_cast<int>(result_.history.size()) - 1;
  }
  return absl::OkStatus();
}

absl::Status CalderaSolver::QStep() {
  q_step_error_.reset();
  MatrixF& a = work_;
  a = wt_;
  if (k_ > 0) {
    if (absl::Status s = be_.Gemm(Op::kN, Op::kN, -1.0f, l_, r_, Accumulate::kAdd, a); !s.ok())
      return s;
  }
  absl::StatusOr<std::unique_ptr<MatrixQuantizer>> qz =
      NewQuantizer(o_.q_spec, mp_, np_, o_.threads);
  if (!qz.ok()) return qz.status();
  const bool downdate = o_.hessian_downdate && k_ > 0 && have_lr_;
  if (o_.method == Method::kRtn) {
    absl::StatusOr<MatrixF> q = TimedQuantizeNearest(be_, **qz, a, &result_.search_seconds);
    if (!q.ok()) return q.status();
    q_ = *std::move(q);
  } else {
    absl::StatusOr<LdlqResult> res;
    // LDLQ's feedback products: m·n² in all.
    result_.blas3_flops += static_cast<double>(mp_) * np_ * np_;
    if (downdate) {
      if (absl::Status s = EnsureCholesky(); !s.ok()) return s;
      // R·M, M·V, the rank-k update and the new factor.
      result_.blas3_flops += 4.0 * k_ * np_ * np_ + static_cast<double>(np_) * np_ * np_ / 3;
      absl::StatusOr<Eigen::MatrixXd> hd = DowndatedHessian(be_, ht_, *ht_chol_, l_, r_);
      if (!hd.ok()) return hd.status();
      res = Ldlq(a, *hd, **qz, lo_);
    } else {
      if (!ht_factor_.has_value()) {
        result_.blas3_flops += static_cast<double>(np_) * np_ * np_ / 3;
        absl::StatusOr<LdlqFactor> f = FactorForLdlq(ht_, lo_);
        if (!f.ok()) return f.status();
        ht_factor_ = *std::move(f);
      }
      res = Ldlq(a, ht_, *ht_factor_, **qz, lo_);
    }
    if (!res.ok()) return res.status();
    q_ = std::move(res->q);
    if (!downdate && res->factored_error >= 0) {
      q_step_error_.emplace(res->factored_error, res->added_diagonal);
    }
    result_.search_seconds += res->search_seconds;
    result_.extra_damping = std::max(result_.extra_damping, res->extra_damping);
  }
  q_export_ = (*qz)->Export();
  q_bits_ = (*qz)->StorageBits();
  have_q_ = true;
  g_valid_ = false;
  return absl::OkStatus();
}

absl::Status CalderaSolver::LrStep() {
  if (g_valid_) {
    work_ = wt_ - q_;
  } else if (absl::Status s = EnsureG(); !s.ok()) {  // leaves W̃ − Q in work_
    return s;
  }
  absl::StatusOr<LrState> s = LowRankUpdate(be_, work_, g_q_, hf_, m_chol_, k_, o_,
                                            &result_.blas3_flops, &result_.search_seconds);
  if (!s.ok()) return s.status();
  lr_ = *std::move(s);
  l_ = lr_.l;
  r_ = lr_.r;
  have_lr_ = true;
  q_step_error_.reset();
  return absl::OkStatus();
}

absl::StatusOr<DecomposeResult> CalderaSolver::Finish() {
  {
    MatrixF wt_hat = std::move(best_q_t_);
    if (k_ > 0) {
      if (absl::Status s =
              be_.Gemm(Op::kN, Op::kN, 1.0f, best_l_t_, best_r_t_, Accumulate::kAdd, wt_hat);
          !s.ok())
        return s;
    }
    absl::StatusOr<MatrixF> inv = t_->Inverse(be_, wt_hat);
    if (!inv.ok()) return inv.status();
    result_.w_hat = *inv * g_;
  }
  DecomposeResult& result = result_;
  const int64_t m = m_, n = n_;
  result.weighted_relative_error = best_err_;
  result.relative_error = (w_ - result.w_hat).norm() / std::max(1e-30f, w_.norm());
  result.storage_bits = best_bits_ + 32 /* global scale */ + (o_.hadamard ? 64 : 0) /* seed */;
  result.bits_per_param = static_cast<double>(result.storage_bits) / static_cast<double>(m * n);

  format::MatrixRecordConfig config;
  config.method = std::string(MethodName(o_.method));
  config.rows = m;
  config.cols = n;
  config.padded_rows = mp_;
  config.padded_cols = np_;
  config.rank = k_;
  config.q = SpecRecord(o_.q_spec);
  config.lr = SpecRecord(FactorSpec(o_));
  config.hadamard = o_.hadamard;
  config.seed = o_.seed;
  config.update_order = !with_lr_ ? "q" : (o_.lr_first ? "lr,q" : "q,lr");
  config.hessian_downdate = o_.hessian_downdate && with_lr_;
  config.global_scale = g_;
  result.record.emplace_back(format::kRecordConfigName, format::RecordConfigTensor(config));
  for (auto& [name, tensor] : best_q_)
    result.record.emplace_back("caldera.q." + name, std::move(tensor));
  for (auto& [name, tensor] : best_l_)
    result.record.emplace_back("caldera.l." + name, std::move(tensor));
  for (auto& [name, tensor] : best_r_)
    result.record.emplace_back("caldera.r." + name, std::move(tensor));
  return std::move(result_);
}

}  // namespace caldera::decompose
