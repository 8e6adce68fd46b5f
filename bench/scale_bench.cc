// Sharded calibration at real size: calibrate(0, s) of a 7B-shaped model
// (Llama-2-7B block shapes, bf16, 2 blocks, random weights written by
// make-test-model's writer) for 1, 2 and 4 shards, each task in its own
// forked process so that its peak RSS is its own (wait4's ru_maxrss).
//
//   scale_bench [--dir DIR] [--hidden 4096] [--intermediate 11008] [--heads 32]
//               [--kv-heads 32] [--vocab 32000] [--samples 4,8] [--seq-len 512]
//               [--shards 1,2,4] [--parallel 0|1]
//
// Prints, per token count and shard count: each shard task's wall time and
// peak RSS, the wall time of the layer with one worker (shards one after
// another: their sum) and with N workers (the slowest shard), the tasks'
// GFLOP/s (block linears + causal attention + the four Hessian SYRKs) against
// the SGEMM rate measured in the same run (and per CPU-second against SGEMM's
// per CPU-second, steadier on a shared machine), and the per-task memory
// estimate (job/memory_estimate.h) beside the measured peak. With --parallel 1
// the shards of a layer run at once and the layer's wall time is measured.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/sgemm_rate.h"
#include "core/model/test_model.h"
#include "job/memory_estimate.h"
#include "model_io/model_inputs.h"
#include "storage/storage_options.h"
#include "worker/executors.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<int64_t> ParseList(const char* text) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t v = 0;
    if (absl::SimpleAtoi(part, &v) && v > 0) out.push_back(v);
  }
  return out;
}

struct TaskRun {
  double seconds = 0;
  double cpu_seconds = 0;  // user + system
  int64_t peak_rss = 0;    // bytes
  bool ok = false;
};

// Starts calibrate(0, shard) of `num_shards` in a child process; its pid.
pid_t StartShard(const std::string& model, const std::string& tokens, const std::string& out_dir,
                 int shard, int num_shards) {
  const pid_t pid = fork();
  if (pid == 0) {
    caldera::storage::StorageOptions options;
    absl::StatusOr<std::unique_ptr<caldera::model::Checkpoint>> ckpt =
        caldera::model_io::OpenCheckpointAt(model, options);
    if (!ckpt.ok()) {
      std::fprintf(stderr, "scale_bench: %s\n", std::string(ckpt.status().message()).c_str());
      _exit(1);
    }
    const std::string base = absl::StrCat(out_dir, "/s", shard, "-of-", num_shards);
    absl::StatusOr<caldera::worker::IoCounts> io = caldera::worker::CalibrateLayer(
        **ckpt, 0, tokens, base + ".hessians.safetensors", base + ".hidden.safetensors", options,
        nullptr, false, {}, shard, num_shards);
    if (!io.ok()) {
      std::fprintf(stderr, "scale_bench: %s\n", std::string(io.status().message()).c_str());
      _exit(1);
    }
    _exit(0);
  }
  return pid;
}

