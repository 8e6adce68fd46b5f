// calderactl list: jobs on a coordinator, newest first, one page at a time.
#include <cstdio>

#include "absl/strings/ascii.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/job_client.h"
#include "client/calderactl/model_inputs.h"

namespace caldera::cli {
namespace {

struct ListFlags {
  std::string state;
  int page_size = 50;
  std::string page_token;
  ConnectionFlags conn;
  std::string output;
};

int RunList(const ListFlags& f) {
  v1::ListJobsRequest req;
  req.set_page_size(f.page_size);
  req.set_page_token(f.page_token);
  if (!f.state.empty()) {
    v1::JobState state;
    if (!v1::JobState_Parse(absl::AsciiStrToUpper(f.state), &state) ||
        state == v1::JOB_STATE_UNSPECIFIED) {
      std::fprintf(stderr,
                   "calderactl list: error: --state %s is unknown; use queued, running, "
                   "succeeded, failed or cancelled\n",
                   f.state.c_str());
      return kExitInvalidInput;
    }
    req.set_state(state);
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = ConnectTo(f.conn);
  if (!channel.ok()) return ReportError("list", channel.status());
  auto stub = v1::JobService::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ListJobsResponse resp;
  grpc::Status s = stub->ListJobs(&ctx, req, &resp);
  if (!s.ok()) return ReportRpcError("list", s);
  if (f.output == "json") {
    nlohmann::json j;
    j["jobs"] = nlohmann::json::array();
    for (const v1::Job& job : resp.jobs()) j["jobs"].push_back(JobToJson(job));
    j["next_page_token"] = resp.next_page_token();
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-24s %-10s %-9s %s\n", "NAME", "STATE", "TASKS", "OUTPUT");
  for (const v1::Job& job : resp.jobs()) {
    const auto [done, total] = TaskTotals(job);
    std::printf("%-24s %-10s %4lld/%-4lld %s\n", job.name().c_str(),
                v1::JobState_Name(job.state()).c_str(), static_cast<long long>(done),
                static_cast<long long>(total), job.spec().out().c_str());
  }
  if (!resp.next_page_token().empty()) {
    std::printf("more: --page-token %s\n", resp.next_page_token().c_str());
  }
  return kExitOk;
}

}  // namespace

void AddListCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<ListFlags>();
  CLI::App* cmd = app.add_subcommand("list", "List jobs, newest first");
  cmd->add_option("--state", f->state, "only jobs in this state (queued, running, ...)");
  cmd->add_option("--page-size", f->page_size, "jobs per page (default 50, max 1000)");
  cmd->add_option("--page-token", f->page_token, "continue from a previous page");
  AddConnectionFlags(cmd, &f->conn);
  cmd->add_option("-o,--output", f->output, "json: print the page as JSON")
      ->check(CLI::IsMember({"", "json"}));
  cmd->callback([f, exit_code] { *exit_code = RunList(*f); });
}

}  // namespace caldera::cli
