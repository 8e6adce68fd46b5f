#include "core/quant/quantizer.h"

#include <cmath>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/quant/e8p.h"
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

float RoundHalf(float v) { return HalfToFloat(FloatToHalf(v)); }

Tensor U8Tensor(std::vector<int64_t> shape, const std::vector<uint8_t>& bytes) {
  return *Tensor::FromBytes(DType::kU8, std::move(shape), bytes);
}

const Tensor* FindTensor(const std::vector<std::pair<std::string, Tensor>>& t,
                         absl::string_view name) {
  for (const auto& [n, v] : t) {
    if (n == name) return &v;
  }
  return nullptr;
}

// ---------------------------------------------------------------- lattice
class LatticeQuantizer final : public MatrixQuantizer {
 public:
  LatticeQuantizer(int bits, int64_t rows, int64_t cols)
      : MatrixQuantizer(rows, cols),
        bits_(bits),
        codes1_(static_cast<size_t>(rows * cols / 8)),
        codes2_(bits == 2 ? 0 : static_cast<size_t>(rows * cols / 8)) {}

  int64_t block_cols() const override { return 8; }

  void Prepare(const MatrixF& a) override {
    const float opt = bits_ == 2 ? kOptScale2 : bits_ == 3 ? kOptScale3 : kOptScale4;
    scale_ = Rms(a) / opt;
    if (!(scale_ > 0) || !std::isfinite(scale_)) scale_ = 1.0f;
  }

  void QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                     Eigen::Ref<MatrixF> out) override {
    // The vectors (rows × 8-column groups) split evenly among the threads, by
    // rows when there are enough of them, else by groups (L and R have only
    // `rank` rows); none gets fewer than kMinVectors.
    constexpr int64_t kMinVectors = 2048;
    const int64_t rows = target.rows(), groups = target.cols() / 8;
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

  int64_t StorageBits() const override { return rows_ * cols_ * bits_ + 32; }

  std::vector<std::pair<std::string, Tensor>> Export() const override {
    std::vector<std::pair<std::string, Tensor>> out;
    const int64_t vecs = cols_ / 8;
    std::vector<uint8_t> b1(codes1_.size() * 2);
    for (size_t i = 0; i < codes1_.size(); ++i) {
      b1[2 * i] = static_cast<uint8_t>(codes1_[i] & 0xFF);
      b1[2 * i + 1] = static_cast<uint8_t>(codes1_[i] >> 8);
    }
    out.emplace_back("codes", U8Tensor({rows_, vecs * 2}, b1));
    if (bits_ == 4) {
      std::vector<uint8_t> b2(codes2_.size() * 2);
      for (size_t i = 0; i < codes2_.size(); ++i) {
        b2[2 * i] = static_cast<uint8_t>(codes2_[i] & 0xFF);
        b2[2 * i + 1] = static_cast<uint8_t>(codes2_[i] >> 8);
      }
      out.emplace_back("codes2", U8Tensor({rows_, vecs * 2}, b2));
    } else if (bits_ == 3) {
      std::vector<uint8_t> b2(codes2_.size());
      for (size_t i = 0; i < codes2_.size(); ++i) b2[i] = static_cast<uint8_t>(codes2_[i]);
      out.emplace_back("codes2", U8Tensor({rows_, vecs}, b2));
    }
    std::vector<float> s = {scale_};
    out.emplace_back("scale", *Tensor::FromValues<float>({1}, s));
    return out;
  }

 private:
  int bits_;
  float scale_ = 1.0f;
  E8PCodebook book_;
  // One thread's scratch: an 8-column group's rows as vectors.
  struct Scratch {
    std::vector<float> x, q1, q2;
    std::vector<uint16_t> codes;
    std::vector<uint8_t> codes8;
  };

  // QuantizeBlock for rows [r0, r1) of the 8-column groups [v0, v1) of
  // target: each group's rows as contiguous vectors, searched as a batch
  // (E8PCodebook::QuantizeBatch), written back.
  void QuantizeRange(int64_t c0, int64_t r0, int64_t r1, int64_t v0, int64_t v1,
                     const Eigen::Ref<const MatrixF>& target, Eigen::Ref<MatrixF>& out,
                     Scratch* s) {
    const float inv = 1.0f / scale_;
    const int64_t rows = r1 - r0;
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
        for (int64_t r = 0; r < rows; ++r) x[r * 8 + i] = target(r0 + r, v * 8 + i) * inv;
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
        for (int64_t r = 0; r < rows; ++r) out(r0 + r, v * 8 + i) = q1[r * 8 + i] * scale_;
      }
    }
  }

  E8OneBitTable one_bit_;
  std::vector<uint16_t> codes1_, codes2_;
  std::vector<Scratch> scratch_;  // one per thread QuantizeBlock uses
};

