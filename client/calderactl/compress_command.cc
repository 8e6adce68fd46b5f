// calderactl compress: the whole compression job on this machine with nothing
// to start by hand: an in-process cluster (in_process_cluster/: a coordinator with its
// SQLite state in a temporary directory and --workers workers talking real
// gRPC over an in-process channel) — the same planner, scheduler, leases and
// pipeline steps as caldera-coordinator + caldera-worker, so the checkpoint
// bytes are the same as a distributed run's. SIGINT/SIGTERM cancel the job
// (exit 4, no index written, the job's scratch and state removed).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "caldera/v1/jobs.grpc.pb.h"
#include "client/calderactl/calibration_text.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/device_flag.h"
#include "client/calderactl/embedded_cluster.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/finetune_flags.h"
#include "client/calderactl/job_client.h"
#include "client/calderactl/job_flags.h"
#include "client/calderactl/model_inputs.h"
#include "client/calderactl/progress.h"
#include "core/backend/device.h"
#include "core/format/checkpoint_report.h"
#include "in_process_cluster/in_process_cluster.h"
#include "job/task_plan.h"
#include "service_runtime/grpc_status.h"
#include "service_runtime/signal_watcher.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::cli {
namespace {

struct CompressFlags {
  JobFlags job;
  int workers = 2;
  int threads = 0;     // BLAS threads per worker; 0 = cores / workers
  std::string output;  // "" | json
  std::string device = "cpu";
  FineTuneFlags finetune;  // --finetune-*: after the job, on its checkpoint
};

int RunCompress(CompressFlags f) {
  if (f.output != "" && f.output != "json") {
    std::fprintf(stderr, "calderactl compress: error: -o %s is unknown; use -o json\n",
                 f.output.c_str());
    return kExitInvalidInput;
  }
  if (f.workers < 1) {
    std::fprintf(stderr, "calderactl compress: error: --workers must be >= 1\n");
    return kExitInvalidInput;
  }
  std::unique_ptr<backend::ComputeBackend> compute;
  if (int rc = OpenDevice("compress", f.device, &compute); rc != kExitOk) return rc;
  if (compute != nullptr && f.workers > 1) {
    std::fprintf(stderr,
                 "calderactl compress: note: in-process worker 0 runs on %s, the other %d on the "
                 "CPU (a device serves one worker)\n",
                 compute->Name().c_str(), f.workers - 1);
  }
  const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
  if (absl::Status s = ParseJobFlagNames(&f.job); !s.ok()) return ReportError("compress", s);
  if (absl::Status s = ValidateFineTuneFlags(f.finetune); !s.ok()) {
    return ReportError("compress", s);
  }
  if (absl::Status s = ResolveCalibrationText(f.job.calibration_text, &f.job.spec, options);
      !s.ok()) {
    return ReportError("compress", s);
  }
  // A signal cancels the job once it exists. The watcher starts before any
  // other thread, so that it is the only thread that sees the signals.
  std::mutex mu;
  v1::JobService::Stub* cancel_stub = nullptr;  // guarded by mu
  std::string job_name;                         // guarded by mu
  bool cancel_requested = false;                // guarded by mu
  auto cancel_locked = [&] {
    if (cancel_stub == nullptr || job_name.empty()) return;
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    req.set_name(job_name);
    v1::Job ignored;
    (void)cancel_stub->CancelJob(&ctx, req, &ignored);
  };
  std::optional<service_runtime::SignalWatcher> watcher;
  watcher.emplace([&](int) {
    std::fprintf(stderr, "compress: signal received, cancelling the job\n");
    std::lock_guard<std::mutex> lock(mu);
    cancel_requested = true;
    cancel_locked();
  });

  absl::StatusOr<std::unique_ptr<in_process_cluster::InProcessCluster>> cluster =
      StartEmbeddedCluster(options, f.workers, f.threads, compute.get());
  if (!cluster.ok()) return ReportError("compress", cluster.status());
  auto stub = v1::JobService::NewStub((*cluster)->channel());

  const auto start = std::chrono::steady_clock::now();
  int code = kExitOk;
  absl::StatusOr<v1::Job> job;
  {
    grpc::ClientContext ctx;
    v1::Job created;
    grpc::Status s = stub->CreateJob(&ctx, CreateRequestFrom(f.job), &created);
    if (!s.ok()) {
      job = service_runtime::FromGrpcStatus(s);
    } else {
      {
        std::lock_guard<std::mutex> lock(mu);
        cancel_stub = stub.get();
        job_name = created.name();
        if (cancel_requested) cancel_locked();  // the signal came while creating
      }
      job = created;
      ProgressDisplay display("compress");
      job = WaitForJob(stub.get(), created.name(), [&](const v1::JobEvent& e) {
        const auto [done, total] = TaskTotals(e.job());
        display.Update(done, total, e.message());
      });
    }
  }
  (*cluster)->Shutdown();
  watcher.reset();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!job.ok()) return ReportError("compress", job.status());
  code = ExitCodeForJob(*job);
  if (job->state() == v1::CANCELLED) {
    // The workers are stopped: nothing writes the job's scratch any more, and
    // a cancelled job's scratch is of no use to anyone (a failed job keeps it).
    const std::string id = job->name().substr(job->name().rfind('/') + 1);
    if (absl::Status s = storage::RemovePrefix(job::ScratchPrefix(job->spec().out(), id), options);
        !s.ok()) {
      std::fprintf(stderr, "calderactl compress: warning: scratch of the cancelled job left: %s\n",
                   std::string(s.message()).c_str());
    }
  }
  const std::string state_name = v1::JobState_Name(job->state());
  const std::string out = job->spec().out();
  // Recovery fine-tuning of the finished checkpoint, in place (the simplest
  // integration: one pass over all blocks here, not yet tasks of the plan).
  double finetune_seconds = 0;
  if (code == kExitOk && f.finetune.options.steps > 0) {
    const auto ft_start = std::chrono::steady_clock::now();
    absl::StatusOr<pipeline::FineTuneResult> ft =
        RunFineTune(f.finetune, out, f.job.spec.model, f.job.spec.calibration, options);
    if (!ft.ok()) return ReportError("compress", ft.status());
    finetune_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - ft_start).count();
  }
  if (f.output == "json") {
    nlohmann::json j;
    j["state"] = state_name;
    j["out"] = out;
    j["seconds"] = seconds + finetune_seconds;
    if (f.finetune.options.steps > 0) j["finetune_seconds"] = finetune_seconds;
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
                seconds + finetune_seconds, out.c_str());
    if (finetune_seconds > 0) {
      std::printf("compress: of which fine-tuning %.1f s\n", finetune_seconds);
    }
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
  cmd->add_option("--device", f->device, backend::DeviceFlagHelp());
  AddFineTuneFlags(cmd, &f->finetune);
  cmd->callback([f, exit_code] { *exit_code = RunCompress(*f); });
}

}  // namespace caldera::cli
