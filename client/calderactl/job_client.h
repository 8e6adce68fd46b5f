// What the job subcommands (submit, status, list, watch, cancel, compress)
// share: connecting to a coordinator, turning flags into a job spec, waiting
// for a job with a progress display, printing jobs, and exit codes by outcome.
#ifndef CALDERA_CLIENT_CALDERACTL_JOB_CLIENT_H_
#define CALDERA_CLIENT_CALDERACTL_JOB_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "caldera/v1/jobs.grpc.pb.h"
#include "client/calderactl/job_flags.h"
#include "operations/job_watch.h"
#include "service_runtime/grpc_security.h"

namespace caldera::cli {

// --server default: $CALDERA_SERVER, else localhost:50051.
std::string DefaultServer();

// How a subcommand reaches a coordinator (docs/security.md): --server,
// --token-file (else $CALDERA_TOKEN), --tls-ca (else $CALDERA_TLS_CA) and the
// client certificate --tls-cert/--tls-key.
struct ConnectionFlags {
  std::string server = DefaultServer();
  std::string token_file;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
};

// Registers the connection flags on `cmd`; values land in `*flags`.
void AddConnectionFlags(CLI::App* cmd, ConnectionFlags* flags);

// A channel per `flags`; INVALID_ARGUMENT naming the flag when a token or TLS
// file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> ConnectTo(const ConnectionFlags& flags);

v1::CreateJobRequest CreateRequestFrom(const JobFlags& flags);

// Following a job: operations/job_watch.h.
using operations::TaskTotals;
using operations::WaitForJob;

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
