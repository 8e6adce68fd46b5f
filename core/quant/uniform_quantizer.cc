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

namespace {

// Clipping search: the grid of a group is shrunk by p = 1, 0.99, ..., 0.60
// (kShrinkSteps candidates) and the p whose round-to-nearest leaves the
// smallest Σ|error|^2.4 over the group is kept (the norm of the MSE observer
// GPTQ implementations use: between squared error, which over-weights the
// clipped outliers, and the 3-norm). stories260K, LDLQ uniform without the
// Hadamard transform: 3-bit perplexity 6.23 -> 5.68, 4-bit 4.02 -> 4.00.
constexpr int kShrinkSteps = 41;
constexpr float kErrorNorm = 2.4f;

// Σ|x − q(x)|^norm over `x` for a symmetric mid-rise grid of `levels` levels
// with step `s`, or an asymmetric one from `lo`.
float GridError(std::span<const float> x, int levels, bool symmetric, float s, float lo) {
  float err = 0;
  for (float v : x) {
    float q;
    if (symmetric) {
      const int k = std::clamp(static_cast<int>(std::floor(v / s)) + levels / 2, 0, levels - 1);
      q = (static_cast<float>(k - levels / 2) + 0.5f) * s;
    } else {
      const int k = std::clamp(static_cast<int>(std::lround((v - lo) / s)), 0, levels - 1);
      q = lo + static_cast<float>(k) * s;
    }
    err += std::pow(std::fabs(v - q), kErrorNorm);
  }
  return err;
}

}  // namespace

void UniformQuantizer::Prepare(const MatrixF& a) {
  const int levels = 1 << bits_;
  std::vector<float> x(static_cast<size_t>(group_));
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t g = 0; g < groups_; ++g) {
      const int64_t c0 = g * group_, c1 = std::min(cols_, c0 + group_);
      x.resize(static_cast<size_t>(c1 - c0));
      for (int64_t c = c0; c < c1; ++c) x[static_cast<size_t>(c - c0)] = a(r, c);
      float lo = x[0], hi = x[0], amax = 0;
      for (float v : x) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        amax = std::max(amax, std::fabs(v));
      }
      // The grid for shrink factor p, scales rounded to fp16 as stored.
      auto grid = [&](float p) -> std::pair<float, float> {
        float scale, min = 0;
        if (symmetric_) {
          // Mid-rise levels (k + 1/2) * scale, k in [-2^(b-1), 2^(b-1) - 1].
          scale = RoundToHalf(amax > 0 ? p * amax / (levels / 2) : 1.0f);
        } else {
          scale = RoundToHalf(hi > lo ? p * (hi - lo) / (levels - 1) : 1.0f);
          min = RoundToHalf(p * lo);
        }
        if (!(scale > 0)) scale = RoundToHalf(6.1e-5f);
        return {scale, min};
      };
      std::pair<float, float> best = grid(1.0f);
      float best_error = GridError(x, levels, symmetric_, best.first, best.second);
      for (int step = 1; step < kShrinkSteps; ++step) {
        const std::pair<float, float> cand = grid(1.0f - 0.01f * static_cast<float>(step));
        const float e = GridError(x, levels, symmetric_, cand.first, cand.second);
        if (e < best_error) {
          best_error = e;
          best = cand;
        }
      }
      const size_t i = static_cast<size_t>(r * groups_ + g);
      scales_[i] = best.first;
      mins_[i] = best.second;
    }
  }
}

absl::Status UniformQuantizer::SetScales(const std::vector<float>& scales) {
  if (!symmetric_ || scales.size() != static_cast<size_t>(rows_ * groups_)) {
    return absl::InvalidArgumentError("SetScales: a symmetric grid and rows x groups scales");
  }
  for (size_t i = 0; i < scales.size(); ++i) {
    const float s = RoundToHalf(scales[i]);
    if (!(s > 0) || !std::isfinite(s)) {
      return absl::InvalidArgumentError("SetScales: scales must be positive and finite in fp16");
    }
    scales_[i] = s;
  }
  return absl::OkStatus();
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

NamedTensors UniformQuantizer::Export() const {
  const std::vector<uint8_t> packed = PackCodes(codes_, bits_);
  NamedTensors out;
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

absl::StatusOr<MatrixF> UniformQuantizer::Decode(const NamedTensors& tensors) const {
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
