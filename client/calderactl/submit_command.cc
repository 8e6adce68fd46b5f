// calderactl submit: creates a job on a coordinator; with --wait, follows it
// with a progress bar and exits by its outcome (0/3/4).
#include <cstdio>

#include "client/calderactl/calibration_text.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/job_client.h"
#include "client/calderactl/model_inputs.h"
#include "client/calderactl/progress.h"
#include "storage/storage_options.h"

namespace caldera::cli {
namespace {

struct SubmitFlags {
  JobFlags job;
  ConnectionFlags conn;
  bool wait = false;
  std::string output;
};

int RunSubmit(SubmitFlags f) {
  if (f.output != "" && f.output != "json") {
    std::fprintf(stderr, "calderactl submit: error: -o %s is unknown; use -o json\n",
                 f.output.c_str());
    return kExitInvalidInput;
  }
  if (absl::Status s = ParseJobFlagNames(&f.job); !s.ok()) return ReportError("submit", s);
  if (absl::Status s = ResolveCalibrationText(f.job.calibration_text, &f.job.spec,
                                              storage::StorageOptions::FromEnvironment());
      !s.ok()) {
    return ReportError("submit", s);
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = ConnectTo(f.conn);
  if (!channel.ok()) return ReportError("submit", channel.status());
  auto stub = v1::JobService::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  v1::Job job;
  grpc::Status s = stub->CreateJob(&ctx, CreateRequestFrom(f.job), &job);
  if (!s.ok()) return ReportRpcError("submit", s);
  if (!f.wait) {
    if (f.output == "json") {
      std::printf("%s\n", JobToJson(job).dump(2).c_str());
    } else {
      std::printf("%s\n", job.name().c_str());
    }
    return kExitOk;
  }
  std::fprintf(stderr, "submit: %s created\n", job.name().c_str());
  absl::StatusOr<v1::Job> final_job;
  {
    ProgressDisplay display("submit");
    final_job = WaitForJob(stub.get(), job.name(), [&](const v1::JobEvent& e) {
      const auto [done, total] = TaskTotals(e.job());
      display.Update(done, total, e.message());
    });
  }
  if (!final_job.ok()) return ReportError("submit", final_job.status());
  if (f.output == "json") {
    std::printf("%s\n", JobToJson(*final_job).dump(2).c_str());
  } else {
    std::printf("%s\n", DescribeJob(*final_job).c_str());
  }
  return ExitCodeForJob(*final_job);
}

}  // namespace

void AddSubmitCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<SubmitFlags>();
  CLI::App* cmd = app.add_subcommand(
      "submit",
      "Submit a compression job to a coordinator (prints the job name; --wait follows it)");
  AddJobFlags(cmd, &f->job);
  AddConnectionFlags(cmd, &f->conn);
  cmd->add_flag("--wait", f->wait,
                "follow the job and exit by its outcome (0, 3 failed, 4 "
                "cancelled)");
  cmd->add_option("-o,--output", f->output, "json: print the job as JSON");
  cmd->callback([f, exit_code] { *exit_code = RunSubmit(*f); });
}

}  // namespace caldera::cli
