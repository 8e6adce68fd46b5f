#include "server/authorizer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace caldera::server {

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(const AuthOptions& options) {
  std::unique_ptr<TokenFile> tokens;
  if (!options.token_file.empty()) {
    absl::StatusOr<std::unique_ptr<TokenFile>> t =
        TokenFile::Open(options.token_file, options.on_reload_failure);
    if (!t.ok()) return t.status();
    tokens = *std::move(t);
  }
  return std::unique_ptr<Authorizer>(new Authorizer(options, std::move(tokens)));
}

absl::StatusOr<Principal> Authorizer::Authenticate(const grpc::ServerContext& context) {
  if (tokens_ == nullptr) return Principal{"", Role::kAdmin, OwnerQuota()};
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "this coordinator requires a bearer token: pass --token-file FILE or set CALDERA_TOKEN "
        "(docs/security.md)");
  }
  const absl::string_view header(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "bearer ";
  if (header.size() <= kBearer.size() ||
      !absl::EqualsIgnoreCase(header.substr(0, kBearer.size()), kBearer)) {
    return absl::UnauthenticatedError(
        "the authorization header must be `Bearer <token>` (docs/security.md)");
  }
  std::optional<Principal> who =
      tokens_->Lookup(absl::StripAsciiWhitespace(header.substr(kBearer.size())));
  if (!who) {
    return absl::UnauthenticatedError(
        "the bearer token is not known to this coordinator (mistyped or revoked); ask its "
        "operator for a token");
  }
  return *who;
}

absl::StatusOr<Principal> Authorizer::ForJobs(const grpc::ServerContext& context,
                                              JobAction action) {
  absl::StatusOr<Principal> who = Authenticate(context);
  if (!who.ok()) return who.status();
  bool allowed = false;
  switch (who->role) {
    case Role::kAdmin:
      allowed = true;
      break;
    case Role::kSubmitter:
      allowed = true;  // its own jobs only: MaySee
      break;
    case Role::kViewer:
      allowed = action == JobAction::kRead;
      break;
    case Role::kWorker:
      allowed = false;
      break;
  }
  if (!allowed) {
    const char* what = action == JobAction::kRead     ? "read jobs"
                       : action == JobAction::kCreate ? "create jobs"
                                                      : "cancel jobs";
    return absl::PermissionDeniedError(absl::StrCat("token '", who->name, "' has role ",
                                                    RoleName(who->role), ", which may not ", what,
                                                    " (docs/security.md lists the roles)"));
  }
  return who;
}

absl::StatusOr<Principal> Authorizer::ForWorkerProtocol(const grpc::ServerContext& context) {
  absl::StatusOr<Principal> who = Authenticate(context);
  if (!who.ok()) return who.status();
  if (who->role != Role::kWorker && who->role != Role::kAdmin) {
    return absl::PermissionDeniedError(absl::StrCat("token '", who->name, "' has role ",
                                                    RoleName(who->role),
                                                    "; only workers may use the worker protocol"));
  }
  if (options_.require_worker_certificate) {
    std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth == nullptr || !auth->IsPeerAuthenticated()) {
      return absl::UnauthenticatedError(
          "workers must connect with a client certificate signed by the coordinator's "
          "--client-ca (caldera-worker --tls-cert/--tls-key)");
    }
  }
  return who;
}

OwnerQuota Authorizer::QuotaFor(const std::string& owner) const {
  return tokens_ == nullptr ? OwnerQuota() : tokens_->QuotaFor(owner);
}

bool Authorizer::MaySee(const Principal& who, const std::string& owner) {
  return who.role != Role::kSubmitter || who.name == owner;
}

}  // namespace caldera::server
