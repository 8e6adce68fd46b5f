// llama.cpp's Q4_K grid (--quantizer q4k): every value is (d·sc)·q − dmin·m with
// q in [0, 15], 6-bit sc and m per 32 columns and fp16 d, dmin per 256; q is the
// nearest level; the record decodes to the same matrix bit for bit; 4.5 bits per
// weight; rows that are not a multiple of 256 are refused.
#include "core/quant/q4k_quantizer.h"

#include <cmath>
#include <random>

#include "core/quant/quantized_tensors.h"
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

TEST(Q4kQuantizerTest, ValuesAreOnTheStoredGridAndDecodeExactly) {
  const int64_t rows = 5, cols = 512;
  const QuantizerSpec spec = SpecFor(Quantizer::kQ4k, 4, 256);
  absl::StatusOr<std::unique_ptr<MatrixQuantizer>> q = MakeMatrixQuantizer(spec, rows, cols);
  ASSERT_TRUE(q.ok()) << q.status();
  const MatrixF a = Gauss(rows, cols, 3);
  const MatrixF out = QuantizeNearest(**q, a);
  EXPECT_EQ((*q)->StorageBits(), rows * cols * 9 / 2);
  const NamedTensors t = (*q)->Export();
  const Tensor* sc = FindTensor(t, "scales");
  const Tensor* m = FindTensor(t, "mins");
  const Tensor* d = FindTensor(t, "d");
  const Tensor* dmin = FindTensor(t, "dmin");
  ASSERT_TRUE(sc && m && d && dmin);
  double err = 0, norm = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t sub = r * (cols / 32) + c / 32, super = r * (cols / 256) + c / 256;
      ASSERT_LT(sc->data<uint8_t>()[sub], 64);
      ASSERT_LT(m->data<uint8_t>()[sub], 64);
      const float step =
          HalfToFloat(d->raw16()[super]) * static_cast<float>(sc->data<uint8_t>()[sub]);
      const float min =
          HalfToFloat(dmin->raw16()[super]) * static_cast<float>(m->data<uint8_t>()[sub]);
      // The value is a level of its sub-block, and the nearest one to a.
      const float level = std::nearbyint((out(r, c) + min) / step);
      ASSERT_GE(level, 0);
      ASSERT_LE(level, 15);
      ASSERT_EQ(out(r, c), step * level - min) << r << "," << c;
      const float next = std::clamp((a(r, c) + min) / step, 0.0f, 15.0f);
      EXPECT_LE(std::fabs(level - next), 0.5f + 1e-4f) << r << "," << c;
      err += std::pow(a(r, c) - out(r, c), 2);
      norm += std::pow(a(r, c), 2);
    }
  }
  // 16 levels on a Gaussian's range: relative error of a 4-bit grid.
  EXPECT_LT(std::sqrt(err / norm), 0.12);
  absl::StatusOr<MatrixF> back = (*q)->Decode(t);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, out);
}

TEST(Q4kQuantizerTest, RefusesRowsThatAreNotWholeSuperBlocks) {
  const QuantizerSpec spec = SpecFor(Quantizer::kQ4k, 4, 256);
  absl::StatusOr<std::unique_ptr<MatrixQuantizer>> q = MakeMatrixQuantizer(spec, 4, 192);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("multiple of 256"), std::string::npos) << q.status();
  EXPECT_FALSE(ValidateSpec(SpecFor(Quantizer::kQ4k, 3, 256)).ok());
  EXPECT_EQ(*ParseQuantizer("q4k"), Quantizer::kQ4k);
}

}  // namespace
}  // namespace caldera::quant
