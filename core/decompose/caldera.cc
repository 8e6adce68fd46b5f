#include "core/decompose/caldera.h"

#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/decompose/caldera_solver.h"
#include "core/decompose/two_sided.h"
#include "core/format/matrix_record.h"
#include "core/util/bounded_quote.h"

namespace caldera::decompose {
namespace {

using quant::MatrixF;
using quant::QuantizerSpec;

absl::Status Validate(const MatrixF& w, const Eigen::MatrixXd& h, const DecomposeOptions& o) {
  const int64_t m = w.rows(), n = w.cols();
  if (m == 0 || n == 0) return absl::InvalidArgumentError("the weight matrix is empty");
  if (!w.allFinite()) {
    return absl::InvalidArgumentError("the weight matrix has non-finite values (NaN or Inf)");
  }
  if (h.rows() != n || h.cols() != n) {
    return absl::InvalidArgumentError(absl::StrCat("the Hessian is ", h.rows(), "x", h.cols(),
                                                   " but the weight has ", n,
                                                   " columns; it must be ", n, "x", n));
  }
  if (!h.allFinite()) return absl::InvalidArgumentError("the Hessian has non-finite values");
  double asym2 = 0;              // |H - Hᵀ|², without an n × n temporary, in tiles
  constexpr int64_t kTile = 64;  // two 64 × 64 double tiles stay in L1/L2
  for (int64_t j0 = 0; j0 < n; j0 += kTile) {
    for (int64_t i0 = j0; i0 < n; i0 += kTile) {
      for (int64_t j = j0; j < std::min(n, j0 + kTile); ++j) {
        for (int64_t i = std::max(i0, j + 1); i < std::min(n, i0 + kTile); ++i) {
          const double d = h(i, j) - h(j, i);
          asym2 += 2 * d * d;
        }
      }
    }
  }
  const double asym = std::sqrt(asym2);
  if (asym > 1e-5 * std::max(1e-30, h.norm())) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Hessian is not symmetric (|H - Hᵀ| / |H| = ", asym / h.norm(), ")"));
  }
  if (h.diagonal().minCoeff() < 0 || !(h.diagonal().mean() > 0)) {
    return absl::InvalidArgumentError(
        "the Hessian has a negative or all-zero diagonal; it is not a sum of x^T x");
  }
  if (o.method == Method::kCaldera && (o.rank < 1 || o.rank > std::min(m, n))) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", o.rank, " is out of range for a ", m,
                                                   "x", n, " matrix; use 1..", std::min(m, n)));
  }
  if (absl::Status s = quant::ValidateSpec(o.q_spec); !s.ok()) return s;
  if (o.q_spec.kind == QuantizerSpec::Kind::kFloat) {
    return absl::InvalidArgumentError(absl::StrCat("--q-bits ", o.q_spec.bits,
                                                   " is not a quantized format; use 2-4 (e8p) or "
                                                   "2-8 (uniform)"));
  }
  if (o.method == Method::kCaldera) {
    if (absl::Status s = quant::ValidateSpec(o.lr_spec); !s.ok()) return s;
  }
  if (o.iters < 1 || o.lplr_iters < 1) {
    return absl::InvalidArgumentError("--iters and --lplr-iters must be at least 1");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<QuantizerSpec> SpecFromRecord(const format::RecordQuantizer& q) {
  QuantizerSpec s;
  s.kind = q.kind == "e8p"       ? QuantizerSpec::Kind::kLattice
           : q.kind == "uniform" ? QuantizerSpec::Kind::kUniform
           : q.kind == "int"     ? QuantizerSpec::Kind::kInt
           : q.kind == "q4k"     ? QuantizerSpec::Kind::kQ4k
                                 : QuantizerSpec::Kind::kFloat;
  s.bits = q.bits;
  s.group_size = q.group_size;
  s.symmetric = q.symmetric;
  s.row_scales = q.row_scales;
  if (absl::Status st = quant::ValidateSpec(s); !st.ok()) return st;
  return s;
}

absl::string_view MethodName(Method method) {
  switch (method) {
    case Method::kCaldera:
      return "caldera";
    case Method::kLdlq:
      return "ldlq";
    case Method::kRtn:
      return "rtn";
  }
  return "unknown";
}

absl::StatusOr<Method> ParseMethod(absl::string_view name) {
  for (Method m : {Method::kCaldera, Method::kLdlq, Method::kRtn}) {
    if (name == MethodName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--method ", BoundedQuote(name), " is unknown; use caldera, ldlq or rtn"));
}

double WeightedRelativeError(const MatrixF& w, const MatrixF& w_hat, const Eigen::MatrixXf& h) {
  const MatrixF e = w - w_hat;
  const double num = (e * h).cwiseProduct(e).cast<double>().sum();
  const double den = (w * h).cwiseProduct(w).cast<double>().sum();
  return den > 0 ? std::sqrt(std::max(0.0, num) / den) : 0.0;
}

absl::StatusOr<DecomposeResult> Decompose(const MatrixF& w, const Eigen::MatrixXd& h,
                                          const DecomposeOptions& o) {
  if (absl::Status s = Validate(w, h, o); !s.ok()) return s;
  backend::CpuBackend cpu;
  CalderaSolver solver(w, h, o, o.backend != nullptr ? *o.backend : cpu);
  return solver.Run();
}

absl::StatusOr<DecodedRecord> DecodeRecord(const NamedTensors& record) {
  const Tensor* config_t = nullptr;
  NamedTensors qe, le, re;
  for (const auto& [name, t] : record) {
    if (name == "caldera.config") config_t = &t;
    if (name.rfind("caldera.q.", 0) == 0) qe.emplace_back(name.substr(10), t.Clone());
    if (name.rfind("caldera.l.", 0) == 0) le.emplace_back(name.substr(10), t.Clone());
    if (name.rfind("caldera.r.", 0) == 0) re.emplace_back(name.substr(10), t.Clone());
  }
  if (config_t == nullptr) return absl::InvalidArgumentError("record has no caldera.config");
  absl::StatusOr<format::MatrixRecordConfig> c = format::RecordConfigFromTensor(*config_t, "");
  if (!c.ok()) return c.status();
  DecodedRecord out;
  out.config = *std::move(c);
  const format::MatrixRecordConfig& cf = out.config;
  const int64_t mp = cf.padded_rows, np = cf.padded_cols, k = cf.rank;
  absl::StatusOr<QuantizerSpec> q_spec = SpecFromRecord(cf.q);
  if (!q_spec.ok()) return q_spec.status();
  absl::StatusOr<MatrixF> q = quant::Dequantize(*q_spec, mp, np, qe);
  if (!q.ok()) return q.status();
  out.q = *std::move(q);
  if (k > 0) {
    absl::StatusOr<QuantizerSpec> lr_spec = SpecFromRecord(cf.lr);
    if (!lr_spec.ok()) return lr_spec.status();
    absl::StatusOr<MatrixF> lt = quant::Dequantize(*lr_spec, k, mp, le);
    absl::StatusOr<MatrixF> r = quant::Dequantize(*lr_spec, k, np, re);
    if (!lt.ok()) return lt.status();
    if (!r.ok()) return r.status();
    out.lt = *std::move(lt);
    out.r = *std::move(r);
  }
  // The record's own padding (it depends on the quantizers that wrote it).
  absl::StatusOr<TwoSided> t = TwoSided::Make(cf.rows, cf.cols, mp, np, cf.hadamard, cf.seed);
  if (!t.ok()) return t.status();
  out.transform.emplace(*std::move(t));
  return out;
}

absl::StatusOr<MatrixF> Reconstruct(const NamedTensors& record) {
  absl::StatusOr<DecodedRecord> d = DecodeRecord(record);
  if (!d.ok()) return d.status();
  MatrixF wt = std::move(d->q);
  if (d->config.rank > 0) {
    const MatrixF l = d->lt.transpose();
    wt.noalias() += l * d->r;
  }
  backend::CpuBackend cpu;
  absl::StatusOr<MatrixF> inv = d->transform->Inverse(cpu, wt);
  if (!inv.ok()) return inv.status();
  return MatrixF(*inv * static_cast<float>(d->config.global_scale));
}

absl::StatusOr<RecordFactors> ReconstructFactors(const NamedTensors& record) {
  absl::StatusOr<DecodedRecord> d = DecodeRecord(record);
  if (!d.ok()) return d.status();
  const float g = static_cast<float>(d->config.global_scale);
  RecordFactors out;
  out.method = d->config.method;
  backend::CpuBackend cpu;
  absl::StatusOr<MatrixF> q = d->transform->Inverse(cpu, d->q);
  if (!q.ok()) return q.status();
  out.q = MatrixF(*q * g);
  if (d->config.rank > 0) {
    absl::StatusOr<MatrixF> l = d->transform->InverseLeft(cpu, d->lt.transpose());
    absl::StatusOr<MatrixF> r = d->transform->InverseRight(cpu, d->r);
    if (!l.ok()) return l.status();
    if (!r.ok()) return r.status();
    out.l = MatrixF(*l * g);
    out.r = *std::move(r);
  } else {
    out.l = MatrixF(d->config.rows, 0);
    out.r = MatrixF(0, d->config.cols);
  }
  return out;
}

}  // namespace caldera::decompose
