// calderactl compress: the whole compression job on this machine with nothing
// to start by hand: an embedded coordinator (SQLite state in a temporary
// directory) and --workers in-process workers talking real gRPC over an
// in-process channel — the same planner, scheduler, leases and task executors
// as caldera-coordinator + caldera-worker, so the checkpoint bytes are the
// same as a distributed run's. SIGINT/SIGTERM cancel the job (exit 4, no index
// written).
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/job_client.h"
#include "client/calderactl/job_flags.h"
#include "client/calderactl/model_inputs.h"
#include "client/calderactl/progress.h"
#include "core/format/checkpoint_report.h"
#include "server/coordinator.h"
#include "server/coordinator_server.h"
#include "server/grpc_status.h"
#include "storage/storage.h"
#include "storage/uri.h"
#include "worker/worker_agent.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace caldera::cli {
namespace {

struct CompressFlags {
  JobFlags job;
  int workers = 2;
  int threads = 0;     // BLAS threads per worker; 0 = cores / workers
  std::string output;  // "" | json
};

// Waits for SIGINT/SIGTERM on its own thread (the signals are blocked in every
// other thread) and calls `on_signal`; stops on destruction.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void()> on_signal) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    thread_ = std::thread([this, on_signal = std::move(on_signal)] {
      const timespec tick{0, 100 * 1000 * 1000};
      while (!stop_.load()) {
        if (sigtimedwait(&set_, nullptr, &tick) > 0) {
          std::fprintf(stderr, "compress: signal received, cancelling the job\n");
          on_signal();
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

// A temporary directory removed on destruction.
class TempStateDir {
 public:
  TempStateDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/calderactl-compress-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempStateDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

int RunCompress(const CompressFlags& f) {
  if (f.output != "" && f.output != "json") {
    std::fprintf(stderr, "calderactl compress: error: -o %s is unknown; use -o json\n",
                 f.output.c_str());
    return kExitInvalidInput;
  }
  if (f.workers < 1) {
    std::fprintf(stderr, "calderactl compress: error: --workers must be >= 1\n");
    return kExitInvalidInput;
  }
  const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
  TempStateDir state;
  if (state.path().empty()) {
    return ReportError("compress", absl::FailedPreconditionError(
                                       "cannot create a temporary state directory; set TMPDIR "
                                       "to a writable directory"));
  }
  server::CoordinatorOptions co;
  co.data_dir = state.path();
  co.lease_seconds = 120;
  co.heartbeat_seconds = 2;
  co.max_attempts = 2;
  co.storage = options;
  absl::StatusOr<std::unique_ptr<server::Coordinator>> coordinator =
      server::Coordinator::Open(co, nullptr);
  if (!coordinator.ok()) return ReportError("compress", coordinator.status());
  absl::StatusOr<std::unique_ptr<server::CoordinatorServer>> srv =
      server::CoordinatorServer::Start(coordinator->get(), "");
  if (!srv.ok()) return ReportError("compress", srv.status());
  std::shared_ptr<grpc::Channel> channel = (*srv)->InProcessChannel();

  // Split the cores between the workers' BLAS.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int per_worker = f.threads > 0 ? f.threads : std::max(1, cores / f.workers);
  openblas_set_num_threads(per_worker);
  std::vector<std::unique_ptr<worker::WorkerAgent>> agents;
  std::vector<std::thread> threads;
  for (int i = 0; i < f.workers; ++i) {
    worker::WorkerAgentOptions wo;
    wo.hostname = absl::StrCat("embedded-", i);
    wo.storage = options;
    wo.poll_seconds = 0.5;
    wo.search_threads = per_worker;
    agents.push_back(std::make_unique<worker::WorkerAgent>(channel, wo));
  }

  auto stub = v1::JobService::NewStub(channel);
  const auto start = std::chrono::steady_clock::now();
  int code = kExitOk;
  absl::StatusOr<v1::Job> job;
  {
    SignalWatcher watcher([&] {
      if (!job.ok()) return;
      grpc::ClientContext ctx;
      v1::CancelJobRequest req;
      req.set_name(job->name());
      v1::Job ignored;
      (void)stub->CancelJob(&ctx, req, &ignored);
    });
    for (auto& agent : agents) threads.emplace_back([&agent] { agent->Run(); });
    grpc::ClientContext ctx;
    v1::Job created;
    grpc::Status s = stub->CreateJob(&ctx, CreateRequestFrom(f.job), &created);
    if (!s.ok()) {
      job = server::FromGrpcStatus(s);
    } else {
      job = created;
      ProgressDisplay display("compress");
      job = WaitForJob(stub.get(), created.name(), [&](const v1::JobEvent& e) {
        const auto [done, total] = TaskTotals(e.job());
        display.Update(done, total, e.message());
      });
    }
    for (auto& agent : agents) agent->Drain();
    for (std::thread& t : threads) t.join();
  }
  (*srv)->Shutdown(1);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!job.ok()) return ReportError("compress", job.status());
  code = ExitCodeForJob(*job);
  const std::string state_name = v1::JobState_Name(job->state());
  const std::string out = job->spec().output_uri();
  if (f.output == "json") {
    nlohmann::json j;
    j["state"] = state_name;
    j["out"] = out;
    j["seconds"] = seconds;
    if (!job->error().empty()) j["error"] = job->error();
    if (code == kExitOk) {
      absl::StatusOr<std::string> report =
          storage::ReadObject(storage::JoinKey(out, "report.json"), options);
      if (report.ok()) {
        absl::StatusOr<format::CheckpointReport> r =
            format::ParseCheckpointReport(*report, storage::JoinKey(out, "report.json"));
        if (r.ok()) j["totals"] = format::ReportTotalsToJson(r->totals);
      }
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else if (code == kExitOk) {
    std::printf("compress: SUCCEEDED in %.1f s; checkpoint at %s (report.json beside it)\n",
                seconds, out.c_str());
  }
  if (code != kExitOk) {
    std::fprintf(stderr, "calderactl compress: %s%s%s\n", state_name.c_str(),
                 job->error().empty() ? "" : ": ", job->error().c_str());
  }
  return code;
}

}  // namespace

void AddCompressCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<CompressFlags>();
  CLI::App* cmd = app.add_subcommand(
      "compress",
      "Run a whole compression job on this machine (embedded coordinator and in-process "
      "workers, nothing to start): calibrate, decompose every linear with CALDERA, write a "
      "sharded safetensors checkpoint with quantization_config and report.json "
      "(docs/format/checkpoint.md)");
  AddJobFlags(cmd, &f->job);
  cmd->add_option("--workers", f->workers, "in-process workers (default 2)");
  cmd->add_option("--threads", f->threads,
                  "BLAS threads per worker (default: cores / workers, at least 1)");
  cmd->add_option("-o,--output", f->output, "json: print the result as JSON on stdout");
  cmd->callback([f, exit_code] { *exit_code = RunCompress(*f); });
}

}  // namespace caldera::cli
