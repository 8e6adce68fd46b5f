#include "core/quant/lattice_quantizer.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "core/quant/quantized_tensors.h"
#include "core/tensor/half.h"

namespace caldera::quant {
namespace {

// Codebook scale constants (QuIP#): the RMS the codebook input should have, and
// the residual stage's magnification.
constexpr float kOptScale2 = 1.03f, kOptScale3 = 0.98f, kOptScale4 = 1.03f;
constexpr float kResid3 = 2.04f, kResid4 = 3.45f;

float Rms(const MatrixF& a) {
  return a.size() == 0 ? 0.0f
                       : static_cast<float>(std::sqrt(a.cast<double>().squaredNorm() /
                                                      static_cast<double>(a.size())));
}

// 16-bit codes as little-endian byte pairs.
std::vector<uint8_t> CodeBytes(const std::vector<uint16_t>& codes) {
  std::vector<uint8_t> b(codes.size() * 2);
  for (size_t i = 0; i < codes.size(); ++i) {
    b[2 * i] = static_cast<uint8_t>(codes[i] & 0xFF);
    b[2 * i + 1] = static_cast<uint8_t>(codes[i] >> 8);
  }
  return b;
}

}  // namespace

LatticeQuantizer::LatticeQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols)
    : MatrixQuantizer(spec, rows, cols),
      bits_(spec.bits),
      codes1_(static_cast<size_t>(rows * cols / 8)),
      codes2_(spec.bits == 2 ? 0 : static_cast<size_t>(rows * cols / 8)) {}

void LatticeQuantizer::Prepare(const MatrixF& a) {
  const float opt = bits_ == 2 ? kOptScale2 : bits_ == 3 ? kOptScale3 : kOptScale4;
  scale_ = Rms(a) / opt;
  if (!(scale_ > 0) || !std::isfinite(scale_)) scale_ = 1.0f;
  if (!spec_.row_scales) return;
  row_scale_.assign(static_cast<size_t>(rows_), 1.0f);
  for (int64_t r = 0; r < rows_; ++r) {
    const double ms = a.row(r).cast<double>().squaredNorm() / static_cast<double>(cols_);
    // Stored as fp16: round here so the encoder divides by what the decoder
    // multiplies by. A zero (or fp16-underflowing) row keeps scale 1.
    const float s = RoundToHalf(static_cast<float>(std::sqrt(ms)) / opt);
    if (s > 0 && std::isfinite(s)) row_scale_[static_cast<size_t>(r)] = s;
  }
}

void LatticeQuantizer::QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                                     Eigen::Ref<MatrixF> out) {
  // The vectors (rows × 8-column groups) split evenly among the threads, by
  // rows when there are enough of them, else by groups (L and R have only
  // `rank` rows); none gets fewer than kMinVectors.
  constexpr int64_t kMinVectors = 2048;
  const int64_t rows = target.rows(), groups = target.cols() / 8;
  if (e8p_search_) {  // the whole block as one batch per stage, on the caller's thread
    QuantizeBlockBatched(c0, target, out);
    return;
  }
  const int parts = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(threads_, rows * groups / kMinVectors)));
  const bool by_rows = rows >= parts * (kMinVectors / 8);
  if (scratch_.size() < static_cast<size_t>(parts)) scratch_.resize(static_cast<size_t>(parts));
  auto part = [&](int p) {
    const int64_t n = by_rows ? rows : groups;
    const int64_t b0 = n * p / parts, b1 = n * (p + 1) / parts;
    QuantizeRange(c0, by_rows ? b0 : 0, by_rows ? b1 : rows, by_rows ? 0 : b0,
                  by_rows ? groups : b1, target, out, &scratch_[static_cast<size_t>(p)]);
  };
  std::vector<std::thread> helpers;
  for (int p = 1; p < parts; ++p) helpers.emplace_back(part, p);
  part(0);
  for (std::thread& t : helpers) t.join();
}

