// What the job subcommands (submit, status, list, watch, cancel, compress)
// share: connecting to a coordinator, turning flags into a job spec, waiting
// for a job with a progress display, printing jobs, and exit codes by outcome.
#ifndef CALDERA_CLIENT_CALDERACTL_JOB_CLIENT_H_
#define CALDERA_CLIENT_CALDERACTL_JOB_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "caldera/v1/jobs.grpc.pb.h"
#include "client/calderactl/job_flags.h"

namespace caldera::cli {

// --server default: $CALDERA_SERVER, else localhost:50051.
std::string DefaultServer();

std::shared_ptr<grpc::Channel> ConnectTo(const std::string& server);

v1::CreateJobRequest CreateRequestFrom(const JobFlags& flags);

// Follows the job until it ends (WatchJob; re-watches after the coordinator
// was briefly unavailable, up to `reconnect_seconds`). Each event goes to
// `on_event` (may be empty). Returns the final snapshot.
absl::StatusOr<v1::Job> WaitForJob(v1::JobService::Stub* stub, const std::string& name,
                                   const std::function<void(const v1::JobEvent&)>& on_event,
                                   double reconnect_seconds = 60);

// (tasks done, tasks total) over all kinds.
std::pair<int64_t, int64_t> TaskTotals(const v1::Job& job);

// The job as JSON (proto3 JSON mapping: lowerCamelCase fields, enum names).
nlohmann::json JobToJson(const v1::Job& job);
// Human-readable, several lines.
std::string DescribeJob(const v1::Job& job);

// 0 succeeded, 3 failed, 4 cancelled; 1 for a job that has not ended.
int ExitCodeForJob(const v1::Job& job);
// Prints "calderactl <command>: error: <message>" and returns the exit code.
// (ReportError for absl::Status is in model_inputs.h.)
int ReportRpcError(const char* command, const grpc::Status& status);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_JOB_CLIENT_H_
