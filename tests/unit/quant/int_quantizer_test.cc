// The int grid (--quantizer int, the grid of --serve vllm): every value is an
// integer q in [-2^(b-1), 2^(b-1) - 1] times its group's fp16 scale, q is the
// nearest level, and the record's codes decode to the same matrix bit for bit
// (what compressed-tensors' (q - 0)·scale computes in float32).
#include <cmath>
#include <random>

#include "core/quant/quantized_tensors.h"
#include "core/quant/quantizer.h"
#include "core/tensor/half.h"
#include "gtest/gtest.h"

namespace caldera::quant {
namespace {

MatrixF Gauss(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  MatrixF a(rows, cols);
  for (int64_t i = 0; i < a.size(); ++i) a.data()[i] = g(rng);
  return a;
}

TEST(IntQuantizerTest, ValuesAreIntegersTimesTheStoredScale) {
  for (const int bits : {4, 8}) {
    for (const int64_t group : {int64_t{32}, int64_t{128}}) {  // 128 >= cols: one per row
      const QuantizerSpec spec = SpecFor(Quantizer::kInt, bits, group);
      SCOPED_TRACE(spec.Name());
      absl::StatusOr<std::unique_ptr<MatrixQuantizer>> q = MakeMatrixQuantizer(spec, 6, 64);
      ASSERT_TRUE(q.ok()) << q.status();
      const MatrixF a = Gauss(6, 64, 3);
      const MatrixF out = QuantizeNearest(**q, a);
      const NamedTensors t = (*q)->Export();
      const Tensor* scales = FindTensor(t, "scales");
      ASSERT_NE(scales, nullptr);
      const int64_t groups = group >= 64 ? 1 : 64 / group;
      ASSERT_EQ(scales->numel(), 6 * groups);
      const int half = 1 << (bits - 1);
      for (int64_t r = 0; r < 6; ++r) {
        for (int64_t c = 0; c < 64; ++c) {
          const float s = HalfToFloat(scales->raw16()[r * groups + c * groups / 64]);
          const float k = out(r, c) / s;
          EXPECT_EQ(k, std::nearbyint(k)) << r << "," << c;
          EXPECT_GE(k, -half);
          EXPECT_LE(k, half - 1);
          EXPECT_EQ(out(r, c), k * s);  // exact in float32
          // The nearest level of the stored grid.
          const float best = std::fabs(
              a(r, c) - std::clamp(std::nearbyint(a(r, c) / s), float(-half), float(half - 1)) * s);
          EXPECT_LE(std::fabs(a(r, c) - out(r, c)), best + 1e-6f * s);
        }
      }
      absl::StatusOr<MatrixF> back = Dequantize(spec, 6, 64, t);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ((*back - out).cwiseAbs().maxCoeff(), 0.0f);
      EXPECT_EQ((*q)->StorageBits(), 6 * 64 * bits + 6 * groups * 16);
    }
  }
}

TEST(IntQuantizerTest, CodesAreOffsetSignedLevels) {
  // One row, 8 columns, one group: the codes are q + 8, packed LSB first.
  const QuantizerSpec spec = SpecFor(Quantizer::kInt, 4, 128);
  absl::StatusOr<std::unique_ptr<MatrixQuantizer>> q = MakeMatrixQuantizer(spec, 1, 8);
  ASSERT_TRUE(q.ok());
  MatrixF a(1, 8);
  a << -8, -7, -1, 0, 1, 2, 6, 7.5f;  // amax 8 -> scale 8 / 7.5 unclipped
  QuantizeNearest(**q, a);
  const NamedTensors t = (*q)->Export();
  const float s = HalfToFloat(FindTensor(t, "scales")->raw16()[0]);
  const std::span<const uint8_t> codes = FindTensor(t, "codes")->data<uint8_t>();
  ASSERT_EQ(codes.size(), 4u);
  for (int c = 0; c < 8; ++c) {
    const int code = (codes[c / 2] >> (4 * (c % 2))) & 15;
    EXPECT_EQ(code - 8, static_cast<int>(std::clamp(std::nearbyint(a(0, c) / s), -8.f, 7.f)));
  }
}

TEST(IntQuantizerTest, OnlyFourOrEightBitsSymmetric) {
  EXPECT_FALSE(ValidateSpec(SpecFor(Quantizer::kInt, 3, 128)).ok());
  EXPECT_FALSE(ValidateSpec(SpecFor(Quantizer::kInt, 2, 128)).ok());
  QuantizerSpec asym = SpecFor(Quantizer::kInt, 4, 128);
  asym.symmetric = false;
  EXPECT_FALSE(ValidateSpec(asym).ok());
  EXPECT_TRUE(ValidateSpec(SpecFor(Quantizer::kInt, 8, 32)).ok());
  EXPECT_EQ(SpecFor(Quantizer::kInt, 16, 128).kind, QuantizerSpec::Kind::kFloat);
  EXPECT_EQ(*ParseQuantizer("int"), Quantizer::kInt);
}

}  // namespace
}  // namespace caldera::quant