void LatticeQuantizer::QuantizeBlockBatched(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                                            Eigen::Ref<MatrixF> out) {
  // The same operations as QuantizeRange, element for element; only the
  // batches differ (every vector of the block at once), and each vector's
  // search does not depend on the others in its batch.
  const int64_t rows = target.rows(), groups = target.cols() / 8, n = rows * groups;
  auto scale_of = [&](int64_t row) {
    return spec_.row_scales ? row_scale_[static_cast<size_t>(row)] : scale_;
  };
  Scratch& s = batch_;
  s.x.resize(static_cast<size_t>(n * 8));
  s.q1.resize(s.x.size());
  s.q2.resize(s.x.size());
  s.codes.resize(static_cast<size_t>(n));
  float* x = s.x.data();
  float* q1 = s.q1.data();
  float* q2 = s.q2.data();
  auto vec = [&](int64_t v, int64_t r) { return v * rows + r; };  // group-major
  auto code_index = [&](int64_t v, int64_t r) {
    return static_cast<size_t>(r * (cols_ / 8) + c0 / 8 + v);
  };
  for (int64_t v = 0; v < groups; ++v) {
    for (int i = 0; i < 8; ++i) {
      for (int64_t r = 0; r < rows; ++r) x[vec(v, r) * 8 + i] = target(r, v * 8 + i) / scale_of(r);
    }
  }
  e8p_search_(x, n, s.codes.data(), q1);
  for (int64_t v = 0; v < groups; ++v) {
    for (int64_t r = 0; r < rows; ++r) codes1_[code_index(v, r)] = s.codes[vec(v, r)];
  }
  if (bits_ == 4) {
    for (int64_t e = 0; e < n * 8; ++e) x[e] = (x[e] - q1[e]) * kResid4;
    e8p_search_(x, n, s.codes.data(), q2);
    for (int64_t v = 0; v < groups; ++v) {
      for (int64_t r = 0; r < rows; ++r) codes2_[code_index(v, r)] = s.codes[vec(v, r)];
    }
    for (int64_t e = 0; e < n * 8; ++e) q1[e] += q2[e] / kResid4;
  } else if (bits_ == 3) {  // the 1-bit E8 residual stays on the CPU
    for (int64_t e = 0; e < n * 8; ++e) x[e] = (x[e] - q1[e]) * kResid3;
    s.codes8.resize(static_cast<size_t>(n));
    one_bit_.QuantizeBatch(x, n, s.codes8.data(), q2);
    for (int64_t v = 0; v < groups; ++v) {
      for (int64_t r = 0; r < rows; ++r) codes2_[code_index(v, r)] = s.codes8[vec(v, r)];
    }
    for (int64_t e = 0; e < n * 8; ++e) q1[e] += q2[e] / kResid3;
  }
  for (int64_t v = 0; v < groups; ++v) {
    for (int i = 0; i < 8; ++i) {
      for (int64_t r = 0; r < rows; ++r) out(r, v * 8 + i) = q1[vec(v, r) * 8 + i] * scale_of(r);
    }
  }
}

void LatticeQuantizer::QuantizeRange(int64_t c0, int64_t r0, int64_t r1, int64_t v0, int64_t v1,
                                     const Eigen::Ref<const MatrixF>& target,
                                     Eigen::Ref<MatrixF>& out, Scratch* s) {
  const int64_t rows = r1 - r0;
  auto scale_of = [&](int64_t row) {
    return spec_.row_scales ? row_scale_[static_cast<size_t>(row)] : scale_;
  };
  s->x.resize(static_cast<size_t>(rows * 8));
  s->q1.resize(s->x.size());
  s->q2.resize(s->x.size());
  s->codes.resize(static_cast<size_t>(rows));
  float* x = s->x.data();
  float* q1 = s->q1.data();
  float* q2 = s->q2.data();
  for (int64_t v = v0; v < v1; ++v) {
    const int64_t vc = (c0 / 8) + v;
    auto code_index = [&](int64_t row) { return static_cast<size_t>(row * (cols_ / 8) + vc); };
    for (int i = 0; i < 8; ++i) {
      for (int64_t r = 0; r < rows; ++r)
        x[r * 8 + i] = target(r0 + r, v * 8 + i) / scale_of(r0 + r);
    }
    book_.QuantizeBatch(x, rows, s->codes.data(), q1);
    for (int64_t r = 0; r < rows; ++r) codes1_[code_index(r0 + r)] = s->codes[r];
    if (bits_ == 4) {
      for (int64_t e = 0; e < rows * 8; ++e) x[e] = (x[e] - q1[e]) * kResid4;
      book_.QuantizeBatch(x, rows, s->codes.data(), q2);
      for (int64_t r = 0; r < rows; ++r) codes2_[code_index(r0 + r)] = s->codes[r];
      for (int64_t e = 0; e < rows * 8; ++e) q1[e] += q2[e] / kResid4;
    } else if (bits_ == 3) {
      for (int64_t e = 0; e < rows * 8; ++e) x[e] = (x[e] - q1[e]) * kResid3;
      s->codes8.resize(static_cast<size_t>(rows));
      one_bit_.QuantizeBatch(x, rows, s->codes8.data(), q2);
      for (int64_t r = 0; r < rows; ++r) codes2_[code_index(r0 + r)] = s->codes8[r];
      for (int64_t e = 0; e < rows * 8; ++e) q1[e] += q2[e] / kResid3;
    }
    for (int i = 0; i < 8; ++i) {
      for (int64_t r = 0; r < rows; ++r) out(r0 + r, v * 8 + i) = q1[r * 8 + i] * scale_of(r0 + r);
    }
  }
}

