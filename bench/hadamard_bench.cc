// Time of the two-sided randomized Hadamard transform of an m × n weight
// (W̃ = Had_mᵀ·diag(SV)·W·diag(SU)·Had_n) against one SGEMM of the same shape,
// (m × n)·(n × n) — what applying a dense Had_n would cost — in the same run.
//
//   build/bench/hadamard_bench [--size MxN]...
// Sizes that are not 2^k·K for a supported K are padded (SupportedSizeAtLeast).
#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "core/transform/randomized_hadamard.h"

namespace {

template <typename F>
double BestSeconds(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<int64_t, int64_t>> sizes;
  for (int i = 1; i + 1 < argc; ++i) {
    long long m = 0, n = 0;
    if (std::strcmp(argv[i], "--size") == 0 && std::sscanf(argv[i + 1], "%lldx%lld", &m, &n) == 2) {
      sizes.emplace_back(m, n);
      ++i;
    } else {
      std::fprintf(stderr, "usage: %s [--size MxN]...\n", argv[0]);
      return 2;
    }
  }
  if (sizes.empty()) sizes = {{4096, 4096}, {11008, 4096}};
  std::printf("%-14s %-14s %10s %10s %12s %8s\n", "shape", "transformed", "rht_s", "sgemm_s",
              "sgemm/rht", "K(m,n)");
  for (auto [m0, n0] : sizes) {
    const int64_t m = caldera::transform::SupportedSizeAtLeast(m0);
    const int64_t n = caldera::transform::SupportedSizeAtLeast(n0);
    absl::StatusOr<caldera::transform::RandomizedHadamard> t =
        caldera::transform::RandomizedHadamard::Create(m, n, 1);
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    const Eigen::MatrixXf w = Eigen::MatrixXf::Random(m, n);
    Eigen::MatrixXf out;
    const double rht = BestSeconds(2, [&] { out = t->TransformWeight(w); });
    // The same-shaped SGEMM: (m × n) · (n × n), what a dense W·Had_n would cost.
    const Eigen::MatrixXf b = Eigen::MatrixXf::Random(n, n);
    Eigen::MatrixXf c(m, n);
    const double gemm = BestSeconds(2, [&] { c.noalias() = w * b; });
    char shape[32], padded[32], ks[32];
    std::snprintf(shape, sizeof shape, "%lldx%lld", (long long)m0, (long long)n0);
    std::snprintf(padded, sizeof padded, "%lldx%lld", (long long)m, (long long)n);
    std::snprintf(ks, sizeof ks, "%d,%d", caldera::transform::HadamardTransform::Create(m)->order(),
                  caldera::transform::HadamardTransform::Create(n)->order());
    std::printf("%-14s %-14s %10.3f %10.3f %12.2f %8s\n", shape, padded, rht, gemm, gemm / rht, ks);
  }
  return 0;
}
