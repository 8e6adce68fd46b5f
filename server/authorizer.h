// Authorizer: who may call what on the coordinator (docs/security.md). The
// one place that reads credentials off a call; JobService and WorkerService
// ask it before doing anything.
//
//   role       JobService                                   WorkerService
//   viewer     GetJob, ListJobs, WatchJob (every job)       -
//   submitter  CreateJob; Get/List/Watch/CancelJob of the   -
//              jobs it owns (others' are NOT_FOUND)
//   admin      everything                                   everything
//   worker     -                                            everything
//
// A call without a bearer token, or with one the token file does not know,
// is UNAUTHENTICATED; a known token outside its role is PERMISSION_DENIED. A
// submitter asking for another owner's job gets the same NOT_FOUND as for a
// job that does not exist (job names are not disclosed). With
// require_worker_certificate (--client-ca), WorkerService calls must also
// come over mutual TLS with a verified client certificate.
//
// Without a token file the coordinator is in the single-user local mode:
// every caller is the admin "" (caldera-coordinator allows this only on a
// loopback address, or with --insecure). The health service is not guarded.
//
// Thread-safe.
#ifndef CALDERA_SERVER_AUTHORIZER_H_
#define CALDERA_SERVER_AUTHORIZER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/token_file.h"

namespace caldera::server {

struct AuthOptions {
  std::string token_file;  // --auth-tokens; empty = local single-user mode
  bool require_worker_certificate = false;
  // Called once per changed token file that is refused (TokenFile::Open).
  std::function<void()> on_reload_failure;
};

enum class JobAction { kRead, kCreate, kCancel };

class Authorizer {
 public:
  // Reads the token file (INVALID_ARGUMENT when it is unusable).
  static absl::StatusOr<std::unique_ptr<Authorizer>> Create(const AuthOptions& options);
  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  bool local_mode() const { return tokens_ == nullptr; }

  // The caller of a JobService call allowed to do `action` (ownership of the
  // job is checked with MaySee); UNAUTHENTICATED or PERMISSION_DENIED.
  absl::StatusOr<Principal> ForJobs(const grpc::ServerContext& context, JobAction action);
  // The caller of a WorkerService call (a worker or an admin).
  absl::StatusOr<Principal> ForWorkerProtocol(const grpc::ServerContext& context);

  // Whether `who` may see and act on a job owned by `owner`.
  static bool MaySee(const Principal& who, const std::string& owner);
  // Whether `who` only sees its own jobs (a submitter).
  static bool SeesOwnJobsOnly(const Principal& who) { return who.role == Role::kSubmitter; }

  // The quotas of `owner` in the tokens in force (the defaults in the local
  // mode). Never reads a file.
  OwnerQuota QuotaFor(const std::string& owner) const;

 private:
  Authorizer(AuthOptions options, std::unique_ptr<TokenFile> tokens)
      : options_(std::move(options)), tokens_(std::move(tokens)) {}
  absl::StatusOr<Principal> Authenticate(const grpc::ServerContext& context);

  const AuthOptions options_;
  const std::unique_ptr<TokenFile> tokens_;  // null in local mode
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_AUTHORIZER_H_