NamedTensors LatticeQuantizer::Export() const {
  NamedTensors out;
  const int64_t vecs = cols_ / 8;
  out.emplace_back("codes", U8Tensor({rows_, vecs * 2}, CodeBytes(codes1_)));
  if (bits_ == 4) {
    out.emplace_back("codes2", U8Tensor({rows_, vecs * 2}, CodeBytes(codes2_)));
  } else if (bits_ == 3) {
    std::vector<uint8_t> b2(codes2_.size());
    for (size_t i = 0; i < codes2_.size(); ++i) b2[i] = static_cast<uint8_t>(codes2_[i]);
    out.emplace_back("codes2", U8Tensor({rows_, vecs}, b2));
  }
  if (spec_.row_scales) {
    absl::StatusOr<Tensor> t = Tensor::FromValues<float>({rows_}, row_scale_);
    out.emplace_back("row_scales", *t->ConvertTo(DType::kF16));
  } else {
    std::vector<float> s = {scale_};
    out.emplace_back("scale", *Tensor::FromValues<float>({1}, s));
  }
  return out;
}

absl::StatusOr<MatrixF> LatticeQuantizer::Decode(const NamedTensors& tensors) const {
  const int64_t vecs = cols_ / 8;
  absl::StatusOr<const Tensor*> c1 =
      RequireTensor(tensors, spec_, "codes", DType::kU8, rows_ * vecs * 2);
  if (!c1.ok()) return c1.status();
  std::vector<float> scales;  // one per row
  if (spec_.row_scales) {
    absl::StatusOr<const Tensor*> rs =
        RequireTensor(tensors, spec_, "row_scales", DType::kF16, rows_);
    if (!rs.ok()) return rs.status();
    absl::StatusOr<Tensor> f32 = (*rs)->ConvertTo(DType::kF32);
    if (!f32.ok()) return f32.status();
    scales.assign(f32->data<float>().begin(), f32->data<float>().end());
  } else {
    absl::StatusOr<const Tensor*> sc = RequireTensor(tensors, spec_, "scale", DType::kF32, 1);
    if (!sc.ok()) return sc.status();
    scales.assign(static_cast<size_t>(rows_), (*sc)->data<float>()[0]);
  }
  const Tensor* c2 = nullptr;
  if (bits_ != 2) {
    absl::StatusOr<const Tensor*> t =
        RequireTensor(tensors, spec_, "codes2", DType::kU8, rows_ * vecs * (bits_ == 4 ? 2 : 1));
    if (!t.ok()) return t.status();
    c2 = *t;
  }
  const uint8_t* b1 = (*c1)->data<uint8_t>().data();
  MatrixF out(rows_, cols_);
  float v[8], r[8];
  for (int64_t row = 0; row < rows_; ++row) {
    for (int64_t k = 0; k < vecs; ++k) {
      const int64_t i = row * vecs + k;
      book_.Decode(static_cast<uint16_t>(b1[2 * i] | (b1[2 * i + 1] << 8)), v);
      if (bits_ == 4) {
        const uint8_t* b2 = c2->data<uint8_t>().data();
        book_.Decode(static_cast<uint16_t>(b2[2 * i] | (b2[2 * i + 1] << 8)), r);
        for (int j = 0; j < 8; ++j) v[j] += r[j] / kResid4;
      } else if (bits_ == 3) {
        one_bit_.Decode(c2->data<uint8_t>()[i], r);
        for (int j = 0; j < 8; ++j) v[j] += r[j] / kResid3;
      }
      for (int j = 0; j < 8; ++j) out(row, k * 8 + j) = v[j] * scales[static_cast<size_t>(row)];
    }
  }
  return out;
}

}  // namespace caldera::quant