// ---------------------------------------------------------------- uniform
class UniformQuantizer final : public MatrixQuantizer {
 public:
  UniformQuantizer(int bits, int64_t group, bool symmetric, int64_t rows, int64_t cols)
      : MatrixQuantizer(rows, cols),
        bits_(bits),
        group_(std::min(group, cols)),
        groups_((cols + std::min(group, cols) - 1) / std::min(group, cols)),
        symmetric_(symmetric),
        scales_(static_cast<size_t>(rows * groups_)),
        mins_(static_cast<size_t>(rows * groups_)),
        codes_(static_cast<size_t>(rows * cols)) {}

  int64_t block_cols() const override { return 1; }

  void Prepare(const MatrixF& a) override {
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
          scales_[i] = RoundHalf(amax > 0 ? amax / (levels / 2) : 1.0f);
          if (!(scales_[i] > 0)) scales_[i] = RoundHalf(6.1e-5f);
          mins_[i] = 0;
        } else {
          scales_[i] = RoundHalf(hi > lo ? (hi - lo) / (levels - 1) : 1.0f);
          if (!(scales_[i] > 0)) scales_[i] = RoundHalf(6.1e-5f);
          mins_[i] = RoundHalf(lo);
        }
      }
    }
  }

  void QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                     Eigen::Ref<MatrixF> out) override {
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

  int64_t StorageBits() const override {
    return rows_ * cols_ * bits_ + rows_ * groups_ * (symmetric_ ? 16 : 32);
  }

  std::vector<std::pair<std::string, Tensor>> Export() const override {
    std::vector<uint8_t> packed(static_cast<size_t>((rows_ * cols_ * bits_ + 7) / 8), 0);
    uint64_t bit = 0;
    for (uint8_t code : codes_) {
      for (int b = 0; b < bits_; ++b, ++bit) {
        if ((code >> b) & 1) packed[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
      }
    }
    std::vector<std::pair<std::string, Tensor>> out;
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

  int bits_;
  int64_t group_, groups_;
  bool symmetric_;
  std::vector<float> scales_, mins_;
  std::vector<uint8_t> codes_;
};

// ---------------------------------------------------------------- float
class FloatQuantizer final : public MatrixQuantizer {
 public:
  FloatQuantizer(int bits, int64_t rows, int64_t cols)
      : MatrixQuantizer(rows, cols), bits_(bits), values_(rows, cols) {}
  int64_t block_cols() const override { return 1; }
  void Prepare(const MatrixF&) override {}
  void QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                     Eigen::Ref<MatrixF> out) override {
    for (int64_t j = 0; j < target.cols(); ++j) {
      for (int64_t r = 0; r < target.rows(); ++r) {
        const float v = bits_ == 16 ? RoundHalf(target(r, j)) : target(r, j);
        out(r, j) = v;
        values_(r, c0 + j) = v;
      }
    }
  }
  int64_t StorageBits() const override { return rows_ * cols_ * bits_; }
  std::vector<std::pair<std::string, Tensor>> Export() const override {
    Tensor t = *Tensor::Zeros(DType::kF32, {rows_, cols_});
    std::span<float> d = t.mutable_data<float>();
    for (int64_t r = 0; r < rows_; ++r) {
      for (int64_t c = 0; c < cols_; ++c) d[r * cols_ + c] = values_(r, c);
    }
    std::vector<std::pair<std::string, Tensor>> out;
    out.emplace_back("values", bits_ == 16 ? *t.ConvertTo(DType::kF16) : std::move(t));
    return out;
  }

 private:
  int bits_;
  MatrixF values_;
};

}  // namespace

