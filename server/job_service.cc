#include "server/job_service.h"

#include <chrono>

#include "job/job_state.h"
#include "process/grpc_status.h"

namespace caldera::server {
namespace {

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return process::ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status JobServiceImpl::CreateJob(grpc::ServerContext*, const v1::CreateJobRequest* request,
                                       v1::Job* response) {
  return Reply(coordinator_->CreateJob(*request), response);
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext*, const v1::GetJobRequest* request,
                                    v1::Job* response) {
  return Reply(coordinator_->GetJob(request->name()), response);
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* request,
                                      v1::ListJobsResponse* response) {
  return Reply(coordinator_->ListJobs(*request), response);
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* request,
                                       v1::Job* response) {
  return Reply(coordinator_->CancelJob(request->name()), response);
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context,
                                      const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::JobEvent>* writer) {
  int64_t version = -1;
  while (!context->IsCancelled()) {
    absl::StatusOr<JobChange> change = coordinator_->WaitForChange(request->name(), version, 1.0);
    if (!change.ok()) return process::ToGrpcStatus(change.status());
    if (change->changed) {
      version = change->version;
      v1::JobEvent event;
      event.set_sequence(change->version);
      const auto now = std::chrono::system_clock::now().time_since_epoch();
      event.mutable_time()->set_seconds(
          std::chrono::duration_cast<std::chrono::seconds>(now).count());
      *event.mutable_job() = std::move(change->job);
      event.set_message(change->message);
      const bool terminal = job::IsTerminal(event.job().state());
      if (!writer->Write(event)) return grpc::Status::OK;  // the client went away
      if (terminal) return grpc::Status::OK;
    } else if (coordinator_->shutting_down()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the coordinator is shutting down; watch again after it restarts");
    }
  }
  return grpc::Status::OK;
}

}  // namespace caldera::server
