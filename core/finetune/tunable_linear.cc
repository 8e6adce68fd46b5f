#include "core/finetune/tunable_linear.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/quant/uniform_quantizer.h"
#include "core/tensor/half.h"

namespace caldera::finetune {
namespace {

const Tensor* FindTensor(const NamedTensors& t, absl::string_view name) {
  for (const auto& [n, v] : t) {
    if (n == name) return &v;
  }
  return nullptr;
}

absl::StatusOr<MatrixF> ToMatrix(const Tensor& t, int64_t rows, int64_t cols) {
  absl::StatusOr<Tensor> f = t.ConvertTo(DType::kF32);
  if (!f.ok()) return f.status();
  if (f->numel() != rows * cols) {
    return absl::InvalidArgumentError(
        absl::StrCat("scale tensor ", t.DebugString(), " does not hold ", rows, " x ", cols));
  }
  MatrixF m(rows, cols);
  std::span<const float> d = f->data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) m(r, c) = d[static_cast<size_t>(r * cols + c)];
  }
  return m;
}

// The quantized matrix's tensors (names relative to it) under `prefix`
// ("caldera.l.") of a record.
NamedTensors WithPrefix(NamedTensors tensors, const std::string& prefix) {
  for (auto& [name, t] : tensors) name = prefix + name;
  return tensors;
}

}  // namespace

absl::StatusOr<TunableLinear> TunableLinear::FromRecord(const NamedTensors& record) {
  TunableLinear t;
  for (const auto& [name, v] : record) t.record_.emplace_back(name, v.Clone());
  absl::StatusOr<decompose::DecodedRecord> d = decompose::DecodeRecord(record);
  if (!d.ok()) return d.status();
  t.decoded_ = *std::move(d);
  const format::MatrixRecordConfig& c = t.decoded_.config;
  t.rows_ = c.rows;
  t.cols_ = c.cols;
  t.global_scale_ = static_cast<float>(c.global_scale);
  const int64_t mp = c.padded_rows, np = c.padded_cols;
  // Q's scales: which tensor, and how they expand over Q.
  const Tensor* s = nullptr;
  int64_t scale_rows = 1, groups = 1;
  t.group_cols_ = np;
  if (c.q.kind == "e8p") {
    if ((s = FindTensor(record, "caldera.q.row_scales")) != nullptr) {
      t.scales_name_ = "caldera.q.row_scales";
      scale_rows = mp;
    } else if ((s = FindTensor(record, "caldera.q.scale")) != nullptr) {
      t.scales_name_ = "caldera.q.scale";
    }
  } else if (c.q.kind == "uniform" && c.q.symmetric) {
    if ((s = FindTensor(record, "caldera.q.scales")) != nullptr && s->rank() == 2 &&
        s->dim(0) == mp && c.q.group_size > 0 &&
        s->dim(1) == (np + c.q.group_size - 1) / c.q.group_size) {
      t.scales_name_ = "caldera.q.scales";
      scale_rows = mp;
      groups = s->dim(1);
      t.group_cols_ = c.q.group_size;
    } else {
      s = nullptr;
    }
  }
  if (s != nullptr) {
    absl::StatusOr<MatrixF> sm = ToMatrix(*s, scale_rows, groups);
    if (!sm.ok()) return sm.status();
    t.scales_ = *std::move(sm);
    t.scales_trainable_ = true;
  } else {
    t.scales_ = MatrixF::Ones(1, 1);
  }
  const MatrixF expanded = t.ExpandedScales();
  t.codes_ = MatrixF::Zero(mp, np);
  for (int64_t j = 0; j < np; ++j) {
    for (int64_t i = 0; i < mp; ++i) {
      const float e = expanded(i, j);
      t.codes_(i, j) = e != 0.0f ? t.decoded_.q(i, j) / e : 0.0f;
    }
  }
  t.lt_ = c.rank > 0 ? t.decoded_.lt : MatrixF(0, mp);
  t.r_ = c.rank > 0 ? t.decoded_.r : MatrixF(0, np);
  return t;
}

