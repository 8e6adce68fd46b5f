// The CUDA kernels' per-element bodies (core/backend/kernels/), run on the
// host against the CPU backend: the E8P search must give the CPU's codes and
// points bit for bit, the power-of-two butterflies the CPU's bits, the
// K-block mix the CPU's values within float rounding, and the uniform
// rounding the uniform quantizer's codes and values. No GPU needed; this is
// what CI checks of the CUDA backend's logic.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/backend/cpu/cpu_backend.h"
#include "core/backend/kernels/e8p_search.h"
#include "core/backend/kernels/e8p_tables.h"
#include "core/backend/kernels/hadamard_butterfly.h"
#include "core/backend/kernels/uniform_round.h"
#include "core/model/block_kernels.h"
#include "core/model/llama_block.h"
#include "core/quant/e8p.h"
#include "core/quant/quantizer.h"
#include "core/tensor/half.h"
#include "core/transform/hadamard.h"
#include "gtest/gtest.h"

namespace caldera::backend {
namespace {

std::vector<float> E8pInputs(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(8 * count));
  for (int64_t v = 0; v < count; ++v) {
    // Scales from well inside the codebook to far outside it (|x| >= 64 takes
    // the full search on both shifts), plus exact half-integers (ties).
    const float scale = v % 7 == 6 ? 40.0f : 0.2f + 0.6f * static_cast<float>(v % 5);
    for (int i = 0; i < 8; ++i) {
      float val = normal(rng) * scale;
      if (v % 11 == 10) val = std::round(val * 2.0f) / 2.0f;
      x[static_cast<size_t>(8 * v + i)] = val;
    }
  }
  x[0] = 100.0f;  // one out-of-range coordinate
  return x;
}

TEST(E8pSearchBodyTest, SameCodesAndPointsAsTheCpuBackend) {
  const int64_t count = 20000;
  const std::vector<float> x = E8pInputs(count, 1);
  CpuBackend cpu;
  std::vector<uint16_t> cpu_codes(count);
  std::vector<float> cpu_out(x.size());
  ASSERT_TRUE(cpu.E8pNearest(x.data(), count, cpu_codes.data(), cpu_out.data()).ok());
  const kernels::E8pTables tables = kernels::BuildE8pTables(quant::E8PCodebook());
  const kernels::E8pTablesView view = tables.View();
  int64_t mismatches = 0;
  for (int64_t v = 0; v < count; ++v) {
    float out[8];
    const uint16_t code = kernels::E8pNearestBody(view, x.data() + 8 * v, out);
    const bool same = code == cpu_codes[static_cast<size_t>(v)] &&
                      std::memcmp(out, cpu_out.data() + 8 * v, sizeof out) == 0;
    if (!same && ++mismatches <= 5) {
      ADD_FAILURE() << "vector " << v << ": body code " << code << ", CPU code "
                    << cpu_codes[static_cast<size_t>(v)];
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(E8pSearchBodyTest, FullSearchMatchesTheExhaustiveSearch) {
  // Step 2 alone over both shifts is QuantizeExhaustive.
  const int64_t count = 2000;
  const std::vector<float> x = E8pInputs(count, 2);
  const quant::E8PCodebook cb;
  const kernels::E8pTables tables = kernels::BuildE8pTables(cb);
  for (int64_t v = 0; v < count; ++v) {
    kernels::E8pCandidate c[2];
    kernels::E8pFullSearch(tables.View(), x.data() + 8 * v, 0.25f, &c[0]);
    kernels::E8pFullSearch(tables.View(), x.data() + 8 * v, -0.25f, &c[1]);
    const int sh = c[1].dist < c[0].dist ? 1 : 0;
    const uint16_t code = static_cast<uint16_t>((c[sh].j << 8) | (sh << 7) | (c[sh].signs & 0x7F));
    float out[8];
    ASSERT_EQ(code, cb.QuantizeExhaustive(x.data() + 8 * v, out)) << "vector " << v;
  }
}

Eigen::MatrixXf Random(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Eigen::MatrixXf m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

// The device's sequence (kernels.cu) on the host: stages, then the mix
// through a scratch copy, then the scale.
template <typename T>
void BodyHadamard(const transform::HadamardTransform& t, bool transpose, bool rows,
                  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>* x) {
  const int64_t n = t.size(), p = n / t.order(), r = x->rows();
  const int k = t.order();
  const int64_t count = rows ? x->rows() : x->cols();
  const int64_t vec_stride = rows ? 1 : r, elem_stride = rows ? r : 1;
  for (int64_t v = 0; v < count; ++v) {
    for (int64_t b = 0; b < k; ++b) {
      kernels::FwhtBlock(x->data() + v * vec_stride + b * p * elem_stride, elem_stride, p);
    }
  }
  std::vector<T> scratch;
  if (k > 1) {
    const Eigen::MatrixXf h = *transform::HadamardMatrix(k);
    std::vector<T> hk(static_cast<size_t>(k * k));
    for (int a = 0; a < k; ++a) {
      for (int b = 0; b < k; ++b)
        hk[static_cast<size_t>(a * k + b)] = transpose ? h(a, b) : h(b, a);
    }
    scratch.resize(static_cast<size_t>(count * n));
    for (int64_t v = 0; v < count; ++v) {
      for (int64_t i = 0; i < n; ++i) {
        scratch[static_cast<size_t>(v * n + i)] =
            kernels::MixElement(x->data() + v * vec_stride, elem_stride, p, k, hk.data(), i % p,
                                static_cast<int>(i / p));
      }
    }
  }
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int64_t v = 0; v < count; ++v) {
    for (int64_t i = 0; i < n; ++i) {
      T& e = x->data()[v * vec_stride + i * elem_stride];
      e = (k > 1 ? scratch[static_cast<size_t>(v * n + i)] : e) * scale;
    }
  }
}

TEST(HadamardButterflyBodyTest, PowerOfTwoSizesGiveTheCpuBits) {
  CpuBackend cpu;
  for (int64_t n : {8, 64, 256}) {
    const transform::HadamardTransform t = *transform::HadamardTransform::Create(n);
    ASSERT_EQ(t.order(), 1);
    for (bool transpose : {false, true}) {
      Eigen::MatrixXf cols = Random(n, 5, 3), cols_cpu = cols;
      BodyHadamard(t, transpose, /*rows=*/false, &cols);
      ASSERT_TRUE(cpu.HadamardColumns(t, transpose, &cols_cpu).ok());
      EXPECT_TRUE(cols == cols_cpu) << "columns, n " << n;
      Eigen::MatrixXf rows = Random(37, n, 4), rows_cpu = rows;
      BodyHadamard(t, transpose, /*rows=*/true, &rows);
      ASSERT_TRUE(cpu.HadamardRows(t, transpose, &rows_cpu).ok());
      EXPECT_TRUE(rows == rows_cpu) << "rows, n " << n;
      Eigen::MatrixXd hd = Random(n, n, 5).cast<double>(), hd_cpu = hd;
      BodyHadamard(t, transpose, /*rows=*/true, &hd);
      ASSERT_TRUE(cpu.HadamardRowsD(t, transpose, &hd_cpu).ok());
      EXPECT_TRUE(hd == hd_cpu) << "double rows, n " << n;
    }
  }
}

TEST(HadamardButterflyBodyTest, MixedOrdersMatchTheCpuWithinRounding) {
  CpuBackend cpu;
  for (int64_t n : {12 * 16, 20 * 8}) {
    const transform::HadamardTransform t = *transform::HadamardTransform::Create(n);
    ASSERT_GT(t.order(), 1);
    for (bool transpose : {false, true}) {
      Eigen::MatrixXf cols = Random(n, 6, 6), cols_cpu = cols;
      BodyHadamard(t, transpose, /*rows=*/false, &cols);
      ASSERT_TRUE(cpu.HadamardColumns(t, transpose, &cols_cpu).ok());
      EXPECT_LT((cols - cols_cpu).norm(), 1e-5 * cols_cpu.norm()) << "columns, n " << n;
      Eigen::MatrixXf rows = Random(9, n, 7), rows_cpu = rows;
      BodyHadamard(t, transpose, /*rows=*/true, &rows);
      ASSERT_TRUE(cpu.HadamardRows(t, transpose, &rows_cpu).ok());
      EXPECT_LT((rows - rows_cpu).norm(), 1e-5 * rows_cpu.norm()) << "rows, n " << n;
    }
  }
}

TEST(UniformRoundBodyTest, SameCodesAndValuesAsTheUniformQuantizer) {
  for (bool symmetric : {true, false}) {
    for (int bits : {2, 4}) {
      quant::QuantizerSpec spec = quant::SpecFor(quant::Quantizer::kUniform, bits, 16);
      spec.symmetric = symmetric;
      const int64_t rows = 7, cols = 48, groups = cols / 16;
      auto q = quant::MakeMatrixQuantizer(spec, rows, cols);
      ASSERT_TRUE(q.ok()) << q.status();
      const Eigen::MatrixXf a = Random(rows, cols, 8);
      const Eigen::MatrixXf cpu = quant::QuantizeNearest(**q, a);
      const NamedTensors ex = (*q)->Export();
      std::vector<float> scales, mins;
      std::vector<uint8_t> packed;
      for (const auto& [name, t] : ex) {
        if (name == "codes") {
          packed.assign(t.data<uint8_t>().begin(), t.data<uint8_t>().end());
        } else {
          std::vector<float>& dst = name == "scales" ? scales : mins;
          for (uint16_t h : t.raw16()) dst.push_back(HalfToFloat(h));
        }
      }
      ASSERT_EQ(scales.size(), static_cast<size_t>(rows * groups));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          const size_t si = static_cast<size_t>(r * groups + c / 16);
          float v = 0;
          const int code = kernels::UniformRoundBody(
              a(r, c), scales[si], symmetric ? 0.0f : mins[si], 1 << bits, symmetric, &v);
          int stored = 0;
          for (int b = 0; b < bits; ++b) {
            const int64_t bit = (r * cols + c) * bits + b;
            stored |= ((packed[static_cast<size_t>(bit / 8)] >> (bit % 8)) & 1) << b;
          }
          EXPECT_EQ(code, stored) << r << "," << c;
          EXPECT_EQ(v, cpu(r, c)) << r << "," << c;
        }
      }
    }
  }
}

// The calibration forward's bodies (core/model/block_kernels.h). RoPE,
// softmax and SwiGLU are what model::BlockForward runs on the host, so the
// CPU path checks their bits; here they are checked against float64
// formulas, and RMSNorm's body (the device's only) against model::RmsNorm.
TEST(BlockForwardBodyTest, RmsNormRowMatchesTheCpuRmsNorm) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int64_t n : {1, 7, 64, 4096}) {
    model::RowMatrixF x(3, n);
    model::VectorF w(n);
    for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
    for (int64_t i = 0; i < n; ++i) w(i) = 1.0f + 0.1f * normal(rng);
    model::RowMatrixF cpu;
    model::RmsNorm(x, w, 1e-5, &cpu);
    std::vector<float> body(static_cast<size_t>(n));
    for (int64_t r = 0; r < x.rows(); ++r) {
      model::kernels::RmsNormRow(x.row(r).data(), w.data(), n, 1e-5, body.data());
      for (int64_t j = 0; j < n; ++j) {
        // Same float operations after one scale, whose double sums differ in
        // order only: within a few ulps.
        EXPECT_NEAR(body[static_cast<size_t>(j)], cpu(r, j), 4e-7f * std::fabs(cpu(r, j)) + 1e-30f)
            << "n " << n << " row " << r << " col " << j;
      }
    }
  }
}

