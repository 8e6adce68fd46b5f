#include "core/quant/e8p.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace caldera::quant {
namespace {

TEST(E8PTest, CodebookSizeAndStructure) {
  E8PCodebook book;
  int small = 0, twelve = 0;
  for (const auto& a : book.patterns()) {
    float n2 = 0;
    for (float v : a) {
      EXPECT_EQ(std::fmod(v * 2, 2.0f), 1.0f) << "entries are odd halves";
      n2 += v * v;
    }
    small += n2 <= 10.0f;
    twelve += n2 == 12.0f;
  }
  EXPECT_EQ(small, 227);
  EXPECT_EQ(twelve, 29);
  // The first 227 patterns are in lexicographic order.
  for (int j = 1; j < 227; ++j) EXPECT_LT(book.patterns()[j - 1], book.patterns()[j]);
  // All 65,536 codes decode to distinct points of E8 + 1/4: (c - t) in D8 + 1/2.
  std::set<std::array<float, 8>> points;
  for (uint32_t code = 0; code < 65536; ++code) {
    std::array<float, 8> p;
    book.Decode(static_cast<uint16_t>(code), p.data());
    const float t = (code & 0x80) ? -0.25f : 0.25f;
    float sum = 0;
    for (float v : p) sum += v - t;
    ASSERT_EQ(std::fmod(std::fabs(sum), 2.0f), 0.0f) << code;
    points.insert(p);
  }
  EXPECT_EQ(points.size(), 65536u);
}

TEST(E8PTest, SearchEqualsBruteForce) {
  E8PCodebook book;
  std::vector<std::array<float, 8>> all(65536);
  for (uint32_t code = 0; code < 65536; ++code)
    book.Decode(static_cast<uint16_t>(code), all[code].data());
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.03f);
  for (int trial = 0; trial < 200; ++trial) {
    float x[8], out[8];
    for (float& v : x) v = normal(rng) * (trial % 4 == 0 ? 3.0f : 1.0f);
    book.Quantize(x, out);
    float got = 0;
    for (int i = 0; i < 8; ++i) got += (x[i] - out[i]) * (x[i] - out[i]);
    float best = 1e30f;
    for (const auto& p : all) {
      float d = 0;
      for (int i = 0; i < 8; ++i) d += (x[i] - p[i]) * (x[i] - p[i]);
      best = std::min(best, d);
    }
    EXPECT_NEAR(got, best, 1e-4f * (1 + best)) << trial;
  }
}

// Inputs for the search tests: Gaussian at the scales the quantizer feeds
// the codebook, heavy tails, codewords themselves and points halfway between
// two codewords (ties), plus huge and out-of-range values.
std::vector<float> SearchInputs(const E8PCodebook& book, int count) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> any_code(0, 65535);
  std::vector<float> xs(static_cast<size_t>(count) * 8);
  for (int v = 0; v < count; ++v) {
    float* x = &xs[static_cast<size_t>(v) * 8];
    const int kind = v % 5;
    if (kind <= 2) {
      const float scale = kind == 0 ? 1.03f : kind == 1 ? 0.4f : 3.0f;
      for (int i = 0; i < 8; ++i) x[i] = normal(rng) * scale;
      if (v % 1000 == 2) x[v % 8] = 1e6f;  // beyond the rounding's range
    } else {
      float a[8], b[8];
      book.Decode(static_cast<uint16_t>(any_code(rng)), a);
      book.Decode(static_cast<uint16_t>(any_code(rng)), b);
      for (int i = 0; i < 8; ++i) x[i] = kind == 3 ? a[i] : 0.5f * (a[i] + b[i]);
    }
  }
  return xs;
}

float Dist2(const float* x, const float* p) {
  float d = 0;
  for (int i = 0; i < 8; ++i) d += (x[i] - p[i]) * (x[i] - p[i]);
  return d;
}

// The fast search (coset rounding, full search only where needed, batched)
// against the full search, vector by vector.
TEST(E8PTest, FastSearchEqualsFullSearch) {
  E8PCodebook book;
  constexpr int kCount = 200003;  // not a multiple of the batch or chunk
  const std::vector<float> xs = SearchInputs(book, kCount);
  std::vector<uint16_t> codes(kCount);
  std::vector<float> points(xs.size());
  book.QuantizeBatch(xs.data(), kCount, codes.data(), points.data());
  int differing_codes = 0;
  for (int v = 0; v < kCount; ++v) {
    const float* x = &xs[static_cast<size_t>(v) * 8];
    float full[8], decoded[8];
    const uint16_t c_full = book.QuantizeExhaustive(x, full);
    const float d_fast = Dist2(x, &points[static_cast<size_t>(v) * 8]);
    const float d_full = Dist2(x, full);
    ASSERT_NEAR(d_fast, d_full, 1e-5f * (1 + d_full)) << v;
    book.Decode(codes[v], decoded);
    ASSERT_EQ(Dist2(decoded, &points[static_cast<size_t>(v) * 8]), 0.0f) << "code and point agree";
    if (v % 5 == 3) {
      ASSERT_EQ(d_fast, 0.0f) << "a codeword is its own nearest point";
    }
    // Ties (the midpoints) may pick another codeword at the same distance;
    // continuous inputs pick the same one.
    if (v % 5 <= 2) differing_codes += codes[v] != c_full;
  }
  EXPECT_EQ(differing_codes, 0);
  // The single-vector entry point is the same search.
  float one[8];
  EXPECT_EQ(book.Quantize(&xs[8 * 12345], one), codes[12345]);
}

