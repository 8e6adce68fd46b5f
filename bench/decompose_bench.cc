// Decomposition quality and speed: method x bits x rank -> weighted error,
// bits/param, seconds (and how many of them the codeword searches took), peak
// memory, and GFLOP/s against this machine's SGEMM measured in the same run:
// over the whole run (%SGEMM) and over the run minus the searches (%dense,
// the heavy phases: products, factorizations, transforms and their glue).
//
//   decompose_bench [--size MxN]... [--iters N] [--lplr-iters N] [--fixture DIR HESSIAN_DIR]
//                   [--methods rtn,ldlq,caldera,caldera-dd] [--threads N] [--device D]
//
// --device cuda:N (or auto): every configuration runs twice, on the CPU
// backend and on the device, one row each (the device's row labelled
// "@cuda:N", its %SGEMM still against the CPU's SGEMM). The CUDA backend is
// experimental: not yet run on a GPU. The device's rows also give %DEV, their
// GFLOP/s against the device's own float32 GEMM rate measured in the same
// run (cuda::MeasureDeviceSgemmGflops). When the three Llama-2-7B shapes
// were run (--size 4096x4096 --size 11008x4096 --size 4096x11008), the last
// lines extrapolate a 7B-shaped job's decompose time per backend and method:
// 32 blocks x (4 x 4096^2 + 2 x 11008x4096 + 4096x11008), one task at a time
// (block_forward_bench --device gives the calibration's share).
//
// --threads: threads for the codeword searches (DecomposeOptions::threads);
// the dense work uses the BLAS library's threads (OPENBLAS_NUM_THREADS), and
// the SGEMM yardstick is measured with those same threads.
//
// Peak memory is per run: the kernel's high-water mark (VmHWM) is reset before
// each decomposition (/proc/self/clear_refs, after malloc_trim) and the
// resident size at that point, which holds the inputs, is subtracted; "x(mn+n2)" divides that extra
// memory by (m·n + n²)·4 bytes.
// Synthetic matrices have an LLM-like decaying spectrum; their Hessians are
// correlated (X = Z (I + 0.3 M/sqrt n)) with every 17th input channel an
// outlier (x8). With --fixture, the stories260K layer-0 matrices are run with
// Hessians from `calderactl calibrate` (layer-0.hessians.safetensors).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench/sgemm_rate.h"
#include "core/backend/device.h"
#if defined(CALDERA_HAVE_CUDA_BACKEND)
#include "core/backend/cuda/cuda_backend.h"
#endif
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

// A field of /proc/self/status in bytes ("VmRSS", "VmHWM"), or -1.
int64_t StatusBytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atoll(line.c_str() + field.size() + 1) * 1024;
  }
  return -1;
}

// Returns freed heap memory to the kernel, then resets VmHWM to the current
// resident size; false where the kernel refuses.
bool ResetPeakRss() {
  malloc_trim(0);
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<int64_t, int64_t>> sizes;
  int iters = 15, lplr = 10, threads = 1;
  std::string fixture, fixture_h, methods = "rtn,ldlq,caldera", device = "cpu";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--size") && i + 1 < argc) {
      int64_t m = 0, n = 0;
      std::sscanf(argv[++i], "%ldx%ld", &m, &n);
      sizes.emplace_back(m, n);
    } else if (!std::strcmp(argv[i], "--methods") && i + 1 < argc) {
      methods = argv[++i];
    } else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) {
      iters = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--lplr-iters") && i + 1 < argc) {
      lplr = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) {
      device = argv[++i];
    } else if (!std::strcmp(argv[i], "--fixture") && i + 2 < argc) {
      fixture = argv[++i];
      fixture_h = argv[++i];
    }
  }
  if (sizes.empty() && fixture.empty()) sizes.emplace_back(1024, 1024);
  // The second backend of every configuration (none with --device cpu).
  std::unique_ptr<caldera::backend::ComputeBackend> other;
  {
    absl::StatusOr<caldera::backend::DeviceChoice> choice = caldera::backend::ParseDevice(device);
    absl::StatusOr<caldera::backend::ResolvedDevice> resolved =
        choice.ok() ? caldera::backend::ResolveDevice(*choice)
                    : absl::StatusOr<caldera::backend::ResolvedDevice>(choice.status());
    if (!resolved.ok()) {
      std::fprintf(stderr, "decompose_bench: %s\n",
                   std::string(resolved.status().message()).c_str());
      return 2;
    }
    if (!resolved->note.empty())
      std::fprintf(stderr, "decompose_bench: %s\n", resolved->note.c_str());
    if (resolved->name != "cpu") {
      auto be = caldera::backend::CreateBackend(resolved->name);
      if (!be.ok()) {
        std::fprintf(stderr, "decompose_bench: %s\n", std::string(be.status().message()).c_str());
        return 2;
      }
      other = *std::move(be);
    }
  }
  double device_sgemm = 0;  // GFLOP/s of the device's own SGEMM, when there is one
#if defined(CALDERA_HAVE_CUDA_BACKEND)
  if (other != nullptr && other->Name().rfind("cuda:", 0) == 0) {
    absl::StatusOr<double> rate =
        caldera::cuda::MeasureDeviceSgemmGflops(std::atoi(other->Name().c_str() + 5));
    if (rate.ok()) {
      device_sgemm = *rate;
      std::printf("device SGEMM (8192^3, on %s, no TF32): %.1f GFLOP/s\n", other->Name().c_str(),
                  device_sgemm);
    } else {
      std::fprintf(stderr, "decompose_bench: device SGEMM: %s\n", rate.status().ToString().c_str());
    }
  }