MatrixF TunableLinear::ExpandedScales() const {
  const int64_t mp = decoded_.config.padded_rows, np = decoded_.config.padded_cols;
  MatrixF e(mp, np);
  for (int64_t j = 0; j < np; ++j) {
    const int64_t g = scales_.cols() == 1 ? 0 : j / group_cols_;
    for (int64_t i = 0; i < mp; ++i) e(i, j) = scales_(scales_.rows() == 1 ? 0 : i, g);
  }
  return e;
}

MatrixF TunableLinear::EffectiveCodes() const {
  if (!rounding_) return codes_;
  MatrixF c = codes_;
  for (int64_t i = 0; i < c.size(); ++i) {
    c.data()[i] = std::clamp(c.data()[i] + std::round(offsets_.data()[i]), -code_max_, code_max_);
  }
  return c;
}

bool TunableLinear::EnableRounding() {
  const format::MatrixRecordConfig& c = decoded_.config;
  if (c.q.kind != "uniform" || !c.q.symmetric || !scales_trainable_) return false;
  offsets_ = MatrixF::Zero(codes_.rows(), codes_.cols());
  code_max_ = static_cast<float>(1 << (c.q.bits - 1)) - 0.5f;
  rounding_ = true;
  return true;
}

void TunableLinear::FreezeRounding() {
  if (!rounding_) return;
  const MatrixF c = EffectiveCodes();
  codes_changed_ = codes_changed_ || c != codes_;
  codes_ = c;
  rounding_ = false;
}

absl::StatusOr<MatrixF> TunableLinear::Weight() const {
  MatrixF wt = EffectiveCodes().cwiseProduct(ExpandedScales());
  if (lt_.rows() > 0) wt.noalias() += lt_.transpose() * r_;
  backend::CpuBackend cpu;
  absl::StatusOr<MatrixF> w = decoded_.transform->Inverse(cpu, wt);
  if (!w.ok()) return w.status();
  return MatrixF(*w * global_scale_);
}

std::vector<MatrixF*> TunableLinear::Parameters() {
  std::vector<MatrixF*> p;
  if (scales_trainable_) p.push_back(&scales_);
  if (lt_.rows() > 0 && !left_quantized_) p.push_back(&lt_);
  if (lt_.rows() > 0 && !factors_quantized_) p.push_back(&r_);
  return p;
}

std::vector<MatrixF*> TunableLinear::Gradients() {
  std::vector<MatrixF*> g;
  if (scales_trainable_) g.push_back(&d_scales_);
  if (lt_.rows() > 0 && !left_quantized_) g.push_back(&d_lt_);
  if (lt_.rows() > 0 && !factors_quantized_) g.push_back(&d_r_);
  return g;
}

absl::Status TunableLinear::Backward(const MatrixF& d_weight) {
  // Inverse is orthogonal up to the crop, so its adjoint is Forward (pad,
  // then transform): dL/dW̃ = g · Forward(dL/dŴ).
  backend::CpuBackend cpu;
  absl::StatusOr<MatrixF> dwt = decoded_.transform->Forward(cpu, d_weight);
  if (!dwt.ok()) return dwt.status();
  *dwt *= global_scale_;
  if (rounding_) d_offsets_ = dwt->cwiseProduct(ExpandedScales());
  if (scales_trainable_) {
    const MatrixF prod = dwt->cwiseProduct(EffectiveCodes());
    d_scales_ = MatrixF::Zero(scales_.rows(), scales_.cols());
    for (int64_t j = 0; j < prod.cols(); ++j) {
      const int64_t g = scales_.cols() == 1 ? 0 : j / group_cols_;
      if (scales_.rows() == 1) {
        d_scales_(0, g) += prod.col(j).sum();
      } else {
        d_scales_.col(g) += prod.col(j);
      }
    }
  }
  if (lt_.rows() > 0 && !factors_quantized_) {
    d_lt_.noalias() = r_ * dwt->transpose();
    d_r_.noalias() = lt_ * *dwt;
  }
  return absl::OkStatus();
}

absl::Status TunableLinear::QuantizeFactor(MatrixF* m, NamedTensors* out) {
  absl::StatusOr<quant::QuantizerSpec> spec = decompose::SpecFromRecord(decoded_.config.lr);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<std::unique_ptr<quant::MatrixQuantizer>> q =
      quant::MakeMatrixQuantizer(*spec, m->rows(), m->cols());
  if (!q.ok()) return q.status();
  *m = quant::QuantizeNearest(**q, *m);
  *out = (*q)->Export();
  return absl::OkStatus();
}

