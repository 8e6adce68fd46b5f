// calderactl watch JOB: prints the job's events until it ends; exits by its
// outcome (0 succeeded, 3 failed, 4 cancelled).
#include <chrono>
#include <cstdio>

#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/job_client.h"
#include "client/calderactl/model_inputs.h"
#include "client/calderactl/progress.h"

namespace caldera::cli {
namespace {

struct WatchFlags {
  std::string job;
  ConnectionFlags conn;
  std::string output;
};

int RunWatch(const WatchFlags& f) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = ConnectTo(f.conn);
  if (!channel.ok()) return ReportError("watch", channel.status());
  auto stub = v1::JobService::NewStub(*channel);
  const std::string name = f.job.rfind("jobs/", 0) == 0 ? f.job : "jobs/" + f.job;
  const auto start = std::chrono::steady_clock::now();
  ProgressClock clock;
  absl::StatusOr<v1::Job> job = WaitForJob(stub.get(), name, [&](const v1::JobEvent& e) {
    if (f.output == "json") {
      nlohmann::json j;
      j["sequence"] = e.sequence();
      j["message"] = e.message();
      j["job"] = JobToJson(e.job());
      std::printf("%s\n", j.dump().c_str());
    } else {
      const auto [done, total] = TaskTotals(e.job());
      clock.Observe(
          done, total,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::printf("%s %s %lld/%lld [%s] %s\n", e.job().name().c_str(),
                  v1::JobState_Name(e.job().state()).c_str(), static_cast<long long>(done),
                  static_cast<long long>(total), clock.Summary().c_str(), e.message().c_str());
    }
    std::fflush(stdout);
  });
  if (!job.ok()) return ReportError("watch", job.status());
  if (!job->error().empty()) std::fprintf(stderr, "%s: %s\n", name.c_str(), job->error().c_str());
  return ExitCodeForJob(*job);
}

}  // namespace

void AddWatchCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<WatchFlags>();
  CLI::App* cmd = app.add_subcommand("watch", "Follow a job's events until it ends");
  cmd->add_option("job", f->job, "job name (jobs/<id> or <id>)")->required();
  AddConnectionFlags(cmd, &f->conn);
  cmd->add_option("-o,--output", f->output, "json: one JSON object per event")
      ->check(CLI::IsMember({"", "json"}));
  cmd->callback([f, exit_code] { *exit_code = RunWatch(*f); });
}

}  // namespace caldera::cli
