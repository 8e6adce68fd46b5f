// This machine's SGEMM rate (Eigen on OpenBLAS, 2048³, best of 3), the yardstick
// every benchmark reports its GFLOP/s against.
#ifndef CALDERA_BENCH_SGEMM_RATE_H_
#define CALDERA_BENCH_SGEMM_RATE_H_

#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <ctime>

namespace caldera::bench {

inline double MeasureSgemmGflops() {
  const int n = 2048;
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
  c.noalias() = a * b;  // warm-up
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c.noalias() = a * b;
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

// CPU seconds this process has used (all threads).
inline double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// SGEMM GFLOP per CPU-second (2048^3, best of 3): on a shared machine the CPU
// time a computation got is a steadier yardstick than its wall time.
inline double SgemmGflopsPerCpuSecond() {
  const int n = 2048;
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
  c.noalias() = a * b;  // warm-up
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const double t0 = ProcessCpuSeconds();
    c.noalias() = a * b;
    best = std::min(best, ProcessCpuSeconds() - t0);
  }
  return 2.0 * n * n * n / best / 1e9;
}

}  // namespace caldera::bench

#endif  // CALDERA_BENCH_SGEMM_RATE_H_
