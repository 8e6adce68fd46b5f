// calderactl status JOB: one snapshot of a job.
#include <cstdio>

#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/job_client.h"
#include "client/calderactl/model_inputs.h"

namespace caldera::cli {
namespace {

struct StatusFlags {
  std::string job;
  ConnectionFlags conn;
  std::string output;
};

int RunStatus(const StatusFlags& f) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = ConnectTo(f.conn);
  if (!channel.ok()) return ReportError("status", channel.status());
  auto stub = v1::JobService::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetJobRequest req;
  req.set_name(f.job.rfind("jobs/", 0) == 0 ? f.job : "jobs/" + f.job);
  v1::Job job;
  grpc::Status s = stub->GetJob(&ctx, req, &job);
  if (!s.ok()) return ReportRpcError("status", s);
  if (f.output == "json") {
    std::printf("%s\n", JobToJson(job).dump(2).c_str());
  } else {
    std::printf("%s\n", DescribeJob(job).c_str());
  }
  return kExitOk;
}

}  // namespace

void AddStatusCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<StatusFlags>();
  CLI::App* cmd = app.add_subcommand("status", "Show a job's state and progress");
  cmd->add_option("job", f->job, "job name (jobs/<id> or <id>)")->required();
  AddConnectionFlags(cmd, &f->conn);
  cmd->add_option("-o,--output", f->output, "json: print the job as JSON")
      ->check(CLI::IsMember({"", "json"}));
  cmd->callback([f, exit_code] { *exit_code = RunStatus(*f); });
}

}  // namespace caldera::cli
