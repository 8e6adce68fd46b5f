// Sharded calibration at real size: calibrate(0, s) of a 7B-shaped model
// (Llama-2-7B block shapes, bf16, 2 blocks, random weights written by
// make-test-model's writer) for 1, 2 and 4 shards, each task in its own
// forked process so that its peak RSS is its own (wait4's ru_maxrss).
//
//   scale_bench [--dir DIR] [--hidden 4096] [--intermediate 11008] [--heads 32]
//               [--kv-heads 32] [--vocab 32000] [--samples 4,8] [--seq-len 512]
//               [--shards 1,2,4] [--parallel 0|1]
//               [--decompose q_proj,down_proj] [--decompose-iters 15]
//               [--arch MixtralForCausalLM --experts 8 --experts-per-token 2]
//
// With --arch MixtralForCausalLM (or Qwen3MoeForCausalLM, whose experts are
// then --intermediate wide too) the model is a mixture of experts and
// --decompose takes expert matrices ("experts.0.down_proj"); the GFLOP
// figures still count a dense MLP of width --intermediate (one expert's
// share of each token), so they are rough for a mixture.
//
// Prints, per token count and shard count: each shard task's wall time, peak
// RSS (and, sampled every 20 ms inside the task, how much of it was
// anonymous memory and how much file-backed pages, and when it peaked), the
// per-task memory estimate (job/memory_estimate.h) beside the measured peak
// with their ratio, and issue #20's bound (block weights in float32 + its
// float64 Hessians + one chunk of states) × 1.5; the wall time of the layer
// with one worker and with N; the tasks' GFLOP/s (block linears + causal
// attention + the four Hessian SYRKs) against the SGEMM rate measured in the
// same run (and per CPU-second against SGEMM's per CPU-second, steadier on a
// shared machine).
//
// --parallel 0 (default): the shards run one after another; "N workers" is
// the slowest shard. --parallel 1: the N shards of a layer run at once (N
// processes, as N workers on this machine), the layer's wall time is
// measured, and the speed-up is the 1-shard layer's wall time over it, with
// the load average (/proc/loadavg) before and after: meaningful only with N
// free cores and OPENBLAS_NUM_THREADS=1.
//
// --decompose M,...: after the calibrations, decompose(0, M) of each module
// at the default settings (CALDERA rank 64, 2-bit E8P Q, 4-bit L/R) with
// --decompose-iters outer iterations (memory does not depend on it), each in
// its own process reading the first run's Hessians as the worker does:
// wall time and peak RSS beside the estimate.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/sgemm_rate.h"
#include "core/model/test_model.h"
#include "job/job_spec.h"
#include "job/memory_estimate.h"
#include "model_io/model_inputs.h"
#include "pipeline/calibrate_step.h"
#include "pipeline/decompose_step.h"
#include "storage/storage_options.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr double kGiB = double(int64_t{1} << 30);

std::vector<int64_t> ParseList(const char* text) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t v = 0;
    if (absl::SimpleAtoi(part, &v) && v > 0) out.push_back(v);
  }
  return out;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

struct TaskRun {
  double seconds = 0;
  double cpu_seconds = 0;  // user + system
  int64_t peak_rss = 0;    // bytes
  bool ok = false;
};

// Samples this process's resident memory (/proc/self/statm) every 20 ms
// from a thread and, when stopped, prints the largest sample split into
// anonymous memory and file-backed pages (mapped checkpoint files).
class RssSampler {
 public:
  explicit RssSampler(std::string label)
      : label_(std::move(label)), t0_(Clock::now()), thread_([this] { Run(); }) {}
  ~RssSampler() {
    stop_ = true;
    thread_.join();
    const double total = std::chrono::duration<double>(Clock::now() - t0_).count();
    std::printf(
        "    %s: sampled peak %.2f GiB = %.2f anonymous + %.2f file-backed, at %.1f s of %.1f s\n",
        label_.c_str(), (anon_ + file_) / kGiB, anon_ / kGiB, file_ / kGiB, at_, total);
    std::fflush(stdout);
  }