absl::Status TunableLinear::QuantizeLeft() {
  if (lt_.rows() == 0 || left_quantized_) return absl::OkStatus();
  if (absl::Status s = QuantizeFactor(&lt_, &l_export_); !s.ok()) return s;
  left_quantized_ = true;
  return absl::OkStatus();
}

absl::Status TunableLinear::QuantizeFactors() {
  if (lt_.rows() == 0 || factors_quantized_) return absl::OkStatus();
  if (absl::Status s = QuantizeLeft(); !s.ok()) return s;
  if (absl::Status s = QuantizeFactor(&r_, &r_export_); !s.ok()) return s;
  factors_quantized_ = true;
  return absl::OkStatus();
}

absl::StatusOr<NamedTensors> TunableLinear::Export() {
  if (absl::Status s = QuantizeFactors(); !s.ok()) return s;
  FreezeRounding();
  // Changed codes: Q re-encoded by its own quantizer with the trained scales.
  NamedTensors q_export;
  if (codes_changed_) {
    absl::StatusOr<quant::QuantizerSpec> spec = decompose::SpecFromRecord(decoded_.config.q);
    if (!spec.ok()) return spec.status();
    quant::UniformQuantizer uq(*spec, codes_.rows(), codes_.cols());
    std::vector<float> scales(static_cast<size_t>(scales_.size()));
    for (int64_t i = 0; i < scales_.rows(); ++i) {
      for (int64_t g = 0; g < scales_.cols(); ++g) {
        scales[static_cast<size_t>(i * scales_.cols() + g)] = scales_(i, g);
      }
    }
    if (absl::Status s = uq.SetScales(scales); !s.ok()) return s;
    // Scales as stored (fp16), so each value sits inside its code's cell.
    MatrixF s16 = ExpandedScales();
    for (int64_t i = 0; i < s16.size(); ++i) {
      s16.data()[i] = RoundToHalf(s16.data()[i]);
    }
    MatrixF values = codes_.cwiseProduct(s16), out(codes_.rows(), codes_.cols());
    uq.QuantizeBlock(0, values, out);
    q_export = WithPrefix(uq.Export(), "caldera.q.");
  }
  NamedTensors out;
  auto copy = [](const NamedTensors& from, const std::string& prefix) {
    NamedTensors to;
    for (const auto& [name, t] : from) to.emplace_back(name, t.Clone());
    return WithPrefix(std::move(to), prefix);
  };
  const NamedTensors l = copy(l_export_, "caldera.l.");
  const NamedTensors r = copy(r_export_, "caldera.r.");
  for (auto& [name, t] : record_) {
    Tensor value = t.Clone();
    if (scales_trainable_ && name == scales_name_) {
      absl::StatusOr<Tensor> f = Tensor::Zeros(DType::kF32, t.shape());
      if (!f.ok()) return f.status();
      std::span<float> d = f->mutable_data<float>();
      for (int64_t i = 0; i < scales_.rows(); ++i) {
        for (int64_t g = 0; g < scales_.cols(); ++g) {
          d[static_cast<size_t>(i * scales_.cols() + g)] = scales_(i, g);
        }
      }
      absl::StatusOr<Tensor> converted = f->ConvertTo(t.dtype());
      if (!converted.ok()) return converted.status();
      value = *std::move(converted);
    }
    const NamedTensors* replacement = name.rfind("caldera.l.", 0) == 0   ? &l
                                      : name.rfind("caldera.r.", 0) == 0 ? &r
                                      : codes_changed_ && name.rfind("caldera.q.", 0) == 0
                                          ? &q_export
                                          : nullptr;
    if (replacement != nullptr) {
      const Tensor* rt = FindTensor(*replacement, name);
      if (rt == nullptr || rt->shape() != t.shape() || rt->dtype() != t.dtype()) {
        return absl::InternalError(
            absl::StrCat("re-quantized factor ", name, " does not match the stored tensor"));
      }
      value = rt->Clone();
    }
    out.emplace_back(name, std::move(value));
  }
  return out;
}

}  // namespace caldera::finetune
