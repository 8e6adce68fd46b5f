#include "client/calderactl/job_client.h"

#include <google/protobuf/util/json_util.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "job/job_spec_proto.h"
#include "job/job_state.h"
#include "service_runtime/grpc_status.h"

namespace caldera::cli {

std::string DefaultServer() {
  const char* env = std::getenv("CALDERA_SERVER");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("localhost:50051");
}

void AddConnectionFlags(CLI::App* cmd, ConnectionFlags* f) {
  cmd->add_option("--server", f->server,
                  "coordinator host:port (default $CALDERA_SERVER or localhost:50051)");
  cmd->add_option("--token-file", f->token_file,
                  "file holding this client's bearer token (default: $CALDERA_TOKEN, the "
                  "token itself; none in the coordinator's local mode)");
  cmd->add_option("--tls-ca", f->tls_ca,
                  "PEM CA of the coordinator's certificate: connect with TLS (default "
                  "$CALDERA_TLS_CA)");
  cmd->add_option("--tls-cert", f->tls_cert, "PEM client certificate (mutual TLS)");
  cmd->add_option("--tls-key", f->tls_key, "PEM private key of --tls-cert");
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> ConnectTo(const ConnectionFlags& f) {
  service_runtime::ClientSecurity security;
  security.tls_ca = f.tls_ca;
  if (security.tls_ca.empty()) {
    const char* env = std::getenv("CALDERA_TLS_CA");
    if (env != nullptr) security.tls_ca = env;
  }
  security.tls_cert = f.tls_cert;
  security.tls_key = f.tls_key;
  if (!f.token_file.empty()) {
    absl::StatusOr<std::string> token =
        service_runtime::ReadTokenFile(f.token_file, "--token-file");
    if (!token.ok()) return token.status();
    security.token = *std::move(token);
  } else if (const char* env = std::getenv("CALDERA_TOKEN"); env != nullptr) {
    security.token = std::string(absl::StripAsciiWhitespace(env));
  }
  return service_runtime::OpenChannel(f.server, security);
}

v1::CreateJobRequest CreateRequestFrom(const JobFlags& f) {
  v1::CreateJobRequest req;
  *req.mutable_spec() = job::JobSpecToProto(f.spec);
  req.set_request_id(f.spec.request_id);
  return req;
}

nlohmann::json JobToJson(const v1::Job& job) {
  std::string text;
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(job, &text, opts);
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string DescribeJob(const v1::Job& job) {
  const v1::JobProgress& p = job.progress();
  const auto [done, total] = TaskTotals(job);
  std::string out = absl::StrFormat("%s  %s  %d/%d tasks", job.name(),
                                    v1::JobState_Name(job.state()), done, total);
  for (const v1::TaskCounts& c : p.tasks()) {
    absl::StrAppendFormat(&out, "  %s %d/%d", v1::TaskKind_Name(c.kind()), c.done(), c.total());
  }
  absl::StrAppendFormat(&out, "\n  model %s -> %s\n  elapsed %.1f s", job.spec().model(),
                        job.spec().out(), p.elapsed_seconds());
  if (p.estimated_remaining_seconds() > 0) {
    absl::StrAppendFormat(&out, ", about %.0f s left", p.estimated_remaining_seconds());
  }
  if (p.current_layer() >= 0) absl::StrAppendFormat(&out, ", layer %d", p.current_layer());
  if (!job.error().empty()) absl::StrAppend(&out, "\n  error: ", job.error());
  int retried = 0;
  for (const v1::TaskStatus& t : job.task_status()) retried += t.attempts() > 1 ? 1 : 0;
  if (retried > 0)
    absl::StrAppendFormat(&out, "\n  %d task(s) needed more than one attempt", retried);
  return out;
}

int ExitCodeForJob(const v1::Job& job) {
  switch (job.state()) {
    case v1::SUCCEEDED:
      return kExitOk;
    case v1::FAILED:
      return kExitJobFailed;
    case v1::CANCELLED:
      return kExitCancelled;
    default:
      return kExitInternal;
  }
}

int ReportRpcError(const char* command, const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    const std::string& why = status.error_message();
    const bool hinted = why.find("--token-file") != std::string::npos;
    std::fprintf(stderr, "calderactl %s: error: not authenticated: %s%s\n", command, why.c_str(),
                 hinted ? "" : " (check --token-file or CALDERA_TOKEN)");
    return ExitCodeFor(service_runtime::FromGrpcStatus(status));
  }
  if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    std::fprintf(stderr, "calderactl %s: error: permission denied: %s\n", command,
                 status.error_message().c_str());
    return ExitCodeFor(service_runtime::FromGrpcStatus(status));
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::fprintf(stderr,
                 "calderactl %s: error: the coordinator is unavailable (%s); check --server "
                 "and retry\n",
                 command, status.error_message().c_str());
    return kExitUnavailable;
  }
  return ReportError(command, service_runtime::FromGrpcStatus(status));
}

}  // namespace caldera::cli