TEST(BlockForwardBodyTest, CausalSoftmaxRowIsTheCausalSoftmax) {
  std::mt19937 rng(6);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const int64_t len = 33;
  for (int64_t i : {int64_t{0}, int64_t{5}, len - 1}) {
    std::vector<float> row(static_cast<size_t>(len));
    for (float& v : row) v = normal(rng);
    row[1] = 80.0f;  // large scores must not overflow (the max is subtracted)
    const std::vector<float> in = row;
    model::kernels::CausalSoftmaxRow(row.data(), i, len);
    double mx = -1e300, sum = 0;
    for (int64_t j = 0; j <= i; ++j) mx = std::max(mx, double{in[static_cast<size_t>(j)]});
    for (int64_t j = 0; j <= i; ++j) sum += std::exp(double{in[static_cast<size_t>(j)]} - mx);
    for (int64_t j = 0; j < len; ++j) {
      const double want = j <= i ? std::exp(double{in[static_cast<size_t>(j)]} - mx) / sum : 0.0;
      EXPECT_NEAR(row[static_cast<size_t>(j)], want, 1e-6 * want + 1e-12)
          << "i " << i << " j " << j;
    }
  }
}

TEST(BlockForwardBodyTest, RopeAndSwiGluAreTheirFormulas) {
  const int64_t half = 4;
  float v[8] = {1.0f, -2.0f, 0.5f, 3.0f, 0.25f, 4.0f, -1.5f, 2.0f};
  const float c = std::cos(0.7f), sn = std::sin(0.7f);
  const float a = v[2], b = v[2 + half];
  model::kernels::RopeRotatePair(v, 2, half, c, sn);
  EXPECT_NEAR(v[2], double{a} * c - double{b} * sn, 1e-6);
  EXPECT_NEAR(v[2 + half], double{b} * c + double{a} * sn, 1e-6);
  EXPECT_EQ(v[0], 1.0f);  // other pairs untouched
  EXPECT_EQ(v[4], 0.25f);
  for (float g : {-30.0f, -1.0f, 0.0f, 0.3f, 12.0f}) {
    const double want = g / (1.0 + std::exp(-double{g})) * 1.5;
    EXPECT_NEAR(model::kernels::SwiGlu(g, 1.5f), want, 1e-6 * std::fabs(want) + 1e-12) << g;
  }
}

}  // namespace
}  // namespace caldera::backend
