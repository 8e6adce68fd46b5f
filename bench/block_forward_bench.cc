// Block forward throughput against this machine's measured SGEMM rate, and peak
// memory, on synthetic (random, generated in memory) weights.
//
//   block_forward_bench [--hidden 4096] [--intermediate 11008] [--heads 32]
//                       [--kv-heads 32] [--seqs 8] [--seq-len 2048] [--calibrate 1]
//                       [--device cpu|cuda:N]
//
// Defaults are the Llama-2-7B block with 8 x 2048 tokens. With --calibrate 1 the
// four Hessians are accumulated too (float32 SSYRK/SGEMM per sequence, summed
// in float64), as a calibration task does; --calibrate 2 uses the float64
// reference products instead (the path before float32 accumulation). The last
// line counts all work (forward and Hessians) per CPU-second against SGEMM's
// per CPU-second, a ratio that stays steady on a loaded machine. With
// --device the block runs through that compute backend's runner
// (ComputeBackend::PrepareBlock; cuda:N is experimental) and the figures are
// wall-clock TFLOP/s and the calibration time of 32 such blocks over 256 x
// 4096 tokens extrapolated from the run's tokens/s (the defaults: 7B-shaped).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "bench/sgemm_rate.h"
#include "core/backend/device.h"
#include "core/model/llama_block.h"

