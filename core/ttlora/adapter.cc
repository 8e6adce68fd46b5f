#include "core/ttlora/adapter.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/ttlora/weighted_fit.h"
#include "core/util/bounded_quote.h"
#include "core/util/splitmix64.h"

namespace caldera::ttlora {
namespace {

double WeightedError(const Eigen::MatrixXd& e, const Eigen::MatrixXd& h) {
  return (e * h).cwiseProduct(e).sum();
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> FactorizeDim(int64_t d, int count) {
  if (d < 1) return absl::InvalidArgumentError(absl::StrCat("cannot factor dimension ", d));
  std::vector<int64_t> f;
  int64_t rest = d;
  for (int64_t p = 2; p * p <= rest; ++p) {
    while (rest % p == 0) {
      f.push_back(p);
      rest /= p;
    }
  }
  if (rest > 1) f.push_back(rest);
  if (f.empty()) f.push_back(1);
  if (count <= 0) {
    count = static_cast<int>(
        std::clamp<double>(std::round(std::log2(static_cast<double>(d)) / 2), 1, 6));
  }
  while (static_cast<int>(f.size()) > count) {
    std::sort(f.begin(), f.end());
    f[1] *= f[0];
    f.erase(f.begin());
  }
  std::sort(f.rbegin(), f.rend());
  return f;
}

absl::StatusOr<AdapterShape> DefaultShape(int64_t d_out, int64_t d_in, int count) {
  absl::StatusOr<std::vector<int64_t>> in = FactorizeDim(d_in, count);
  absl::StatusOr<std::vector<int64_t>> out = FactorizeDim(d_out, count);
  if (!in.ok()) return in.status();
  if (!out.ok()) return out.status();
  AdapterShape s;
  s.in_factors = *in;                                // largest first
  s.out_factors.assign(out->rbegin(), out->rend());  // largest last
  return s;
}

absl::StatusOr<AdapterShape> ParseShape(absl::string_view spec, int64_t d_out, int64_t d_in) {
  std::vector<std::string> sides = absl::StrSplit(spec, ':');
  if (sides.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ttlora-shape '", spec,
                     "' must be m1,m2,...:n1,n2,... (input factors : output factors)"));
  }
  AdapterShape s;
  for (int side = 0; side < 2; ++side) {
    std::vector<int64_t>& out = side == 0 ? s.in_factors : s.out_factors;
    int64_t product = 1;
    for (absl::string_view part : absl::StrSplit(sides[side], ',')) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(part, &v) || v < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("--ttlora-shape '", spec, "': '", part, "' is not a positive integer"));
      }
      out.push_back(v);
      product *= v;
    }
    const int64_t want = side == 0 ? d_in : d_out;
    if (product != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ttlora-shape '", spec, "': ", side == 0 ? "input" : "output", " factors multiply to ",
          product, " but the matrix has ", want, side == 0 ? " columns" : " rows"));
    }
  }
  return s;
}

std::string ShapeSpec(const AdapterShape& s) {
  return absl::StrCat(absl::StrJoin(s.in_factors, ","), ":", absl::StrJoin(s.out_factors, ","));
}

Eigen::MatrixXd Adapter::InputFactor() const {
  const size_t p = shape.in_factors.size();
  CoreMatrix acc = CoreMatrix::Ones(1, 1);
  for (size_t k = 0; k < p; ++k) {
    const int64_t rows = acc.rows(), s = tt.shape[k], rk = tt.ranks[k + 1];
    Eigen::Map<const CoreMatrix> g(tt.cores[k].data(), tt.ranks[k], s * rk);
    CoreMatrix next = acc * g;
    acc = Eigen::Map<CoreMatrix>(next.data(), rows * s, rk);
  }
  return acc;
}

Eigen::MatrixXd Adapter::OutputFactor() const {
  const size_t p = shape.in_factors.size(), d = tt.shape.size();
  CoreMatrix acc = CoreMatrix::Ones(1, 1);  // r_d × cols
  for (size_t k = d; k-- > p;) {
    const int64_t cols = acc.cols(), s = tt.shape[k], rk1 = tt.ranks[k];
    Eigen::Map<const CoreMatrix> g(tt.cores[k].data(), rk1 * s, tt.ranks[k + 1]);
    CoreMatrix next = g * acc;  // (r_{k-1}·s) × cols
    acc = Eigen::Map<CoreMatrix>(next.data(), rk1, s * cols);
  }
  return acc;
}

