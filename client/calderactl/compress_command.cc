// calderactl compress: the whole compression job on this machine, no server:
// the task executors of caldera-worker run in-process (calibrate every block,
// decompose every selected linear on --workers threads, finalize).
// SIGINT/SIGTERM cancel the job (exit 4, no index written).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/job_flags.h"
#include "client/calderactl/progress.h"
#include "storage/storage.h"
#include "storage/uri.h"
#include "worker/local_job.h"

namespace caldera::cli {
namespace {

struct CompressFlags {
  JobFlags job;
  int workers = 2;
  std::string output;  // "" | json
};

worker::JobSpec SpecFrom(const JobFlags& f) {
  worker::JobSpec s;
  s.model = f.model;
  s.calibration = f.calibration;
  s.out = f.out;
  s.method = f.method;
  s.rank = f.rank;
  s.q_bits = f.q_bits;
  s.lr_bits = f.lr_bits;
  s.quantizer = f.quantizer;
  s.iters = f.iters;
  s.lplr_iters = f.lplr_iters;
  s.seed = f.seed;
  s.ttlora_rank = f.ttlora_rank;
  s.ttlora_init = f.ttlora_init;
  s.modules = f.modules;
  s.request_id = f.request_id;
  return s;
}

// Waits for SIGINT/SIGTERM on its own thread (the signals are blocked in every
// other thread) and sets `*cancel`; stops when `*stop` is set.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::atomic<bool>* cancel) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    thread_ = std::thread([this, cancel] {
      const timespec tick{0, 100 * 1000 * 1000};
      while (!stop_.load()) {
        if (sigtimedwait(&set_, nullptr, &tick) > 0) {
          std::fprintf(stderr, "compress: signal received, cancelling the job\n");
          cancel->store(true);
        }
      }
    });
  }
  ~SignalWatcher() {
    stop_.store(true);
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_, old_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int RunCompress(const CompressFlags& f) {
  if (f.output != "" && f.output != "json") {
    std::fprintf(stderr, "calderactl compress: error: -o %s is unknown; use -o json\n",
                 f.output.c_str());
    return kExitInvalidInput;
  }
  const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
  const worker::JobSpec spec = SpecFrom(f.job);
  std::atomic<bool> cancel{false};
  absl::Status status;
  const auto start = std::chrono::steady_clock::now();
  {
    SignalWatcher watcher(&cancel);
    ProgressDisplay display("compress");
    worker::LocalJobOptions jo;
    jo.workers = f.workers;
    jo.cancel = &cancel;
    jo.progress = [&display](int64_t done, int64_t total, const std::string& what) {
      display.Update(done, total, what);
    };
    status = worker::RunLocalJob(spec, jo, options);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int code = status.ok()                                     ? kExitOk
                   : status.code() == absl::StatusCode::kCancelled ? kExitCancelled
                   : ExitCodeFor(status) == kExitInvalidInput      ? kExitInvalidInput
                   : ExitCodeFor(status) == kExitUnavailable       ? kExitUnavailable
                                                                   : kExitJobFailed;
  const char* state = status.ok()                                     ? "SUCCEEDED"
                      : status.code() == absl::StatusCode::kCancelled ? "CANCELLED"
                                                                      : "FAILED";
  if (f.output == "json") {
    nlohmann::json j;
    j["state"] = state;
    j["out"] = spec.out;
    j["seconds"] = seconds;
    if (!status.ok()) j["error"] = std::string(status.message());
    if (status.ok()) {
      absl::StatusOr<std::string> report =
          storage::ReadObject(storage::JoinKey(spec.out, "report.json"), options);
      if (report.ok()) {
        nlohmann::json r = nlohmann::json::parse(*report, nullptr, false);
        if (!r.is_discarded()) j["totals"] = r["totals"];
      }
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else if (status.ok()) {
    std::printf("compress: SUCCEEDED in %.1f s; checkpoint at %s (report.json beside it)\n",
                seconds, spec.out.c_str());
  }
  if (!status.ok()) {
    std::fprintf(stderr, "calderactl compress: %s: %s\n", state,
                 std::string(status.message()).c_str());
  }
  return code;
}

}  // namespace

void AddCompressCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<CompressFlags>();
  CLI::App* cmd = app.add_subcommand(
      "compress",
      "Run a whole compression job on this machine (no server): calibrate, decompose every "
      "linear with CALDERA, write a sharded safetensors checkpoint with quantization_config "
      "and report.json (docs/format/checkpoint.md)");
  AddJobFlags(cmd, &f->job);
  cmd->add_option("--workers", f->workers, "in-process decompose workers (default 2)");
  cmd->add_option("-o,--output", f->output, "json: print the result as JSON on stdout");
  cmd->callback([f, exit_code] { *exit_code = RunCompress(*f); });
}

}  // namespace caldera::cli
