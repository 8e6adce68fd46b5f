#include "server/worker_service.h"

namespace caldera::server {

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext*,
                                               const v1::RegisterWorkerRequest* request,
                                               v1::RegisterWorkerResponse* response) {
  *response = coordinator_->RegisterWorker(*request);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::LeaseTask(grpc::ServerContext*,
                                          const v1::LeaseTaskRequest* request,
                                          v1::LeaseTaskResponse* response) {
  *response = coordinator_->LeaseTask(*request);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext*,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  *response = coordinator_->Heartbeat(*request);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::CompleteTask(grpc::ServerContext*,
                                             const v1::CompleteTaskRequest* request,
                                             v1::CompleteTaskResponse* response) {
  *response = coordinator_->CompleteTask(*request);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::FailTask(grpc::ServerContext*, const v1::FailTaskRequest* request,
                                         v1::FailTaskResponse*) {
  coordinator_->FailTask(*request);
  return grpc::Status::OK;
}

}  // namespace caldera::server
