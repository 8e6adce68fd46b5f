// CoordinatorServer: a gRPC server hosting JobService and WorkerService over a
// Coordinator, with the standard grpc.health.v1 health service (open to
// everyone) and, on request, server reflection. Used by caldera-coordinator
// (TCP) and by `calderactl compress` (in-process channel only).
//
// Security (docs/security.md): TLS and client certificates from
// ServerSecurity::tls, bearer tokens from ServerSecurity::auth.token_file
// (Authorizer). Without tokens the server is in the single-user local mode,
// and without TLS traffic is plaintext: Start() refuses either on an address
// other than loopback unless `insecure` is set.
#ifndef CALDERA_SERVER_COORDINATOR_SERVER_H_
#define CALDERA_SERVER_COORDINATOR_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/authorizer.h"
#include "server/coordinator.h"
#include "server/job_service.h"
#include "server/worker_service.h"
#include "service_runtime/grpc_security.h"

namespace caldera::server {

struct ServerSecurity {
  service_runtime::ServerTls tls;  // no certificate = plaintext
  AuthOptions auth;                // no token file = local single-user mode
  // Allow plaintext or the local mode on a non-loopback address.
  bool insecure = false;
  bool reflection = false;  // register grpc.reflection.v1alpha
  // Also serve grpc.health.v1 alone, in plaintext, on this host:port (for
  // Kubernetes gRPC probes, which cannot speak TLS); empty = off.
  std::string health_listen;
};

class CoordinatorServer {
 public:
  // Serves `coordinator` (not owned; must outlive the server) on `listen`
  // (host:port; port 0 picks one; empty = in-process channel only).
  // INVALID_ARGUMENT naming the address when it cannot be bound, naming the
  // flag when a TLS or token file is unusable, and naming --insecure when
  // `listen` is not loopback but TLS or tokens are missing.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      Coordinator* coordinator, const std::string& listen,
      const ServerSecurity& security = ServerSecurity());
  ~CoordinatorServer();
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;

  int port() const { return port_; }
  int health_port() const { return health_port_; }  // 0 without health_listen
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // Marks the health service NOT_SERVING, wakes long polls and watches, and
  // stops the server, waiting up to `grace_seconds` for RPCs in flight.
  void Shutdown(double grace_seconds);

 private:
  CoordinatorServer(Coordinator* coordinator, std::unique_ptr<Authorizer> authorizer);

  Coordinator* coordinator_;
  std::unique_ptr<Authorizer> authorizer_;
  JobServiceImpl jobs_;
  WorkerServiceImpl workers_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // health_listen; null when off
  int port_ = 0;
  int health_port_ = 0;
  bool stopped_ = false;
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_COORDINATOR_SERVER_H_
