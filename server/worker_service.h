// WorkerService: the worker protocol (proto/caldera/v1/worker.proto) over a
// Coordinator. Only translation; the logic lives in coordinator.h.
#ifndef CALDERA_SERVER_WORKER_SERVICE_H_
#define CALDERA_SERVER_WORKER_SERVICE_H_

#include "caldera/v1/worker.grpc.pb.h"
#include "server/coordinator.h"

namespace caldera::server {

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status LeaseTask(grpc::ServerContext* context, const v1::LeaseTaskRequest* request,
                         v1::LeaseTaskResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status CompleteTask(grpc::ServerContext* context, const v1::CompleteTaskRequest* request,
                            v1::CompleteTaskResponse* response) override;
  grpc::Status FailTask(grpc::ServerContext* context, const v1::FailTaskRequest* request,
                        v1::FailTaskResponse* response) override;

 private:
  Coordinator* coordinator_;  // not owned
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_WORKER_SERVICE_H_