 private:
  void Run() {
    const int64_t page = sysconf(_SC_PAGESIZE);
    while (!stop_) {
      std::ifstream in("/proc/self/statm");
      int64_t size = 0, resident = 0, shared = 0;
      if (in >> size >> resident >> shared && resident > 0) {
        const int64_t anon = (resident - shared) * page, file = shared * page;
        if (anon + file > anon_ + file_) {
          anon_ = anon;
          file_ = file;
          at_ = std::chrono::duration<double>(Clock::now() - t0_).count();
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::string label_;
  Clock::time_point t0_;
  std::atomic<bool> stop_{false};
  int64_t anon_ = 0, file_ = 0;
  double at_ = 0;
  std::thread thread_;  // last: started once the rest is set
};

// Runs `body` in a child process (exit 0 on success); its pid.
pid_t StartChild(const std::function<absl::Status()>& body) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    absl::Status s = body();
    if (!s.ok()) {
      std::fprintf(stderr, "scale_bench: %s\n", std::string(s.message()).c_str());
      std::fflush(stdout);
      _exit(1);
    }
    std::fflush(stdout);
    _exit(0);
  }
  return pid;
}

// Starts calibrate(0, shard) of `num_shards` in a child process; its pid.
pid_t StartShard(const std::string& model, const std::string& tokens, const std::string& out_dir,
                 int shard, int num_shards) {
  return StartChild([=]() -> absl::Status {
    caldera::storage::StorageOptions options;
    RssSampler sampler(absl::StrCat("calibrate shard ", shard + 1, "/", num_shards));
    absl::StatusOr<std::unique_ptr<caldera::model::Checkpoint>> ckpt =
        caldera::model_io::OpenCheckpointAt(model, options);
    if (!ckpt.ok()) return ckpt.status();
    const std::string base = absl::StrCat(out_dir, "/s", shard, "-of-", num_shards);
    caldera::pipeline::CalibrateRequest request;
    request.input_uri = tokens;
    request.hessians_uri = base + ".hessians.safetensors";
    request.hidden_out_uri = base + ".hidden.safetensors";
    request.shard = shard;
    request.num_shards = num_shards;
    return caldera::pipeline::Calibrate(**ckpt, request,
                                        caldera::pipeline::StepEnvironment{options})
        .status();
  });
}

// Starts decompose(0, module) in a child process reading `hessians` as a
// worker does; its pid.
pid_t StartDecompose(const std::string& model, const std::string& hessians,
                     const std::string& artifact, const std::string& module, int iters) {
  return StartChild([=]() -> absl::Status {
    caldera::storage::StorageOptions options;
    RssSampler sampler(absl::StrCat("decompose ", module));
    absl::StatusOr<std::unique_ptr<caldera::model::Checkpoint>> ckpt =
        caldera::model_io::OpenCheckpointAt(model, options);
    if (!ckpt.ok()) return ckpt.status();
    caldera::pipeline::DecomposeRequest request;
    request.module = module;
    request.hessians_uris = {hessians};
    request.spec.iters = iters;
    request.artifact_uri = artifact;
    return caldera::pipeline::Decompose(**ckpt, request,
                                        caldera::pipeline::StepEnvironment{options})
        .status();
  });
}

// Waits for a child started at `t0`.
TaskRun WaitChild(pid_t pid, Clock::time_point t0) {
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
  int64_t decompose_iters = 15;
  std::vector<int64_t> samples_list = {4, 8}, shards_list = {1, 2, 4};
  std::vector<std::string> decompose_modules;
  bool parallel = false;
  std::string arch = "LlamaForCausalLM";
  int64_t experts = 8, experts_per_token = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const int64_t v = std::strtoll(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--arch")) arch = argv[i + 1];
    if (!std::strcmp(argv[i], "--experts")) experts = v;
    if (!std::strcmp(argv[i], "--experts-per-token")) experts_per_token = v;
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
    if (!std::strcmp(argv[i], "--decompose-iters")) decompose_iters = std::max<int64_t>(1, v);
    if (!std::strcmp(argv[i], "--decompose")) {
      decompose_modules = absl::StrSplit(argv[i + 1], ',', absl::SkipEmpty());
    }
  }
  const std::string model = dir + "/model";
  caldera::model::TestModelOptions o;
  o.architecture = arch;
  o.num_experts = experts;
  o.num_experts_per_tok = experts_per_token;
  o.moe_intermediate_size = inter;
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
  std::string kept_hessians;  // the first run's shard 1, for --decompose
  for (int64_t samples : samples_list) {
    const std::string tokens = absl::StrCat(dir, "/tokens-", samples, "x", seq_len, ".safetensors");
    if (!std::filesystem::exists(tokens)) {
      if (absl::Status s = caldera::model::WriteTestTokens(samples, seq_len, vocab, 7, tokens);
          !s.ok()) {
        std::fprintf(stderr, "scale_bench: %s\n", std::string(s.message()).c_str());
        return 1;
      }
    }
    double one_shard_wall = 0;  // the 1-shard layer's wall time at this token count
    for (int64_t n : shards_list) {
      if (n > samples) continue;
      const std::string out = absl::StrCat(dir, "/out-", samples, "-", n);
      std::filesystem::create_directories(out);
      double sum = 0, slowest = 0, cpu = 0;
      int64_t peak = 0;
      std::vector<TaskRun> runs(n);
      const std::string load_before = LoadAverage();
      const auto layer_t0 = Clock::now();
      if (parallel) {
        std::vector<pid_t> pids;
        for (int s = 0; s < n; ++s) {
          pids.push_back(StartShard(model, tokens, out, s, static_cast<int>(n)));
        }
        for (int s = 0; s < n; ++s) runs[s] = WaitChild(pids[s], layer_t0);
      } else {
        for (int s = 0; s < n; ++s) {
          const auto t0 = Clock::now();
          runs[s] = WaitChild(StartShard(model, tokens, out, s, static_cast<int>(n)), t0);
        }
      }
      const double layer_wall = std::chrono::duration<double>(Clock::now() - layer_t0).count();
      const std::string load_after = LoadAverage();
      for (int s = 0; s < n; ++s) {
        const TaskRun& r = runs[s];
        if (!r.ok) {
          std::fprintf(stderr, "scale_bench: shard %d of %lld failed\n", s,
                       static_cast<long long>(n));
          return 1;
        }
        std::printf("  %lld x %lld tokens, shard %d/%lld: %.1f s (%.1f CPU s), peak RSS %.2f GiB\n",
                    static_cast<long long>(samples), static_cast<long long>(seq_len), s + 1,
                    static_cast<long long>(n), r.seconds, r.cpu_seconds, r.peak_rss / kGiB);
        sum += r.seconds;
        cpu += r.cpu_seconds;
        slowest = std::max(slowest, r.seconds);
        peak = std::max(peak, r.peak_rss);
      }
      if (kept_hessians.empty() && !decompose_modules.empty()) {
        kept_hessians = absl::StrCat(dir, "/kept.hessians.safetensors");
        std::filesystem::rename(absl::StrCat(out, "/s0-of-", n, ".hessians.safetensors"),
                                kept_hessians);
      }
      std::filesystem::remove_all(out);
      const double t = static_cast<double>(samples * seq_len), L = static_cast<double>(seq_len);
      const double flops = 2 * t * (2 * h * a + 2 * h * k + 3 * h * i) + 2 * t * L * a +
                           t * (2 * h * h + a * a + i * i);
      const int64_t shard_samples = caldera::job::LargestShardSamples(samples, static_cast<int>(n));
      const int64_t estimate =
          caldera::job::EstimateCalibrateTaskBytes(config, shard_samples, seq_len, 0, false);
      const int64_t bound = caldera::job::CalibrateTargetBytes(config, shard_samples, seq_len);
      std::printf(
          "%lld x %lld tokens, %lld shard(s): layer wall %.1f s on 1 worker (the shards one after "
          "another), %.1f s on %lld (the slowest shard; %.2fx); %.1f GFLOP/s per task = %.0f%% of "
          "SGEMM\n",
          static_cast<long long>(samples), static_cast<long long>(seq_len),
          static_cast<long long>(n), sum, slowest, static_cast<long long>(n), sum / slowest,
          flops / sum / 1e9, 100 * flops / sum / 1e9 / sgemm);
      std::printf(
          "  peak RSS per task %.2f GiB; estimate %.2f GiB (estimate / measured %.2f); issue #20's "
          "bound (float32 weights + float64 Hessians + one chunk) x 1.5 = %.2f GiB (%s)\n",
          peak / kGiB, estimate / kGiB, static_cast<double>(estimate) / static_cast<double>(peak),
          bound / kGiB, peak <= bound ? "met" : "NOT met");
      if (parallel) {
        if (n == 1) one_shard_wall = layer_wall;
        std::printf("  the %lld shard(s) at once: layer wall %.1f s", static_cast<long long>(n),
                    layer_wall);
        if (n > 1 && one_shard_wall > 0) {
          std::printf(", speed-up over 1 shard %.2fx", one_shard_wall / layer_wall);
        }
        std::printf(" (load average before %s, after %s)\n", load_before.c_str(),
                    load_after.c_str());
      }
      std::printf(
          "  CPU time %.1f s: %.1f GFLOP per CPU-second = %.0f%% of SGEMM's per CPU-second\n", cpu,
          flops / cpu / 1e9, 100 * flops / cpu / 1e9 / sgemm_cpu);
      std::fflush(stdout);
    }
  }
  for (const std::string& name : decompose_modules) {
    if (!caldera::model::FindBlockLinear(config, name).has_value() || kept_hessians.empty()) {
      std::fprintf(stderr, "scale_bench: cannot decompose '%s' (unknown, or no calibration ran)\n",
                   name.c_str());
      return 1;
    }
    const auto t0 = Clock::now();
    const TaskRun r = WaitChild(
        StartDecompose(model, kept_hessians, absl::StrCat(dir, "/artifact-", name, ".safetensors"),
                       name, static_cast<int>(decompose_iters)),
        t0);
    if (!r.ok) {
      std::fprintf(stderr, "scale_bench: decompose %s failed\n", name.c_str());
      return 1;
    }
    const int64_t estimate = caldera::job::EstimateDecomposeBytes(config, name);
    std::printf(
        "decompose(0, %s), %lld iterations: %.1f s (%.1f CPU s), peak RSS %.2f GiB; estimate "
        "%.2f GiB (estimate / measured %.2f)\n",
        name.c_str(), static_cast<long long>(decompose_iters), r.seconds, r.cpu_seconds,
        r.peak_rss / kGiB, estimate / kGiB,
        static_cast<double>(estimate) / static_cast<double>(r.peak_rss));
    std::filesystem::remove(absl::StrCat(dir, "/artifact-", name, ".safetensors"));
    std::fflush(stdout);
  }
  if (!kept_hessians.empty()) std::filesystem::remove(kept_hessians);
  return 0;
}