Eigen::MatrixXf Adapter::Apply(const Eigen::MatrixXf& x) const {
  const Eigen::MatrixXf a = InputFactor().cast<float>();
  const Eigen::MatrixXf b = (OutputFactor() * alpha).cast<float>();
  return (x * a) * b;
}

Eigen::MatrixXd Adapter::Materialize() const {
  return alpha * (InputFactor() * OutputFactor()).transpose();
}

std::vector<std::pair<std::string, Tensor>> Adapter::ExportCores() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t k = 0; k < tt.cores.size(); ++k) {
    Tensor t = *Tensor::Zeros(DType::kF32, {tt.ranks[k], tt.shape[k], tt.ranks[k + 1]});
    std::span<float> d = t.mutable_data<float>();
    for (int64_t i = 0; i < tt.cores[k].size(); ++i)
      d[i] = static_cast<float>(tt.cores[k].data()[i]);
    out.emplace_back(absl::StrCat("core.", k), std::move(t));
  }
  return out;
}

absl::string_view InitModeName(InitMode mode) {
  switch (mode) {
    case InitMode::kZero:
      return "zero";
    case InitMode::kResidual:
      return "residual";
  }
  return "unknown";
}

absl::StatusOr<InitMode> ParseInitMode(absl::string_view name) {
  for (InitMode m : {InitMode::kZero, InitMode::kResidual}) {
    if (name == InitModeName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--ttlora-init ", BoundedQuote(name), " is unknown; use zero or residual"));
}

absl::StatusOr<InitResult> InitializeAdapter(const Eigen::MatrixXf& w, const Eigen::MatrixXf& w_hat,
                                             const Eigen::MatrixXf& h, const AdapterShape& shape,
                                             int64_t rank, double alpha, InitMode mode,
                                             uint64_t seed) {
  const int64_t d_out = w.rows(), d_in = w.cols();
  if (rank < 1)
    return absl::InvalidArgumentError(absl::StrCat("--ttlora-rank ", rank, " must be >= 1"));
  if (!(alpha > 0)) return absl::InvalidArgumentError("TT-LoRA alpha must be positive");
  int64_t pin = 1, pout = 1;
  for (int64_t v : shape.in_factors) pin *= v;
  for (int64_t v : shape.out_factors) pout *= v;
  if (pin != d_in || pout != d_out) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TT-LoRA shape ", ShapeSpec(shape), " does not match a ", d_out, "x", d_in, " matrix"));
  }
  std::vector<int64_t> dims = shape.in_factors;
  dims.insert(dims.end(), shape.out_factors.begin(), shape.out_factors.end());
  const size_t d = dims.size();
  // Caps r, clipped to what each bond can carry.
  std::vector<int64_t> caps(d - 1);
  int64_t left = 1;
  for (size_t k = 0; k + 1 < d; ++k) {
    left *= dims[k];
    int64_t right = 1;
    for (size_t j = k + 1; j < d; ++j) right *= dims[j];
    caps[k] = std::min({rank, left, right});
  }
  const Eigen::MatrixXd e = (w - w_hat).cast<double>();
  const Eigen::MatrixXd hd = h.cast<double>();
  InitResult result;
  result.weighted_error_before = WeightedError(e, hd);
  result.adapter.shape = shape;
  result.adapter.alpha = alpha;

  auto zero_init = [&]() {
    SplitMix64 rng(seed);
    TensorTrain tt;
    tt.shape = dims;
    tt.ranks.assign(d + 1, 1);
    for (size_t k = 0; k + 1 < d; ++k) tt.ranks[k + 1] = caps[k];
    for (size_t k = 0; k < d; ++k) {
      CoreMatrix g(tt.ranks[k] * dims[k], tt.ranks[k + 1]);
      if (k + 1 == d) {
        g.setZero();
      } else {
        for (int64_t i = 0; i < g.size(); ++i) g.data()[i] = rng.Normal();
        Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
        g = qr.householderQ() * Eigen::MatrixXd::Identity(g.rows(), g.cols());
      }
      tt.cores.push_back(std::move(g));
    }
    result.adapter.tt = std::move(tt);
    result.adapter.init = std::string(InitModeName(InitMode::kZero));
    result.weighted_error_after = result.weighted_error_before;
    result.captured_energy = 0;
  };

  if (mode == InitMode::kZero) {
    zero_init();
    return result;
  }
  // Residual: TT-SVD of Eᵀ (d_in × d_out) in the adapter layout.
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> et = e.transpose();
  TtSvdOptions o;
  o.rank_caps = caps;
  absl::StatusOr<TensorTrain> tt =
      TtSvd(Eigen::Map<const Eigen::VectorXd>(et.data(), et.size()), dims, o);
  if (!tt.ok()) return tt.status();
  tt->cores.back() /= alpha;
  // The TT-SVD is optimal in the plain norm; refit the cores in the weighted
  // one, starting from it.
  absl::StatusOr<WeightedFitStats> fit =
      FitWeighted(e, hd, result.weighted_error_before, alpha, shape.in_factors.size(), {}, &*tt);
  if (!fit.ok()) return fit.status();
  result.adapter.tt = *std::move(tt);
  result.adapter.init = std::string(InitModeName(InitMode::kResidual));
  const Eigen::MatrixXd delta = result.adapter.Materialize();
  result.weighted_error_after = WeightedError(e - delta, hd);
  result.captured_energy = delta.squaredNorm() / std::max(1e-300, e.squaredNorm());
  if (!(result.weighted_error_after < result.weighted_error_before)) {
    result.fell_back_to_zero = true;
    zero_init();
  }
  return result;
}

format::TtloraAdapterFile AdapterFile(const std::vector<std::string>& base_modules,
                                      const Adapter& a) {
  format::TtloraAdapterFile file;
  file.config.base_modules = base_modules;
  file.config.in_factors = a.shape.in_factors;
  file.config.out_factors = a.shape.out_factors;
  file.config.ranks = a.tt.ranks;
  file.config.alpha = a.alpha;
  file.config.init = a.init;
  for (auto& [name, core] : a.ExportCores()) file.cores.push_back(std::move(core));
  return file;
}

absl::StatusOr<Adapter> AdapterFromFile(const format::TtloraAdapterFile& file) {
  const format::TtloraAdapterConfig& c = file.config;
  Adapter a;
  a.shape.in_factors = c.in_factors;
  a.shape.out_factors = c.out_factors;
  a.alpha = c.alpha;
  a.init = c.init;
  a.tt.shape = c.in_factors;
  a.tt.shape.insert(a.tt.shape.end(), c.out_factors.begin(), c.out_factors.end());
  a.tt.ranks = c.ranks;
  if (file.cores.size() != a.tt.shape.size() || a.tt.ranks.size() != a.tt.shape.size() + 1) {
    return absl::InvalidArgumentError(absl::StrCat("TT-LoRA adapter has ", file.cores.size(),
                                                   " cores for ", a.tt.shape.size(), " factors"));
  }
  for (size_t k = 0; k < file.cores.size(); ++k) {
    const Tensor& t = file.cores[k];
    const int64_t rows = a.tt.ranks[k] * a.tt.shape[k], cols = a.tt.ranks[k + 1];
    if (t.dtype() != DType::kF32 || t.numel() != rows * cols) {
      return absl::InvalidArgumentError(
          absl::StrCat("TT-LoRA core ", k, " does not match its config"));
    }
    std::span<const float> d = t.data<float>();
    CoreMatrix g(rows, cols);
    for (int64_t i = 0; i < g.size(); ++i) g.data()[i] = d[i];
    a.tt.cores.push_back(std::move(g));
  }
  return a;
}

absl::Status AddStoredAdapter(const SafetensorsReader& reader, absl::string_view prefix,
                              Tensor* weight) {
  if (reader.Find(format::TtloraCoreName(prefix, 0)) == nullptr) return absl::OkStatus();
  absl::StatusOr<format::TtloraAdapterFile> file = format::ReadTtloraAdapter(reader, prefix);
  if (absl::IsNotFound(file.status())) return absl::OkStatus();
  if (!file.ok()) return file.status();
  absl::StatusOr<Adapter> a = AdapterFromFile(*file);
  if (!a.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": adapter of ", prefix, ": ", a.status().message()));
  }
  const int64_t rows = weight->shape().size() == 2 ? weight->shape()[0] : -1;
  const int64_t cols = weight->shape().size() == 2 ? weight->shape()[1] : -1;
  int64_t d_in = 1, d_out = 1;
  for (int64_t v : a->shape.in_factors) d_in *= v;
  for (int64_t v : a->shape.out_factors) d_out *= v;
  if (weight->dtype() != DType::kF32 || rows != d_out || cols != d_in) {
    return absl::InvalidArgumentError(absl::StrCat(reader.name(), ": the adapter of ", prefix,
                                                   " is ", d_out, "x", d_in,
                                                   " but its weight is not an F32 matrix of that "
                                                   "shape"));
  }
  const Eigen::MatrixXd delta = a->Materialize();
  std::span<float> w = weight->mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) w[r * cols + c] += static_cast<float>(delta(r, c));
  }
  return absl::OkStatus();
}

}  // namespace caldera::ttlora