// Waits for a child StartShard started at `t0`.
TaskRun WaitShard(pid_t pid, Clock::time_point t0) {
  TaskRun run;
  int status = 0;
  struct rusage usage {};
  if (pid < 0 || wait4(pid, &status, 0, &usage) != pid) return run;
  run.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  run.peak_rss = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  run.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                    1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  run.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/caldera-scale-bench";
  int64_t hidden = 4096, inter = 11008, heads = 32, kv_heads = 32, vocab = 32000, seq_len = 512;
  std::vector<int64_t> samples_list = {4, 8}, shards_list = {1, 2, 4};
  bool parallel = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const int64_t v = std::strtoll(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    if (!std::strcmp(argv[i], "--hidden")) hidden = v;
    if (!std::strcmp(argv[i], "--intermediate")) inter = v;
    if (!std::strcmp(argv[i], "--heads")) heads = v;
    if (!std::strcmp(argv[i], "--kv-heads")) kv_heads = v;
    if (!std::strcmp(argv[i], "--vocab")) vocab = v;
    if (!std::strcmp(argv[i], "--seq-len")) seq_len = v;
    if (!std::strcmp(argv[i], "--samples")) samples_list = ParseList(argv[i + 1]);
    if (!std::strcmp(argv[i], "--shards")) shards_list = ParseList(argv[i + 1]);
    if (!std::strcmp(argv[i], "--parallel")) parallel = v != 0;
  }
  const std::string model = dir + "/model";
  caldera::model::TestModelOptions o;
  o.hidden_size = hidden;
  o.intermediate_size = inter;
  o.num_layers = 2;
  o.num_heads = heads;
  o.num_kv_heads = kv_heads;
  o.vocab_size = vocab;
  o.max_position_embeddings = std::max<int64_t>(4096, seq_len);
  o.dtype = caldera::DType::kBF16;
  std::filesystem::create_directories(dir);
  if (!std::filesystem::exists(model + "/config.json")) {
    std::printf("writing a %lld-hidden 2-block bf16 model to %s ...\n",
                static_cast<long long>(hidden), model.c_str());
    if (absl::Status s = caldera::model::WriteTestModel(o, model); !s.ok()) {
      std::fprintf(stderr, "scale_bench: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  absl::StatusOr<std::unique_ptr<caldera::model::Checkpoint>> ckpt =
      caldera::model_io::OpenCheckpointAt(model, caldera::storage::StorageOptions{});
  if (!ckpt.ok()) {
    std::fprintf(stderr, "scale_bench: %s\n", std::string(ckpt.status().message()).c_str());
    return 1;
  }
  const caldera::model::ModelConfig config = (*ckpt)->config();
  ckpt->reset();

  const double sgemm = caldera::bench::MeasureSgemmGflops();
  const double sgemm_cpu = caldera::bench::SgemmGflopsPerCpuSecond();
  std::printf("SGEMM rate (2048^3, this run): %.1f GFLOP/s, %.1f GFLOP per CPU-second\n", sgemm,
              sgemm_cpu);
  const double a = static_cast<double>(heads * (hidden / heads));
  const double k = static_cast<double>(kv_heads * (hidden / heads));
  const double h = static_cast<double>(hidden), i = static_cast<double>(inter);
  for (int64_t samples : samples_list) {
    const std::string tokens = absl::StrCat(dir, "/tokens-", samples, "x", seq_len, ".safetensors");
    if (!std::filesystem::exists(tokens)) {
      if (absl::Status s = caldera::model::WriteTestTokens(samples, seq_len, vocab, 7, tokens);
          !s.ok()) {
        std::fprintf(stderr, "scale_bench: %s\n", std::string(s.message()).c_str());
        return 1;
      }
    }
    for (int64_t n : shards_list) {
      if (n > samples) continue;
      const std::string out = absl::StrCat(dir, "/out-", samples, "-", n);
      std::filesystem::create_directories(out);
      double sum = 0, slowest = 0, cpu = 0;
      int64_t peak = 0;
      // --parallel 1: all shards at once (N workers on this machine), the
      // layer's wall time measured rather than taken from the slowest shard.
      std::vector<TaskRun> runs(n);
      const auto layer_t0 = Clock::now();
      if (parallel) {
        std::vector<pid_t> pids;
        for (int s = 0; s < n; ++s) {
          pids.push_back(StartShard(model, tokens, out, s, static_cast<int>(n)));
        }
        for (int s = 0; s < n; ++s) runs[s] = WaitShard(pids[s], layer_t0);
      } else {
        for (int s = 0; s < n; ++s) {
          const auto t0 = Clock::now();
          runs[s] = WaitShard(StartShard(model, tokens, out, s, static_cast<int>(n)), t0);
        }
      }
      const double layer_wall = std::chrono::duration<double>(Clock::now() - layer_t0).count();
      for (int s = 0; s < n; ++s) {
        const TaskRun& r = runs[s];
        if (!r.ok) {
          std::fprintf(stderr, "scale_bench: shard %d of %lld failed\n", s,
                       static_cast<long long>(n));
          return 1;
        }
        std::printf("  %lld x %lld tokens, shard %d/%lld: %.1f s, peak RSS %.2f GiB\n",
                    static_cast<long long>(samples), static_cast<long long>(seq_len), s + 1,
                    static_cast<long long>(n), r.seconds, r.peak_rss / double(1 << 30));
        sum += r.seconds;
        cpu += r.cpu_seconds;
        slowest = std::max(slowest, r.seconds);
        peak = std::max(peak, r.peak_rss);
      }
      std::filesystem::remove_all(out);
      const double t = static_cast<double>(samples * seq_len), L = static_cast<double>(seq_len);
      const double flops = 2 * t * (2 * h * a + 2 * h * k + 3 * h * i) + 2 * t * L * a +
                           t * (2 * h * h + a * a + i * i);
      const int64_t estimate = caldera::job::EstimateCalibrateBytes(
          config, caldera::job::LargestShardSamples(samples, static_cast<int>(n)), seq_len);
      std::printf(
          "%lld x %lld tokens, %lld shard(s): layer wall %.1f s on 1 worker, %.1f s on %lld "
          "(the slowest shard; speed-up %.2fx); %.1f GFLOP/s per task = %.0f%% of SGEMM; peak RSS "
          "per task "
          "%.2f GiB (estimate %.2f GiB)\n",
          static_cast<long long>(samples), static_cast<long long>(seq_len),
          static_cast<long long>(n), sum, slowest, static_cast<long long>(n), sum / slowest,
          flops / sum / 1e9, 100 * flops / sum / 1e9 / sgemm, peak / double(1 << 30),
          estimate / double(1 << 30));
      if (parallel) {
        std::printf("  measured with the %lld shards running at once: layer wall %.1f s\n",
                    static_cast<long long>(n), layer_wall);
      }
      std::printf(
          "  CPU time %.1f s: %.1f GFLOP per CPU-second = %.0f%% of SGEMM's per CPU-second\n", cpu,
          flops / cpu / 1e9, 100 * flops / cpu / 1e9 / sgemm_cpu);
      std::fflush(stdout);
    }
  }
  return 0;
}
