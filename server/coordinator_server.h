// CoordinatorServer: a gRPC server hosting JobService and WorkerService over a
// Coordinator, with the standard grpc.health.v1 health service and server
// reflection. Used by caldera-coordinator (TCP) and by `calderactl compress`
// (in-process channel only).
#ifndef CALDERA_SERVER_COORDINATOR_SERVER_H_
#define CALDERA_SERVER_COORDINATOR_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/coordinator.h"
#include "server/job_service.h"
#include "server/worker_service.h"

namespace caldera::server {

class CoordinatorServer {
 public:
  // Serves `coordinator` (not owned; must outlive the server) on `listen`
  // (host:port; port 0 picks one; empty = in-process channel only).
  // INVALID_ARGUMENT naming the address when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(Coordinator* coordinator,
                                                                  const std::string& listen);
  ~CoordinatorServer();
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;

  int port() const { return port_; }
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // Marks the health service NOT_SERVING, wakes long polls and watches, and
  // stops the server, waiting up to `grace_seconds` for RPCs in flight.
  void Shutdown(double grace_seconds);

 private:
  CoordinatorServer(Coordinator* coordinator);

  Coordinator* coordinator_;
  JobServiceImpl jobs_;
  WorkerServiceImpl workers_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_COORDINATOR_SERVER_H_