// Every instruction set's kernels give the same codes, bit for bit (those
// this CPU lacks fall back and are reported as skipped by name).
TEST(E8PTest, EveryInstructionSetGivesTheSameCodes) {
  const E8PCodebook reference(E8PIsa::kBaseline);
  ASSERT_EQ(reference.isa(), E8PIsa::kBaseline);
  constexpr int kCount = 50000;
  const std::vector<float> xs = SearchInputs(reference, kCount);
  std::vector<uint16_t> want(kCount), got(kCount);
  std::vector<float> p_want(xs.size()), p_got(xs.size());
  reference.QuantizeBatch(xs.data(), kCount, want.data(), p_want.data());
  for (E8PIsa isa : {E8PIsa::kAvx2, E8PIsa::kAvx512}) {
    const E8PCodebook book(isa);
    if (book.isa() != isa) {
      std::printf("this CPU lacks %s; not compared\n", isa == E8PIsa::kAvx2 ? "AVX2" : "AVX-512");
      continue;
    }
    book.QuantizeBatch(xs.data(), kCount, got.data(), p_got.data());
    EXPECT_EQ(got, want);
    EXPECT_EQ(p_got, p_want);
  }
}

TEST(E8OneBitTest, TableAndSearch) {
  E8OneBitTable table;
  std::set<std::array<float, 8>> distinct(table.points().begin(), table.points().end());
  EXPECT_EQ(distinct.size(), 256u);
  int within2 = 0;
  for (const auto& p : table.points()) {
    float n2 = 0;
    for (float v : p) n2 += v * v;
    within2 += n2 <= 2.0f;
  }
  EXPECT_EQ(within2, 241);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  for (int trial = 0; trial < 100; ++trial) {
    float x[8], out[8];
    for (float& v : x) v = normal(rng);
    table.Quantize(x, out);
    float got = 0, best = 1e30f;
    for (int i = 0; i < 8; ++i) got += (x[i] - out[i]) * (x[i] - out[i]);
    for (const auto& p : table.points()) {
      float d = 0;
      for (int i = 0; i < 8; ++i) d += (x[i] - p[i]) * (x[i] - p[i]);
      best = std::min(best, d);
    }
    EXPECT_NEAR(got, best, 1e-5f);
  }
}

// The batched one-bit search (3-bit codes' second stage) against the
// single-vector search, on every instruction set this CPU has.
TEST(E8OneBitTest, BatchEqualsSingleOnEveryInstructionSet) {
  constexpr int kCount = 20011;
  std::mt19937 rng(13);
  std::normal_distribution<float> normal;
  std::vector<float> xs(kCount * 8);
  for (float& v : xs) v = normal(rng);
  // A tie: (1/2, 1/2, 0, ...) is as far from the origin as from e_0 + e_1.
  for (int i = 0; i < 8; ++i) xs[8 * 7 + i] = i < 2 ? 0.5f : 0.0f;
  const E8OneBitTable single;
  std::vector<uint8_t> want(kCount);
  std::vector<float> p_want(xs.size());
  for (int v = 0; v < kCount; ++v) want[v] = single.Quantize(&xs[8 * v], &p_want[8 * v]);
  for (E8PIsa isa : {E8PIsa::kBaseline, E8PIsa::kAvx2, E8PIsa::kAvx512}) {
    const E8OneBitTable table(isa);
    if (table.isa() != isa) {
      std::printf("this CPU lacks %s; not compared\n", isa == E8PIsa::kAvx2 ? "AVX2" : "AVX-512");
      continue;
    }
    std::vector<uint8_t> got(kCount);
    std::vector<float> p_got(xs.size());
    table.QuantizeBatch(xs.data(), kCount, got.data(), p_got.data());
    EXPECT_EQ(got, want);
    EXPECT_EQ(p_got, p_want);
  }
}

}  // namespace
}  // namespace caldera::quant
