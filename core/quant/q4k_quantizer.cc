#include "core/quant/q4k_quantizer.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "core/quant/quantized_tensors.h"
#include "core/tensor/half.h"

namespace caldera::quant {
namespace {

constexpr float kErrorNorm = 2.4f;  // as the uniform and int quantizers' search
constexpr int kShrinkSteps = 11;    // p = 1, 0.98, ..., 0.8

int Level(float v, float step, float min) {
  if (!(step > 0)) return 0;
  return std::clamp(static_cast<int>(std::nearbyint((v + min) / step)), 0, 15);
}

// The value of level q: ggml's d1 * q - m1 in float32.
float Value(int q, float step, float min) { return step * static_cast<float>(q) - min; }

}  // namespace

Q4kQuantizer::Q4kQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols)
    : MatrixQuantizer(spec, rows, cols),
      subs_(cols / kQ4kSubBlock),
      supers_(cols / kQ4kSuperBlock),
      sc_(static_cast<size_t>(rows * subs_)),
      m_(static_cast<size_t>(rows * subs_)),
      d_(static_cast<size_t>(rows * supers_)),
      dmin_(static_cast<size_t>(rows * supers_)),
      step_(static_cast<size_t>(rows * subs_)),
      min_(static_cast<size_t>(rows * subs_)),
      codes_(static_cast<size_t>(rows * cols)) {}

void Q4kQuantizer::Prepare(const MatrixF& a) {
  constexpr int64_t kPer = kQ4kSuperBlock / kQ4kSubBlock;
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t b = 0; b < supers_; ++b) {
      // Per sub-block: the best shrunk affine grid (scale s, minimum −mn).
      float s[kPer], mn[kPer];
      for (int64_t j = 0; j < kPer; ++j) {
        const int64_t c0 = b * kQ4kSuperBlock + j * kQ4kSubBlock;
        float lo = 0, hi = 0;
        for (int64_t c = c0; c < c0 + kQ4kSubBlock; ++c) {
          lo = std::min(lo, a(r, c));
          hi = std::max(hi, a(r, c));
        }
        float best_error = INFINITY;
        s[j] = 0;
        mn[j] = -lo;
        for (int step = 0; step < kShrinkSteps; ++step) {
          const float p = 1.0f - 0.02f * static_cast<float>(step);
          const float ss = (hi - lo) * p / 15.0f, mm = -lo * p;
          float e = 0;
          for (int64_t c = c0; c < c0 + kQ4kSubBlock; ++c) {
            e += std::pow(std::fabs(a(r, c) - Value(Level(a(r, c), ss, mm), ss, mm)), kErrorNorm);
          }
          if (e < best_error) best_error = e, s[j] = ss, mn[j] = mm;
        }
      }
      // The super-block's fp16 d and dmin, the sub-blocks' 6-bit multiples.
      const float max_s = *std::max_element(s, s + kPer);
      const float max_m = *std::max_element(mn, mn + kPer);
      const float d = RoundToHalf(max_s / 63.0f), dmin = RoundToHalf(max_m / 63.0f);
      d_[r * supers_ + b] = FloatToHalf(d);
      dmin_[r * supers_ + b] = FloatToHalf(dmin);
      for (int64_t j = 0; j < kPer; ++j) {
        const size_t i = static_cast<size_t>(r * subs_ + b * kPer + j);
        sc_[i] = static_cast<uint8_t>(
            d > 0 ? std::clamp(static_cast<int>(std::nearbyint(s[j] / d)), 0, 63) : 0);
        m_[i] = static_cast<uint8_t>(
            dmin > 0 ? std::clamp(static_cast<int>(std::nearbyint(mn[j] / dmin)), 0, 63) : 0);
        step_[i] = d * static_cast<float>(sc_[i]);
        min_[i] = dmin * static_cast<float>(m_[i]);
      }
    }
  }
}

void Q4kQuantizer::QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                                 Eigen::Ref<MatrixF> out) {
  for (int64_t j = 0; j < target.cols(); ++j) {
    const int64_t c = c0 + j, sub = c / kQ4kSubBlock;
    for (int64_t r = 0; r < target.rows(); ++r) {
      const size_t i = static_cast<size_t>(r * subs_ + sub);
      const int q = Level(target(r, j), step_[i], min_[i]);
      codes_[static_cast<size_t>(r * cols_ + c)] = static_cast<uint8_t>(q);
      out(r, j) = Value(q, step_[i], min_[i]);
    }
  }
}

NamedTensors Q4kQuantizer::Export() const {
  const std::vector<uint8_t> packed = PackCodes(codes_, 4);
  NamedTensors out;
  out.emplace_back("codes", U8Tensor({static_cast<int64_t>(packed.size())}, packed));
  out.emplace_back("scales", U8Tensor({rows_, subs_}, sc_));
  out.emplace_back("mins", U8Tensor({rows_, subs_}, m_));
  for (const auto& [name, bits] :
       {std::pair<const char*, const std::vector<uint16_t>*>{"d", &d_}, {"dmin", &dmin_}}) {
    Tensor t = *Tensor::Zeros(DType::kF16, {rows_, supers_});
    std::copy(bits->begin(), bits->end(), t.mutable_raw16().begin());
    out.emplace_back(name, std::move(t));
  }
  return out;
}

absl::StatusOr<MatrixF> Q4kQuantizer::Decode(const NamedTensors& tensors) const {
  absl::StatusOr<const Tensor*> codes =
      RequireTensor(tensors, spec_, "codes", DType::kU8, rows_ * cols_ / 2);
  absl::StatusOr<const Tensor*> scales =
      RequireTensor(tensors, spec_, "scales", DType::kU8, rows_ * subs_);
  absl::StatusOr<const Tensor*> mins =
      RequireTensor(tensors, spec_, "mins", DType::kU8, rows_ * subs_);
  absl::StatusOr<const Tensor*> d =
      RequireTensor(tensors, spec_, "d", DType::kF16, rows_ * supers_);
  absl::StatusOr<const Tensor*> dmin =
      RequireTensor(tensors, spec_, "dmin", DType::kF16, rows_ * supers_);
  for (const auto* s : {&codes, &scales, &mins, &d, &dmin}) {
    if (!s->ok()) return s->status();
  }
  std::span<const uint8_t> packed = (*codes)->data<uint8_t>();
  std::span<const uint8_t> sc = (*scales)->data<uint8_t>(), m = (*mins)->data<uint8_t>();
  MatrixF out(rows_, cols_);
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t c = 0; c < cols_; ++c) {
      const int64_t sub = r * subs_ + c / kQ4kSubBlock, super = r * supers_ + c / kQ4kSuperBlock;
      const float step = HalfToFloat((*d)->raw16()[super]) * static_cast<float>(sc[sub]);
      const float min = HalfToFloat((*dmin)->raw16()[super]) * static_cast<float>(m[sub]);
      out(r, c) = Value(UnpackCode(packed, r * cols_ + c, 4), step, min);
    }
  }
  return out;
}

}  // namespace caldera::quant
