#include "server/job_service.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "job/job_state.h"
#include "service_runtime/grpc_status.h"

namespace caldera::server {
namespace {

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return service_runtime::ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

absl::StatusOr<v1::Job> JobServiceImpl::VisibleJob(const Principal& who,
                                                   const std::string& name) const {
  absl::StatusOr<v1::Job> job = coordinator_->GetJob(name);
  if (job.ok() && !Authorizer::MaySee(who, job->owner())) {
    return absl::NotFoundError(
        absl::StrCat(name, " does not exist; `calderactl list` shows the known jobs"));
  }
  return job;
}

grpc::Status JobServiceImpl::CreateJob(grpc::ServerContext* context,
                                       const v1::CreateJobRequest* request, v1::Job* response) {
  absl::StatusOr<Principal> who = authorizer_->ForJobs(*context, JobAction::kCreate);
  if (!who.ok()) return service_runtime::ToGrpcStatus(who.status());
  return Reply(coordinator_->CreateJob(*request, who->name), response);
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                                    v1::Job* response) {
  absl::StatusOr<Principal> who = authorizer_->ForJobs(*context, JobAction::kRead);
  if (!who.ok()) return service_runtime::ToGrpcStatus(who.status());
  return Reply(VisibleJob(*who, request->name()), response);
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context,
                                      const v1::ListJobsRequest* request,
                                      v1::ListJobsResponse* response) {
  absl::StatusOr<Principal> who = authorizer_->ForJobs(*context, JobAction::kRead);
  if (!who.ok()) return service_runtime::ToGrpcStatus(who.status());
  return Reply(
      coordinator_->ListJobs(*request, Authorizer::SeesOwnJobsOnly(*who) ? &who->name : nullptr),
      response);
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context,
                                       const v1::CancelJobRequest* request, v1::Job* response) {
  absl::StatusOr<Principal> who = authorizer_->ForJobs(*context, JobAction::kCancel);
  if (!who.ok()) return service_runtime::ToGrpcStatus(who.status());
  // A job's owner never changes, so checking it before cancelling is enough.
  if (absl::StatusOr<v1::Job> job = VisibleJob(*who, request->name()); !job.ok()) {
    return service_runtime::ToGrpcStatus(job.status());
  }
  return Reply(coordinator_->CancelJob(request->name()), response);
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context,
                                      const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::JobEvent>* writer) {
  absl::StatusOr<Principal> who = authorizer_->ForJobs(*context, JobAction::kRead);
  if (!who.ok()) return service_runtime::ToGrpcStatus(who.status());
  if (absl::StatusOr<v1::Job> job = VisibleJob(*who, request->name()); !job.ok()) {
    return service_runtime::ToGrpcStatus(job.status());
  }
  // The watch blocks until its job changes and sends one snapshot per change;
  // an unchanged job costs no snapshot. Changes closer than kMinInterval are
  // coalesced (the next event carries the latest snapshot), so a busy job with
  // many watchers is not re-sent faster than clients can use it. The watch
  // wakes every kCancelCheck to notice a cancelled stream, and resends the
  // current snapshot (same sequence) after kHeartbeat without a change so that
  // a dead client is noticed.
  constexpr double kCancelCheck = 0.25;
  constexpr auto kMinInterval = std::chrono::milliseconds(500);
  constexpr auto kHeartbeat = std::chrono::seconds(30);
  int64_t version = -1;
  auto last_sent = std::chrono::steady_clock::now() - kMinInterval;
  while (!context->IsCancelled()) {
    std::this_thread::sleep_until(last_sent + kMinInterval);
    if (context->IsCancelled()) break;
    absl::StatusOr<JobChange> change =
        coordinator_->WaitForChange(request->name(), version, kCancelCheck);
    if (!change.ok()) return service_runtime::ToGrpcStatus(change.status());
    bool heartbeat = false;
    if (!change->changed) {
      if (coordinator_->shutting_down()) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "the coordinator is shutting down; watch again after it restarts");
      }
      if (std::chrono::steady_clock::now() - last_sent < kHeartbeat) continue;
      change = coordinator_->WaitForChange(request->name(), -1, 0);
      if (!change.ok()) return service_runtime::ToGrpcStatus(change.status());
      heartbeat = true;
    }
    version = change->version;
    v1::JobEvent event;
    event.set_sequence(change->version);
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    event.mutable_time()->set_seconds(
        std::chrono::duration_cast<std::chrono::seconds>(now).count());
    event.set_message(change->message);
    const v1::Job& job = change->snapshot->job;
    const bool terminal = job::IsTerminal(job.state());
    bool written = false;
    if (heartbeat) {
      *event.mutable_job() = change->snapshot->Current();  // elapsed time as of now
      written = writer->Write(event);
    } else {
      // The shared snapshot (taken at this change) goes out without a copy: the
      // event borrows it and gives it back before it is destroyed.
      event.unsafe_arena_set_allocated_job(const_cast<v1::Job*>(&job));
      written = writer->Write(event);
      event.unsafe_arena_release_job();
    }
    if (!written) return grpc::Status::OK;  // the client went away
    if (terminal) return grpc::Status::OK;
    last_sent = std::chrono::steady_clock::now();
  }
  return grpc::Status::OK;
}

}  // namespace caldera::server