namespace {

using caldera::model::RowMatrixF;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

RowMatrixF Random(int64_t r, int64_t c, double scale, std::mt19937* rng) {
  std::uniform_real_distribution<float> d(-static_cast<float>(scale), static_cast<float>(scale));
  RowMatrixF m(r, c);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = d(*rng);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t hidden = 4096, inter = 11008, heads = 32, kv_heads = 32, seqs = 8, seq_len = 2048;
  int calibrate = 1;
  std::string device;
  for (int i = 1; i + 1 < argc; i += 2) {
    const int64_t v = std::strtoll(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--device")) device = argv[i + 1];
    if (!std::strcmp(argv[i], "--hidden")) hidden = v;
    if (!std::strcmp(argv[i], "--intermediate")) inter = v;
    if (!std::strcmp(argv[i], "--heads")) heads = v;
    if (!std::strcmp(argv[i], "--kv-heads")) kv_heads = v;
    if (!std::strcmp(argv[i], "--seqs")) seqs = v;
    if (!std::strcmp(argv[i], "--seq-len")) seq_len = v;
    if (!std::strcmp(argv[i], "--calibrate")) calibrate = static_cast<int>(v);
  }
  caldera::model::ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = 1;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = 32000;
  c.max_position_embeddings = seq_len;
  c.rms_norm_eps = 1e-5;

  if (!device.empty()) {
    // Checked before the weights are made: a bad --device fails at once.
    absl::StatusOr<caldera::backend::DeviceChoice> choice = caldera::backend::ParseDevice(device);
    if (!choice.ok()) {
      std::fprintf(stderr, "block_forward_bench: %s\n", choice.status().ToString().c_str());
      return 2;
    }
  }
  const double sgemm = device.empty() ? caldera::bench::MeasureSgemmGflops() : 0.0;
  if (device.empty()) {
    std::printf("machine SGEMM (2048^3, Eigen on OpenBLAS): %.1f GFLOP/s\n", sgemm);
  }

  std::mt19937 rng(1);
  const int64_t q_out = heads * c.head_dim, kv_out = kv_heads * c.head_dim;
  const double s_in = 1.0 / std::sqrt(static_cast<double>(hidden));
  caldera::model::BlockWeights w;
  w.input_norm = caldera::model::VectorF::Ones(hidden);
  w.post_norm = caldera::model::VectorF::Ones(hidden);
  w.q = Random(q_out, hidden, s_in, &rng);
  w.k = Random(kv_out, hidden, s_in, &rng);
  w.v = Random(kv_out, hidden, s_in, &rng);
  w.o = Random(hidden, q_out, s_in, &rng);
  w.gate = Random(inter, hidden, s_in, &rng);
  w.up = Random(inter, hidden, s_in, &rng);
  w.down = Random(hidden, inter, 1.0 / std::sqrt(static_cast<double>(inter)), &rng);
  RowMatrixF hidden_states = Random(seqs * seq_len, hidden, 1.0, &rng);
  const caldera::model::RopeTable rope = caldera::model::MakeRopeTable(c, seq_len);
  caldera::model::BlockHessians h;
  if (calibrate) h = caldera::model::BlockHessians::Zeros(c);
  h.float64_reference = calibrate == 2;
  const double tokens = static_cast<double>(seqs * seq_len);
  const double linear = 2.0 * tokens *
                        (static_cast<double>(hidden) * (q_out + 2 * kv_out) +
                         static_cast<double>(q_out) * hidden + 3.0 * hidden * inter);
  const double attention = 4.0 * seqs * static_cast<double>(seq_len) * seq_len * c.head_dim * heads;
  const double syrk =
      calibrate ? tokens * (2.0 * hidden * hidden + 1.0 * q_out * q_out + 1.0 * inter * inter)
                : 0.0;  // n^2 per token each (lower triangle, multiply-add)
  if (!device.empty()) {
    absl::StatusOr<caldera::backend::ResolvedDevice> resolved =
        caldera::backend::ResolveDevice(*caldera::backend::ParseDevice(device));
    if (!resolved.ok()) {
      std::fprintf(stderr, "block_forward_bench: %s\n", resolved.status().ToString().c_str());
      return 2;
    }
    absl::StatusOr<std::unique_ptr<caldera::backend::ComputeBackend>> be =
        caldera::backend::CreateBackend(resolved->name);
    if (!be.ok()) {
      std::fprintf(stderr, "block_forward_bench: %s\n", be.status().ToString().c_str());
      return 2;
    }
    const auto p0 = Clock::now();
    absl::StatusOr<std::unique_ptr<caldera::backend::BlockRunner>> runner =
        (*be)->PrepareBlock(c, w, seq_len, calibrate ? &h : nullptr);
    if (!runner.ok()) {
      std::fprintf(stderr, "block_forward_bench: %s\n", runner.status().ToString().c_str());
      return 1;
    }
    const double prepare_secs = Seconds(p0);
    const auto t0 = Clock::now();
    RowMatrixF chunk;
    for (int64_t s = 0; s < seqs; ++s) {
      chunk = hidden_states.middleRows(s * seq_len, seq_len);
      if (absl::Status st = (*runner)->Forward(&chunk); !st.ok()) {
        std::fprintf(stderr, "block_forward_bench: %s\n", st.ToString().c_str());
        return 1;
      }
      hidden_states.middleRows(s * seq_len, seq_len) = chunk;
    }
    if (absl::Status st = (*runner)->Flush(); !st.ok()) {
      std::fprintf(stderr, "block_forward_bench: %s\n", st.ToString().c_str());
      return 1;
    }
    const double secs = Seconds(t0);
    const double job_tokens = 256.0 * 4096.0;
    std::printf("block %lldx%lld (heads %lld/%lld), %lld x %lld tokens on %s, hessians %s\n",
                static_cast<long long>(hidden), static_cast<long long>(inter),
                static_cast<long long>(heads), static_cast<long long>(kv_heads),
                static_cast<long long>(seqs), static_cast<long long>(seq_len),
                resolved->name.c_str(), calibrate ? "on" : "off");
    std::printf(
        "  prepare %.2f s; forward%s %.2f s (with transfers), %.0f tokens/s, %.1f TFLOP/s\n",
        prepare_secs, calibrate ? " + Hessians + flush" : "", secs, tokens / secs,
        (linear + attention + syrk) / secs / 1e12);
    std::printf(
        "  extrapolated calibration of 32 such blocks x 256 x 4096 tokens (one forward per "
        "block, at this run's tokens/s): %.1f min\n",
        32.0 * job_tokens / (tokens / secs) / 60.0);
    return 0;
  }
  const double sgemm_cpu = caldera::bench::SgemmGflopsPerCpuSecond();
  const double cpu0 = caldera::bench::ProcessCpuSeconds();

  const auto t0 = Clock::now();
  RowMatrixF chunk;
  for (int64_t s = 0; s < seqs; ++s) {
    chunk = hidden_states.middleRows(s * seq_len, seq_len);
    caldera::model::BlockForward(c, w, rope, seq_len, &chunk, calibrate ? &h : nullptr);
    hidden_states.middleRows(s * seq_len, seq_len) = chunk;
  }
  const double secs = Seconds(t0);
  const double cpu_secs = caldera::bench::ProcessCpuSeconds() - cpu0;
  const double gflops = (linear + attention) / secs / 1e9;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("block %lldx%lld (heads %lld/%lld), %lld x %lld tokens, hessians %s\n",
              static_cast<long long>(hidden), static_cast<long long>(inter),
              static_cast<long long>(heads), static_cast<long long>(kv_heads),
              static_cast<long long>(seqs), static_cast<long long>(seq_len),
              calibrate == 2   ? "on (float64 reference: cast + DSYRK)"
              : calibrate == 1 ? "on (float32 SSYRK/SGEMM, summed in float64)"
                               : "off");
  std::printf("  time %.2f s, %.0f tokens/s\n", secs, tokens / secs);
  std::printf(
      "  float32 GFLOP/s %.1f (linear %.2f TFLOP + attention %.2f TFLOP) = %.0f%% of SGEMM\n",
      gflops, linear / 1e12, attention / 1e12, 100.0 * gflops / sgemm);
  if (calibrate) {
    std::printf("  plus Hessian SYRK work %.2f TFLOP (counted separately)\n", syrk / 1e12);
  }
  const double all = (linear + attention + syrk) / cpu_secs / 1e9;
  std::printf(
      "  all work (forward + Hessians) per CPU-second: %.1f GFLOP over %.1f CPU-s = %.0f%% "
      "of SGEMM's %.1f GFLOP per CPU-second\n",
      all, cpu_secs, 100.0 * all / sgemm_cpu, sgemm_cpu);
  std::printf(
      "  peak RSS %.2f GiB (weights %.2f GiB, hidden states %.2f GiB)\n", ru.ru_maxrss / 1048576.0,
      4.0 * (static_cast<double>(hidden) * (2 * q_out + 2 * kv_out) + 3.0 * hidden * inter) /
          (1 << 30),
      4.0 * tokens * hidden / (1 << 30));
  return 0;
}