std::string QuantizerSpec::Name() const {
  switch (kind) {
    case Kind::kLattice:
      return bits == 2 ? "e8p2" : absl::StrCat("e8p-rvq", bits);
    case Kind::kUniform:
      return absl::StrCat("uniform", bits, "-g", group_size, symmetric ? "-sym" : "-asym");
    case Kind::kFloat:
      return absl::StrCat("fp", bits);
  }
  return "unknown";
}

absl::Status ValidateSpec(const QuantizerSpec& s) {
  switch (s.kind) {
    case QuantizerSpec::Kind::kLattice:
      if (s.bits < 2 || s.bits > 4) {
        return absl::InvalidArgumentError(absl::StrCat(
            "e8p quantizer supports 2, 3 or 4 bits (or 16/32 to keep floats), not ", s.bits));
      }
      return absl::OkStatus();
    case QuantizerSpec::Kind::kUniform:
      if (s.bits < 2 || s.bits > 8) {
        return absl::InvalidArgumentError(absl::StrCat(
            "uniform quantizer supports 2 to 8 bits (or 16/32 to keep floats), not ", s.bits));
      }
      if (s.group_size < 1) {
        return absl::InvalidArgumentError("--group-size must be at least 1");
      }
      return absl::OkStatus();
    case QuantizerSpec::Kind::kFloat:
      if (s.bits != 16 && s.bits != 32) {
        return absl::InvalidArgumentError(
            absl::StrCat("float storage is 16 or 32 bits, not ", s.bits));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown quantizer kind");
}

QuantizerSpec SpecFor(absl::string_view quantizer, int bits, int64_t group_size) {
  QuantizerSpec s;
  s.bits = bits;
  s.group_size = group_size;
  if (bits >= 16) {
    s.kind = QuantizerSpec::Kind::kFloat;
  } else if (quantizer == "uniform") {
    s.kind = QuantizerSpec::Kind::kUniform;
  } else {
    s.kind = QuantizerSpec::Kind::kLattice;
  }
  return s;
}

int64_t BlockColsFor(const QuantizerSpec& spec) {
  return spec.kind == QuantizerSpec::Kind::kLattice ? 8 : 1;
}

absl::StatusOr<std::unique_ptr<MatrixQuantizer>> MakeMatrixQuantizer(const QuantizerSpec& spec,
                                                                     int64_t rows, int64_t cols) {
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  if (cols % BlockColsFor(spec) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(spec.Name(), " needs a multiple of ",
                                                   BlockColsFor(spec), " columns, got ", cols));
  }
  switch (spec.kind) {
    case QuantizerSpec::Kind::kLattice:
      return std::unique_ptr<MatrixQuantizer>(new LatticeQuantizer(spec.bits, rows, cols));
    case QuantizerSpec::Kind::kUniform:
      return std::unique_ptr<MatrixQuantizer>(
          new UniformQuantizer(spec.bits, spec.group_size, spec.symmetric, rows, cols));
    case QuantizerSpec::Kind::kFloat:
      return std::unique_ptr<MatrixQuantizer>(new FloatQuantizer(spec.bits, rows, cols));
  }
  return absl::InvalidArgumentError("unknown quantizer kind");
}

MatrixF QuantizeNearest(MatrixQuantizer& q, const MatrixF& a) {
  q.Prepare(a);
  MatrixF out(a.rows(), a.cols());
  q.QuantizeBlock(0, a, out);  // all columns: the quantizer splits the work
  return out;
}

absl::StatusOr<MatrixF> Dequantize(const QuantizerSpec& spec, int64_t rows, int64_t cols,
                                   const std::vector<std::pair<std::string, Tensor>>& tensors) {
  auto need = [&](const char* name, DType dtype, int64_t numel) -> absl::StatusOr<const Tensor*> {
    const Tensor* t = FindTensor(tensors, name);
    if (t == nullptr || t->dtype() != dtype || t->numel() != numel) {
      return absl::InvalidArgumentError(absl::StrCat(
          "quantized record (", spec.Name(), ") has a missing or malformed '", name, "' tensor"));
    }
    return t;
  };
  MatrixF out(rows, cols);
  switch (spec.kind) {
    case QuantizerSpec::Kind::kLattice: {
      const int64_t vecs = cols / 8;
      absl::StatusOr<const Tensor*> c1 = need("codes", DType::kU8, rows * vecs * 2);
      absl::StatusOr<const Tensor*> sc = need("scale", DType::kF32, 1);
      if (!c1.ok()) return c1.status();
      if (!sc.ok()) return sc.status();
      const Tensor* c2 = nullptr;
      if (spec.bits != 2) {
        absl::StatusOr<const Tensor*> t =
            need("codes2", DType::kU8, rows * vecs * (spec.bits == 4 ? 2 : 1));
        if (!t.ok()) return t.status();
        c2 = *t;
      }
      const float scale = (*sc)->data<float>()[0];
      E8PCodebook book;
      E8OneBitTable one_bit;
      const uint8_t* b1 = (*c1)->data<uint8_t>().data();
      float v[8], r[8];
      for (int64_t row = 0; row < rows; ++row) {
        for (int64_t k = 0; k < vecs; ++k) {
          const int64_t i = row * vecs + k;
          book.Decode(static_cast<uint16_t>(b1[2 * i] | (b1[2 * i + 1] << 8)), v);
          if (spec.bits == 4) {
            const uint8_t* b2 = c2->data<uint8_t>().data();
            book.Decode(static_cast<uint16_t>(b2[2 * i] | (b2[2 * i + 1] << 8)), r);
            for (int j = 0; j < 8; ++j) v[j] += r[j] / kResid4;
          } else if (spec.bits == 3) {
            one_bit.Decode(c2->data<uint8_t>()[i], r);
            for (int j = 0; j < 8; ++j) v[j] += r[j] / kResid3;
          }
          for (int j = 0; j < 8; ++j) out(row, k * 8 + j) = v[j] * scale;
        }
      }
      return out;
    }
    case QuantizerSpec::Kind::kUniform: {
      const int64_t group = std::min(spec.group_size, cols);
      const int64_t groups = (cols + group - 1) / group;
      absl::StatusOr<const Tensor*> codes =
          need("codes", DType::kU8, (rows * cols * spec.bits + 7) / 8);
      absl::StatusOr<const Tensor*> scales = need("scales", DType::kF16, rows * groups);
      if (!codes.ok()) return codes.status();
      if (!scales.ok()) return scales.status();
      const Tensor* mins = nullptr;
      if (!spec.symmetric) {
        absl::StatusOr<const Tensor*> m = need("mins", DType::kF16, rows * groups);
        if (!m.ok()) return m.status();
        mins = *m;
      }
      const int levels = 1 << spec.bits;
      std::span<const uint8_t> packed = (*codes)->data<uint8_t>();
      uint64_t bit = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          int q = 0;
          for (int b = 0; b < spec.bits; ++b, ++bit) q |= ((packed[bit / 8] >> (bit % 8)) & 1) << b;
          const int64_t gi = r * groups + c / group;
          const float s = HalfToFloat((*scales)->raw16()[gi]);
          out(r, c) = spec.symmetric ? (static_cast<float>(q - levels / 2) + 0.5f) * s
                                     : HalfToFloat(mins->raw16()[gi]) + static_cast<float>(q) * s;
        }
      }
      return out;
    }
    case QuantizerSpec::Kind::kFloat: {
      const Tensor* t = FindTensor(tensors, "values");
      if (t == nullptr || t->numel() != rows * cols) {
        return absl::InvalidArgumentError("float record has no 'values' tensor of the right size");
      }
      absl::StatusOr<Tensor> f = t->ConvertTo(DType::kF32);
      if (!f.ok()) return f.status();
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) out(r, c) = f->data<float>()[r * cols + c];
      }
      return out;
    }
  }
  return absl::InvalidArgumentError("unknown quantizer kind");
}

}  // namespace caldera::quant