#endif
  const double sgemm = caldera::bench::MeasureSgemmGflops();
  std::printf("machine SGEMM (2048^3): %.1f GFLOP/s; search threads %d, iters %d, lplr-iters %d\n",
              sgemm, threads, iters, lplr);
  std::vector<Problem> problems;
  if (!fixture.empty() && !LoadFixture(fixture, fixture_h, &problems)) {
    std::fprintf(stderr, "cannot load the fixture matrices or Hessians\n");
    return 1;
  }
  for (auto [m, n] : sizes) problems.push_back(Synthetic(m, n, 7));

  struct Config {
    const char* label;  // --methods name
    const char* method;
    const char* quantizer;
    int q_bits;
    int64_t rank;
    bool downdate;
  };
  const Config configs[] = {
      {"rtn", "rtn", "e8p", 2, 0, false},           {"rtn", "rtn", "e8p", 3, 0, false},
      {"ldlq", "ldlq", "uniform", 2, 0, false},     {"ldlq", "ldlq", "e8p", 2, 0, false},
      {"ldlq", "ldlq", "e8p", 3, 0, false},         {"caldera", "caldera", "e8p", 2, 64, false},
      {"caldera-dd", "caldera", "e8p", 2, 64, true}};
  std::printf("%-28s %-10s %-8s %5s %4s %10s %9s %8s %8s %9s %9s %8s %6s %7s\n", "matrix", "method",
              "quant", "qbits", "rank", "w.rel.err", "bits/par", "seconds", "search s", "peak MiB",
              "x(mn+n2)", "GFLOP/s", "%SGEMM", "%dense");
  const std::string wanted = "," + methods + ",";
  // Seconds per (backend-labelled method, "MxN") of the synthetic runs.
  std::map<std::string, std::map<std::string, double>> seconds_of;
  for (const Problem& p : problems) {
    const double m = static_cast<double>(p.w.rows()), n = static_cast<double>(p.w.cols());
    for (const Config& c : configs) {
      if (wanted.find(std::string(",") + c.label + ",") == std::string::npos) continue;
      caldera::decompose::DecomposeOptions o;
      o.method = *caldera::decompose::ParseMethod(c.method);
      o.hessian_downdate = c.downdate;
      o.rank = std::min<int64_t>(c.rank, std::min(p.w.rows(), p.w.cols()) / 4);
      o.q_spec =
          caldera::quant::SpecFor(*caldera::quant::ParseQuantizer(c.quantizer), c.q_bits, 128);
      o.lr_spec = caldera::quant::SpecFor(caldera::quant::Quantizer::kE8p, 4, 128);
      o.iters = iters;
      o.lplr_iters = lplr;
      o.threads = threads;
      std::vector<caldera::backend::ComputeBackend*> backends = {nullptr};  // the CPU
      if (other != nullptr) backends.push_back(other.get());
      for (caldera::backend::ComputeBackend* be : backends) {
        o.backend = be;
        const std::string label = be == nullptr ? c.label : std::string(c.label) + "@" + be->Name();
        const bool peak_ok = ResetPeakRss();
        const int64_t rss0 = StatusBytes("VmRSS");
        const auto t0 = Clock::now();
        auto r = caldera::decompose::Decompose(p.w, p.h, o);
        const double secs = Seconds(t0);
        const double peak = peak_ok ? static_cast<double>(StatusBytes("VmHWM") - rss0) : -1;
        if (!r.ok()) {
          std::printf("%-28s %-8s failed: %s\n", p.name.c_str(), c.method,
                      std::string(r.status().message()).c_str());
          continue;
        }
        // The dense products and factorizations the run performed, as counted
        // by Decompose itself (DecomposeResult::blas3_flops).
        const double flops = r->blas3_flops;
        const double unit = (m * n + n * n) * 4.0;
        const double dense_secs = std::max(1e-9, secs - r->search_seconds);
        std::printf(
            "%-28s %-10s %-8s %5d %4ld %10.5f %9.4f %8.2f %8.2f %9.1f %9.2f %8.1f %5.0f%% "
            "%6.0f%%\n",
            p.name.c_str(), label.c_str(), c.quantizer, c.q_bits, static_cast<long>(o.rank),
            r->weighted_relative_error, r->bits_per_param, secs, r->search_seconds,
            peak / 1048576.0, peak / unit, flops / secs / 1e9, 100 * flops / secs / 1e9 / sgemm,
            100 * flops / dense_secs / 1e9 / sgemm);
        if (be != nullptr && device_sgemm > 0) {
          std::printf("%-28s %-10s %%DEV %.1f%% of the device's SGEMM (%.2f TFLOP/s achieved)\n",
                      "", label.c_str(), 100 * flops / secs / 1e9 / device_sgemm,
                      flops / secs / 1e12);
        }
        if (p.name.find("synthetic") != std::string::npos) {
          seconds_of[label][std::to_string(p.w.rows()) + "x" + std::to_string(p.w.cols())] = secs;
        }
      }
    }
  }
  for (const auto& [label, secs] : seconds_of) {
    const auto a = secs.find("4096x4096"), b = secs.find("11008x4096"), c = secs.find("4096x11008");
    if (a == secs.end() || b == secs.end() || c == secs.end()) continue;
    const double block = 4 * a->second + 2 * b->second + c->second;
    std::printf(
        "7B-shaped job, decompose tasks (%s): 32 x (4 x %.1f + 2 x %.1f + %.1f s) = %.1f min, "
        "one task at a time\n",
        label.c_str(), a->second, b->second, c->second, 32 * block / 60);
  }
  std::printf(
      "(peak MiB: memory the decomposition added above its inputs, -1 where the kernel cannot "
      "reset the high-water mark; GFLOP/s: the dense products and factorizations Decompose "
      "counted, over wall time; search s: time in the quantizers' codeword searches; %%dense: "
      "the same flops over the time outside those searches, against SGEMM)\n");
  return 0;
}
