// Nearest-codeword search of the E8P codebook: ns per 8-dimensional vector
// for E8PCodebook::QuantizeBatch (coset rounding 16 vectors at a time, the
// full searches left over batched 16 at a time) against QuantizeExhaustive
// (all 256 patterns, both shifts, one vector at a time), in one run, on the
// inputs the 2-bit and 4-bit quantizers feed it.
//
//   build/bench/e8p_search_bench [--vectors N] [--isa avx512|avx2|baseline]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/quant/e8p.h"

namespace {

using caldera::quant::E8PCodebook;

template <typename F>
double NsPerVector(size_t count, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
         static_cast<double>(count);
}

}  // namespace

int main(int argc, char** argv) {
  size_t vectors = 1 << 20;
  caldera::quant::E8PIsa isa = caldera::quant::E8PIsa::kAuto;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--vectors") == 0) vectors = std::strtoull(argv[++i], nullptr, 10);
    if (std::strcmp(argv[i], "--isa") == 0) {
      const std::string v = argv[++i];
      isa = v == "avx512" ? caldera::quant::E8PIsa::kAvx512
            : v == "avx2" ? caldera::quant::E8PIsa::kAvx2
                          : caldera::quant::E8PIsa::kBaseline;
    }
  }
  const E8PCodebook book(isa);
  std::printf("batched kernels: %s\n", book.isa() == caldera::quant::E8PIsa::kAvx512 ? "AVX-512"
                                       : book.isa() == caldera::quant::E8PIsa::kAvx2 ? "AVX2"
                                                                                     : "baseline");
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.03f);  // the 2-bit scale
  std::vector<float> stage1(vectors * 8), stage2(vectors * 8), out(8);
  for (float& v : stage1) v = normal(rng);
  // The 4-bit quantizer's second stage: the first stage's residual times 3.45.
  for (size_t k = 0; k < vectors; ++k) {
    book.QuantizeExhaustive(&stage1[8 * k], out.data());
    for (int i = 0; i < 8; ++i) stage2[8 * k + i] = (stage1[8 * k + i] - out[i]) * 3.45f;
  }
  std::printf("%-28s %12s %12s %8s %10s\n", "input", "batch ns/vec", "full ns/vec", "speedup",
              "same code");
  for (const auto& [name, data] :
       {std::pair<const char*, const std::vector<float>*>{"gaussian, 2-bit scale", &stage1},
        {"4-bit residual stage", &stage2}}) {
    std::vector<uint16_t> fast(vectors), full(vectors);
    std::vector<float> points(data->size());
    float sink[8];
    const double t_fast = NsPerVector(vectors, [&] {
      // In chunks of 4096 vectors, as the quantizer calls it for a block.
      for (size_t k = 0; k < vectors; k += 4096) {
        const size_t n = std::min<size_t>(4096, vectors - k);
        book.QuantizeBatch(&(*data)[8 * k], static_cast<int64_t>(n), &fast[k], &points[8 * k]);
      }
    });
    const double t_full = NsPerVector(vectors, [&] {
      for (size_t k = 0; k < vectors; ++k) full[k] = book.QuantizeExhaustive(&(*data)[8 * k], sink);
    });
    size_t same = 0;
    for (size_t k = 0; k < vectors; ++k) same += fast[k] == full[k];
    std::printf("%-28s %12.1f %12.1f %7.2fx %9.4f%%\n", name, t_fast, t_full, t_full / t_fast,
                100.0 * static_cast<double>(same) / static_cast<double>(vectors));
  }
  return 0;
}
