#include "core/quant/uniform_quantizer.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "core/quant/quantized_tensors.h"
#include "core/tensor/half.h"

namespace caldera::quant {

UniformQuantizer::UniformQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols)
    : MatrixQuantizer(spec, rows, cols),
      bits_(spec.bits),
      group_(std::min(spec.group_size, cols)),
      groups_((cols + std::min(spec.group_size, cols) - 1) / std::min(spec.group_size, cols)),
      symmetric_(spec.symmetric),
      scales_(static_cast<size_t>(rows * groups_)),
      mins_(static_cast<size_t>(rows * groups_)),
      codes_(static_cast<size_t>(rows * cols)) {}

void UniformQuantizer::Prepare(const MatrixF& a) {
  const int levels = 1 << bits_;
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t g = 0; g < groups_; ++g) {
      const int64_t c0 = g * group_, c1 = std::min(cols_, c0 + group_);
      float lo = a(r, c0), hi = a(r, c0), amax = 0;
      for (int64_t c = c0; c < c1; ++c) {
        lo = std::min(lo, a(r, c));
        hi = std::max(hi, a(r, c));
        amax = std::max(amax, std::fabs(a(r, c)));
      }
      const size_t i = static_cast<size_t>(r * groups_ + g);
      if (symmetric_) {
        // Mid-rise levels (k + 1/2) * scale, k in [-2^(b-1), 2^(b-1) - 1].
        scales_[i] = RoundToHalf(amax > 0 ? amax / (levels / 2) : 1.0f);
        if (!(scales_[i] > 0)) scales_[i] = RoundToHalf(6.1e-5f);
        mins_[i] = 0;
      } else {
        scales_[i] = RoundToHalf(hi > lo ? (hi - lo) / (levels - 1) : 1.0f);
        if (!(scales_[i] > 0)) scales_[i] = RoundToHalf(6.1e-5f);
        mins_[i] = RoundToHalf(lo);
      }
    }
  }
}

void UniformQuantizer::QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                                     Eigen::Ref<MatrixF> out) {
  const int levels = 1 << bits_;
  for (int64_t j = 0; j < target.cols(); ++j) {
    const int64_t c = c0 + j, g = c / group_;
    for (int64_t r = 0; r < target.rows(); ++r) {
      const size_t si = static_cast<size_t>(r * groups_ + g);
      const float s = scales_[si];
      int q;
      float v;
      if (symmetric_) {
        q = static_cast<int>(std::floor(target(r, j) / s)) + levels / 2;
        q = std::clamp(q, 0, levels - 1);
        v = (static_cast<float>(q - levels / 2) + 0.5f) * s;
      } else {
        q = static_cast<int>(std::lround((target(r, j) - mins_[si]) / s));
        q = std::clamp(q, 0, levels - 1);
        v = mins_[si] + static_cast<float>(q) * s;
      }
      codes_[static_cast<size_t>(r * cols_ + c)] = static_cast<uint8_t>(q);
      out(r, j) = v;
    }
  }
}

QuantizedTensors UniformQuantizer::Export() const {
  std::vector<uint8_t> packed(static_cast<size_t>((rows_ * cols_ * bits_ + 7) / 8), 0);
  uint64_t bit = 0;
  for (uint8_t code : codes_) {
    for (int b = 0; b < bits_; ++b, ++bit) {
      if ((code >> b) & 1) packed[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
  }
  QuantizedTensors out;
  out.emplace_back("codes", U8Tensor({static_cast<int64_t>(packed.size())}, packed));
  auto half = [&](const std::vector<float>& v) {
    Tensor t = *Tensor::Zeros(DType::kF16, {rows_, groups_});
    FloatToHalf(v, t.mutable_raw16());
    return t;
  };
  out.emplace_back("scales", half(scales_));
  if (!symmetric_) out.emplace_back("mins", half(mins_));
  return out;
}

absl::StatusOr<MatrixF> UniformQuantizer::Decode(const QuantizedTensors& tensors) const {
  absl::StatusOr<const Tensor*> codes =
      RequireTensor(tensors, spec_, "codes", DType::kU8, (rows_ * cols_ * bits_ + 7) / 8);
  absl::StatusOr<const Tensor*> scales =
      RequireTensor(tensors, spec_, "scales", DType::kF16, rows_ * groups_);
  if (!codes.ok()) return codes.status();
  if (!scales.ok()) return scales.status();
  const Tensor* mins = nullptr;
  if (!symmetric_) {
    absl::StatusOr<const Tensor*> m =
        RequireTensor(tensors, spec_, "mins", DType::kF16, rows_ * groups_);
    if (!m.ok()) return m.status();
    mins = *m;
  }
  const int levels = 1 << bits_;
  std::span<const uint8_t> packed = (*codes)->data<uint8_t>();
  MatrixF out(rows_, cols_);
  uint64_t bit = 0;
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t c = 0; c < cols_; ++c) {
      int q = 0;
      for (int b = 0; b < bits_; ++b, ++bit) q |= ((packed[bit / 8] >> (bit % 8)) & 1) << b;
      const int64_t gi = r * groups_ + c / group_;
      const float s = HalfToFloat((*scales)->raw16()[gi]);
      out(r, c) = symmetric_ ? (static_cast<float>(q - levels / 2) + 0.5f) * s
                             : HalfToFloat(mins->raw16()[gi]) + static_cast<float>(q) * s;
    }
  }
  return out;
}

}  // namespace caldera::quant
