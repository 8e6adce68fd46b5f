// calderactl compress: the whole compression job on this machine with nothing
// to start by hand (operations/compress.h: an in-process coordinator and
// workers). SIGINT/SIGTERM cancel the job (exit 4, no index written, the
// job's scratch and state removed).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "client/calderactl/commands.h"
#include "client/calderactl/device_flag.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/job_client.h"
#include "client/calderactl/job_flags.h"
#include "client/calderactl/model_inputs.h"
#include "client/calderactl/progress.h"
#include "core/backend/device.h"
#include "core/format/checkpoint_report.h"
#include "operations/compress.h"
#include "service_runtime/signal_watcher.h"
#include "storage/storage.h"

namespace caldera::cli {
namespace {

struct CompressFlags {
  JobFlags job;
  int workers = 2;
  int threads = 0;     // BLAS threads per worker; 0 = cores / workers
  std::string output;  // "" | json
  std::string device = "cpu";
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
  // A signal cancels the job once it exists. The watcher starts before any
  // other thread, so that it is the only thread that sees the signals.
  operations::CompressCancel cancel;
  std::optional<service_runtime::SignalWatcher> watcher;
  watcher.emplace([&](int) {
    std::fprintf(stderr, "compress: signal received, cancelling the job\n");
    cancel.Cancel();
  });

  operations::CompressOptions run;
  run.spec = f.job.spec;
  run.calibration_text = f.job.calibration_text;
  run.workers = f.workers;
  run.threads = f.threads;
  run.device = compute.get();
  absl::StatusOr<operations::CompressResult> result;
  {
    ProgressDisplay display("compress");
    operations::Listener listener;
    listener.progress = [&](int64_t done, int64_t total, const std::string& what) {
      display.Update(done, total, what);
    };
    listener.note = [](const std::string& text) { std::fprintf(stderr, "%s\n", text.c_str()); };
    result = operations::Compress(std::move(run), options, listener, &cancel);
  }
  watcher.reset();
  if (!result.ok()) return ReportError("compress", result.status());
  const v1::Job& job = result->job;
  const int code = ExitCodeForJob(job);
  const std::string state_name = v1::JobState_Name(job.state());
  const std::string out = job.spec().out();
  if (f.output == "json") {
    nlohmann::json j;
    j["state"] = state_name;
    j["out"] = out;
    j["seconds"] = result->seconds;
    if (!job.error().empty()) j["error"] = job.error();
    if (code == kExitOk && result->report.has_value()) {
      j["totals"] = format::ReportTotalsToJson(result->report->totals);
      for (const format::FinetuneBlockReport& b : result->report->finetune) {
        j["finetune"].push_back(format::FinetuneBlockReportToJson(b));
      }
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else if (code == kExitOk) {
    std::printf("compress: SUCCEEDED in %.1f s; checkpoint at %s (report.json beside it)\n",
                result->seconds, out.c_str());
  }
  if (code != kExitOk) {
    std::fprintf(stderr, "calderactl compress: %s%s%s\n", state_name.c_str(),
                 job.error().empty() ? "" : ": ", job.error().c_str());
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
  cmd->callback([f, exit_code] { *exit_code = RunCompress(*f); });
}

}  // namespace caldera::cli
