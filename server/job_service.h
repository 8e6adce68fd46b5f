// JobService: the public gRPC API (proto/caldera/v1/jobs.proto) over a
// Coordinator. Translation and the Authorizer's verdicts (who may do what
// with which job); the logic lives in coordinator.h.
#ifndef CALDERA_SERVER_JOB_SERVICE_H_
#define CALDERA_SERVER_JOB_SERVICE_H_

#include "caldera/v1/jobs.grpc.pb.h"
#include "server/authorizer.h"
#include "server/coordinator.h"

namespace caldera::server {

class JobServiceImpl final : public v1::JobService::Service {
 public:
  // Neither is owned; both must outlive the service.
  JobServiceImpl(Coordinator* coordinator, Authorizer* authorizer)
      : coordinator_(coordinator), authorizer_(authorizer) {}

  grpc::Status CreateJob(grpc::ServerContext* context, const v1::CreateJobRequest* request,
                         v1::Job* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  // Streams the current snapshot, then one event per change, and ends after a
  // terminal state (or UNAVAILABLE when the coordinator shuts down).
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;

 private:
  // The job `name` if `who` may see it; NOT_FOUND (as for a missing job) if not.
  absl::StatusOr<v1::Job> VisibleJob(const Principal& who, const std::string& name) const;

  Coordinator* coordinator_;  // not owned
  Authorizer* authorizer_;    // not owned
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_JOB_SERVICE_H_
