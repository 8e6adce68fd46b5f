// Decomposition quality and speed: method x bits x rank -> weighted error,
// bits/param, seconds, peak memory, and GFLOP/s against this machine's SGEMM
// measured in the same run.
//
//   decompose_bench [--size MxN]... [--iters N] [--lplr-iters N] [--fixture DIR HESSIAN_DIR]
//
// Synthetic matrices have an LLM-like decaying spectrum; their Hessians are
// correlated (X = Z (I + 0.3 M/sqrt n)) with every 17th input channel an
// outlier (x8). With --fixture, the stories260K layer-0 matrices are run with
// Hessians from `calderactl calibrate` (layer-0.hessians.safetensors).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/sgemm_rate.h"
#include "core/decompose/caldera.h"
#include "core/format/safetensors.h"

namespace {

using caldera::quant::MatrixF;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Problem {
  std::string name;
  MatrixF w;
  Eigen::MatrixXd h;
};

Problem Synthetic(int64_t m, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  const int64_t r = std::min(m, n);
  MatrixF a(m, r), b(r, n);
  for (int64_t i = 0; i < a.size(); ++i) a.data()[i] = normal(rng);
  for (int64_t i = 0; i < b.size(); ++i) b.data()[i] = normal(rng);
  for (int64_t i = 0; i < r; ++i) a.col(i) *= 1.0f / std::sqrt(1.0f + static_cast<float>(i));
  MatrixF w = a * b / static_cast<float>(std::sqrt(static_cast<double>(m) * r));
  const int64_t tokens = 2 * n;
  MatrixF z(tokens, n), mix(n, n);
  for (int64_t i = 0; i < z.size(); ++i) z.data()[i] = normal(rng);
  for (int64_t i = 0; i < mix.size(); ++i) mix.data()[i] = normal(rng);
  MatrixF x = z * (MatrixF::Identity(n, n) + 0.3f * mix / std::sqrt(static_cast<float>(n)));
  for (int64_t c = 0; c < n; c += 17) x.col(c) *= 8.0f;
  MatrixF h = x.transpose() * x / static_cast<float>(tokens);
  return {std::to_string(m) + "x" + std::to_string(n) + " synthetic", w, h.cast<double>()};
}

bool LoadFixture(const std::string& model_dir, const std::string& hess_dir,
                 std::vector<Problem>* out) {
  auto model = caldera::SafetensorsReader::OpenFile(model_dir + "/model.safetensors");
  auto hess = caldera::SafetensorsReader::OpenFile(hess_dir + "/layer-0.hessians.safetensors");
  if (!model.ok() || !hess.ok()) return false;
  const std::pair<const char*, const char*> mats[] = {{"self_attn.q_proj", "q_proj"},
                                                      {"self_attn.o_proj", "o_proj"},
                                                      {"mlp.gate_proj", "gate_proj"},
                                                      {"mlp.down_proj", "down_proj"}};
  for (auto [module, hname] : mats) {
    auto w =
        (*model)->ReadAs(std::string("model.layers.0.") + module + ".weight", caldera::DType::kF32);
    auto h = (*hess)->ReadAs(hname, caldera::DType::kF64);
    if (!w.ok() || !h.ok()) return false;
    Problem p;
    p.name = std::string("stories260K L0 ") + module;
    p.w = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        w->data<float>().data(), w->dim(0), w->dim(1));
    p.h = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        h->data<double>().data(), h->dim(0), h->dim(1));
    out->push_back(std::move(p));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<int64_t, int64_t>> sizes;
  int iters = 15, lplr = 10;
  std::string fixture, fixture_h;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--size") && i + 1 < argc) {
      int64_t m = 0, n = 0;
      std::sscanf(argv[++i], "%ldx%ld", &m, &n);
      sizes.emplace_back(m, n);
    } else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) {
      iters = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--lplr-iters") && i + 1 < argc) {
      lplr = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--fixture") && i + 2 < argc) {
      fixture = argv[++i];
      fixture_h = argv[++i];
    }
  }
  if (sizes.empty() && fixture.empty()) sizes.emplace_back(1024, 1024);
  const double sgemm = caldera::bench::MeasureSgemmGflops();
  std::printf("machine SGEMM (2048^3): %.1f GFLOP/s; iters %d, lplr-iters %d\n", sgemm, iters,
              lplr);
  std::vector<Problem> problems;
  if (!fixture.empty() && !LoadFixture(fixture, fixture_h, &problems)) {
    std::fprintf(stderr, "cannot load the fixture matrices or Hessians\n");
    return 1;
  }
  for (auto [m, n] : sizes) problems.push_back(Synthetic(m, n, 7));

  struct Config {
    const char* method;
    const char* quantizer;
    int q_bits;
    int64_t rank;
  };
  const Config configs[] = {{"rtn", "e8p", 2, 0},      {"rtn", "e8p", 3, 0},
                            {"ldlq", "uniform", 2, 0}, {"ldlq", "e8p", 2, 0},
                            {"ldlq", "e8p", 3, 0},     {"caldera", "e8p", 2, 64}};
  std::printf("%-28s %-8s %-8s %5s %4s %10s %9s %8s %9s %8s\n", "matrix", "method", "quant",
              "qbits", "rank", "w.rel.err", "bits/par", "seconds", "peak MiB", "GFLOP/s");
  for (const Problem& p : problems) {
    const double m = static_cast<double>(p.w.rows()), n = static_cast<double>(p.w.cols());
    for (const Config& c : configs) {
      caldera::decompose::DecomposeOptions o;
      o.method = c.method;
      o.rank = std::min<int64_t>(c.rank, std::min(p.w.rows(), p.w.cols()) / 4);
      o.q_spec = caldera::quant::SpecFor(c.quantizer, c.q_bits, 128);
      o.lr_spec = caldera::quant::SpecFor("e8p", 4, 128);
      o.iters = iters;
      o.lplr_iters = lplr;
      const auto t0 = Clock::now();
      auto r = caldera::decompose::Decompose(p.w, p.h, o);
      const double secs = Seconds(t0);
      if (!r.ok()) {
        std::printf("%-28s %-8s failed: %s\n", p.name.c_str(), c.method,
                    std::string(r.status().message()).c_str());
        continue;
      }
      // FLOP model of the BLAS-3 work: per Q step the LDLQ feedback (m n^2) and
      // the error evaluation (2 m n^2); per LR step A·V and A·H (4 m n^2) and the
      // error (2 m n^2); eigh (~9 n^3) once.
      const double steps = static_cast<double>(r->history.size());
      double flops = steps * 3 * m * n * n;
      if (o.method == std::string("caldera")) flops += steps / 2 * 4 * m * n * n + 9 * n * n * n;
      struct rusage ru {};
      getrusage(RUSAGE_SELF, &ru);
      std::printf("%-28s %-8s %-8s %5d %4ld %10.5f %9.4f %8.2f %9.0f %8.1f\n", p.name.c_str(),
                  c.method, c.quantizer, c.q_bits, static_cast<long>(o.rank),
                  r->weighted_relative_error, r->bits_per_param, secs, ru.ru_maxrss / 1024.0,
                  flops / secs / 1e9);
    }
  }
  std::printf(
      "(peak MiB is the process high-water mark so far; (m*n + n^2)*4 bytes for the "
      "largest matrix = %.0f MiB)\n",
      (problems.back().w.size() + problems.back().h.size()) * 4.0 / 1048576.0);
  return 0;
}
