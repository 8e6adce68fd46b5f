#include "server/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace caldera::server {

CoordinatorServer::CoordinatorServer(Coordinator* coordinator)
    : coordinator_(coordinator), jobs_(coordinator), workers_(coordinator) {}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    Coordinator* coordinator, const std::string& listen) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer(coordinator));
  grpc::ServerBuilder builder;
  if (!listen.empty()) {
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &s->port_);
  }
  builder.RegisterService(&s->jobs_);
  builder.RegisterService(&s->workers_);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || (!listen.empty() && s->port_ == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", listen,
                     "; give a free host:port such as 0.0.0.0:50051 (is another process using it?)"));
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
  server_->GetHealthCheckService()->SetServingStatus(false);
  coordinator_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000)));
  server_->Wait();
}

}  // namespace caldera::server
