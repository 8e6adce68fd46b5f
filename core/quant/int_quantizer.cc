#include "core/quant/int_quantizer.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "core/quant/quantized_tensors.h"
#include "core/tensor/half.h"

namespace caldera::quant {

bool IntGridBits(int bits) { return bits == 4 || bits == 8; }

IntQuantizer::IntQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols)
    : MatrixQuantizer(spec, rows, cols),
      bits_(spec.bits),
      group_(std::min(spec.group_size, cols)),
      groups_((cols + std::min(spec.group_size, cols) - 1) / std::min(spec.group_size, cols)),
      scales_(static_cast<size_t>(rows * groups_)),
      codes_(static_cast<size_t>(rows * cols)) {}

namespace {

// As UniformQuantizer's clipping search (uniform_quantizer.cc).
constexpr int kShrinkSteps = 41;
constexpr float kErrorNorm = 2.4f;

// The nearest level q in [-half, half - 1] of v on the grid of step s.
int Level(float v, float s, int half) {
  return std::clamp(static_cast<int>(std::nearbyint(v / s)), -half, half - 1);
}

float GridError(std::span<const float> x, int half, float s) {
  float err = 0;
  for (float v : x) {
    err += std::pow(std::fabs(v - static_cast<float>(Level(v, s, half)) * s), kErrorNorm);
  }
  return err;
}

}  // namespace

void IntQuantizer::Prepare(const MatrixF& a) {
  const int half = 1 << (bits_ - 1);
  std::vector<float> x(static_cast<size_t>(group_));
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t g = 0; g < groups_; ++g) {
      const int64_t c0 = g * group_, c1 = std::min(cols_, c0 + group_);
      x.resize(static_cast<size_t>(c1 - c0));
      float amax = 0;
      for (int64_t c = c0; c < c1; ++c) {
        x[static_cast<size_t>(c - c0)] = a(r, c);
        amax = std::max(amax, std::fabs(a(r, c)));
      }
      // Levels -half..half-1: amax maps to half - 1/2 (the min-max scale of
      // llm-compressor's symmetric observer), shrunk by p.
      auto grid = [&](float p) {
        float s = RoundToHalf(amax > 0 ? p * amax / (static_cast<float>(half) - 0.5f) : 1.0f);
        if (!(s > 0)) s = RoundToHalf(6.1e-5f);
        return s;
      };
      float best = grid(1.0f);
      float best_error = GridError(x, half, best);
      for (int step = 1; step < kShrinkSteps; ++step) {
        const float s = grid(1.0f - 0.01f * static_cast<float>(step));
        const float e = GridError(x, half, s);
        if (e < best_error) {
          best_error = e;
          best = s;
        }
      }
      scales_[static_cast<size_t>(r * groups_ + g)] = best;
    }
  }
}

void IntQuantizer::QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                                 Eigen::Ref<MatrixF> out) {
  const int half = 1 << (bits_ - 1);
  for (int64_t j = 0; j < target.cols(); ++j) {
    const int64_t c = c0 + j, g = c / group_;
    for (int64_t r = 0; r < target.rows(); ++r) {
      const float s = scales_[static_cast<size_t>(r * groups_ + g)];
      const int q = Level(target(r, j), s, half);
      codes_[static_cast<size_t>(r * cols_ + c)] = static_cast<uint8_t>(q + half);
      out(r, j) = static_cast<float>(q) * s;
    }
  }
}

NamedTensors IntQuantizer::Export() const {
  const std::vector<uint8_t> packed = PackCodes(codes_, bits_);
  NamedTensors out;
  out.emplace_back("codes", U8Tensor({static_cast<int64_t>(packed.size())}, packed));
  Tensor scales = *Tensor::Zeros(DType::kF16, {rows_, groups_});
  FloatToHalf(scales_, scales.mutable_raw16());
  out.emplace_back("scales", std::move(scales));
  return out;
}

absl::StatusOr<MatrixF> IntQuantizer::Decode(const NamedTensors& tensors) const {
  absl::StatusOr<const Tensor*> codes =
      RequireTensor(tensors, spec_, "codes", DType::kU8, (rows_ * cols_ * bits_ + 7) / 8);
  absl::StatusOr<const Tensor*> scales =
      RequireTensor(tensors, spec_, "scales", DType::kF16, rows_ * groups_);
  if (!codes.ok()) return codes.status();
  if (!scales.ok()) return scales.status();
  const int half = 1 << (bits_ - 1);
  std::span<const uint8_t> packed = (*codes)->data<uint8_t>();
  MatrixF out(rows_, cols_);
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t c = 0; c < cols_; ++c) {
      const int q = UnpackCode(packed, r * cols_ + c, bits_);
      const float s = HalfToFloat((*scales)->raw16()[r * groups_ + c / group_]);
      out(r, c) = static_cast<float>(q - half) * s;
    }
  }
  return out;
}

}  // namespace caldera::quant
