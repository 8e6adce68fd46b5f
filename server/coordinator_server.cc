#include "server/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace caldera::server {
namespace {

// Server reflection on or off for this builder. Linking grpc++_reflection
// registers its plugin for every server of the process (a static initializer
// calls InitProtoReflectionServerBuilderPlugin), so "off" removes it here.
class ReflectionOption : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(bool enabled) : enabled_(enabled) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    const std::string reflection = grpc::reflection::ProtoServerReflectionPlugin().name();
    std::erase_if(*plugins, [&](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
      return p->name() == reflection;
    });
    if (enabled_)
      plugins->push_back(std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
  }

 private:
  const bool enabled_;
};

}  // namespace

CoordinatorServer::CoordinatorServer(Coordinator* coordinator,
                                     std::unique_ptr<Authorizer> authorizer)
    : coordinator_(coordinator),
      authorizer_(std::move(authorizer)),
      jobs_(coordinator, authorizer_.get()),
      workers_(coordinator, authorizer_.get()) {}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    Coordinator* coordinator, const std::string& listen, const ServerSecurity& security) {
  const bool tls = !security.tls.tls_cert.empty();
  if (!listen.empty() && !security.insecure && !service_runtime::IsLoopbackAddress(listen)) {
    if (!tls) {
      return absl::InvalidArgumentError(absl::StrCat(
          "refusing to serve plaintext on ", listen,
          ", which is not a loopback address: give --tls-cert and --tls-key, listen on "
          "127.0.0.1, or pass --insecure to accept it (docs/security.md)"));
    }
    if (security.auth.token_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "refusing to serve ", listen,
          " without --auth-tokens: no token file is the single-user local mode, for loopback "
          "only; give --auth-tokens, listen on 127.0.0.1, or pass --insecure (docs/security.md)"));
    }
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      service_runtime::ServerCredentialsFor(security.tls);
  if (!creds.ok()) return creds.status();
  AuthOptions auth = security.auth;
  auth.require_worker_certificate = !security.tls.client_ca.empty();
  if (std::shared_ptr<CoordinatorMetrics> metrics = coordinator->metrics(); metrics != nullptr) {
    auth.on_reload_failure = [metrics] { metrics->TokenFileReloadFailed(); };
  }
  absl::StatusOr<std::unique_ptr<Authorizer>> authorizer = Authorizer::Create(auth);
  if (!authorizer.ok()) return authorizer.status();

  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer(coordinator, *std::move(authorizer)));
  Authorizer* quotas = s->authorizer_.get();  // outlives the coordinator's use: Shutdown clears it
  coordinator->SetQuotaSource(
      [quotas](const std::string& owner) { return quotas->QuotaFor(owner); });
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<ReflectionOption>(security.reflection));
  if (!listen.empty()) builder.AddListeningPort(listen, *creds, &s->port_);
  builder.RegisterService(&s->jobs_);
  builder.RegisterService(&s->workers_);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || (!listen.empty() && s->port_ == 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot listen on ", listen,
        "; give a free host:port such as 127.0.0.1:50051 (is another process using it?)"));
  }
  if (!security.health_listen.empty()) {
    grpc::ServerBuilder health;
    health.AddListeningPort(security.health_listen, grpc::InsecureServerCredentials(),
                            &s->health_port_);
    s->health_server_ = health.BuildAndStart();
    if (s->health_server_ == nullptr || s->health_port_ == 0) {
      s->Shutdown(0);
      return absl::InvalidArgumentError(
          absl::StrCat("cannot listen on --health-listen ", security.health_listen,
                       "; give a free host:port (is another process using it?)"));
    }
    s->health_server_->GetHealthCheckService()->SetServingStatus(true);
  }
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  return s;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(0); }

std::shared_ptr<grpc::Channel> CoordinatorServer::InProcessChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return server_->InProcessChannel(args);
}

void CoordinatorServer::Shutdown(double grace_seconds) {
  if (stopped_) return;
  stopped_ = true;
  if (server_ == nullptr) {  // Start failed building the server
    coordinator_->SetQuotaSource(nullptr);
    return;
  }
  server_->GetHealthCheckService()->SetServingStatus(false);
  if (health_server_ != nullptr) {
    health_server_->GetHealthCheckService()->SetServingStatus(false);
    health_server_->Shutdown(std::chrono::system_clock::now());
    health_server_->Wait();
  }
  coordinator_->Shutdown();
  coordinator_->SetQuotaSource(nullptr);
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000)));
  server_->Wait();
}

}  // namespace caldera::server
