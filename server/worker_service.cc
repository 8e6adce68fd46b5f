#include "server/worker_service.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "service_runtime/grpc_status.h"

namespace caldera::server {
namespace {

// Limits on what a worker may report: ids and URIs are ours (short), errors
// are messages, not logs; numbers must be finite and non-negative.
constexpr size_t kMaxIdBytes = 512;
constexpr size_t kMaxErrorBytes = 64 * 1024;
constexpr int kMaxMatrixErrors = 64;

absl::Status CheckFinite(absl::string_view field, double value) {
  if (!std::isfinite(value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be a finite number >= 0, got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckId(absl::string_view field, const std::string& value) {
  if (value.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(), " bytes; at most ", kMaxIdBytes));
  }
  return absl::OkStatus();
}

// A report the coordinator can store as it is (no NaN in a NOT NULL column,
// no unbounded strings); INVALID_ARGUMENT names the field.
absl::Status ValidateCompleteTask(const v1::CompleteTaskRequest& r) {
  if (absl::Status s = CheckId("worker_id", r.worker_id()); !s.ok()) return s;
  if (absl::Status s = CheckId("attempt_id", r.attempt_id()); !s.ok()) return s;
  if (absl::Status s = CheckFinite("busy_seconds", r.busy_seconds()); !s.ok()) return s;
  if (r.bytes_read() < 0 || r.bytes_written() < 0) {
    return absl::InvalidArgumentError("bytes_read and bytes_written must be >= 0");
  }
  if (r.matrix_errors_size() > kMaxMatrixErrors) {
    return absl::InvalidArgumentError(absl::StrCat(
        "at most ", kMaxMatrixErrors, " matrix_errors per task, got ", r.matrix_errors_size()));
  }
  for (const v1::MatrixError& e : r.matrix_errors()) {
    if (absl::Status s =
            CheckFinite("matrix_errors.weighted_relative_error", e.weighted_relative_error());
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckId("matrix_errors.module", e.module()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

void WorkerServiceImpl::Bind(const std::string& worker_id, const std::string& name) {
  const Clock::time_point now = Clock::now();
  worker_identity_[worker_id] = Binding{name, now};
  if (worker_identity_.size() < sweep_at_) return;
  const auto forget = std::chrono::duration<double>(coordinator_->worker_forget_seconds());
  std::erase_if(worker_identity_,
                [&](const auto& entry) { return now - entry.second.used > forget; });
  sweep_at_ = std::max<size_t>(1024, 2 * worker_identity_.size());
}

grpc::Status WorkerServiceImpl::CheckCaller(const grpc::ServerContext& context,
                                            const std::string& worker_id) {
  absl::StatusOr<Principal> who = authorizer_->ForWorkerProtocol(context);
  if (!who.ok()) return service_runtime::ToGrpcStatus(who.status());
  if (!IsValidWorkerId(worker_id)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("worker_id must be 1 to ", kMaxWorkerIdBytes,
                                     " printable characters (the id RegisterWorker returned); "
                                     "got ",
                                     worker_id.size(), " bytes"));
  }
  if (authorizer_->local_mode()) return grpc::Status::OK;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = worker_identity_.find(worker_id);
  if (it != worker_identity_.end() && it->second.name != who->name) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("worker id ", worker_id, " belongs to another identity"));
  }
  Bind(worker_id, who->name);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext* context,
                                               const v1::RegisterWorkerRequest* request,
                                               v1::RegisterWorkerResponse* response) {
  absl::StatusOr<Principal> who = authorizer_->ForWorkerProtocol(*context);
  if (!who.ok()) return service_runtime::ToGrpcStatus(who.status());
  if (request->hostname().size() > kMaxRegisteredHostnameBytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("hostname is ", request->hostname().size(), " bytes; at most ",
                                     kMaxRegisteredHostnameBytes));
  }
  *response = coordinator_->RegisterWorker(*request);
  if (!authorizer_->local_mode()) {
    std::lock_guard<std::mutex> lock(mu_);
    Bind(response->worker_id(), who->name);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::LeaseTask(grpc::ServerContext* context,
                                          const v1::LeaseTaskRequest* request,
                                          v1::LeaseTaskResponse* response) {
  if (grpc::Status s = CheckCaller(*context, request->worker_id()); !s.ok()) return s;
  absl::Status written;
  *response = coordinator_->LeaseTask(*request, &written);
  return service_runtime::ToGrpcStatus(written);
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  if (grpc::Status s = CheckCaller(*context, request->worker_id()); !s.ok()) return s;
  *response = coordinator_->Heartbeat(*request);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::CompleteTask(grpc::ServerContext* context,
                                             const v1::CompleteTaskRequest* request,
                                             v1::CompleteTaskResponse* response) {
  if (grpc::Status s = CheckCaller(*context, request->worker_id()); !s.ok()) return s;
  if (absl::Status s = ValidateCompleteTask(*request); !s.ok())
    return service_runtime::ToGrpcStatus(s);
  absl::Status written;
  *response = coordinator_->CompleteTask(*request, &written);
  return service_runtime::ToGrpcStatus(written);
}

grpc::Status WorkerServiceImpl::FailTask(grpc::ServerContext* context,
                                         const v1::FailTaskRequest* request,
                                         v1::FailTaskResponse*) {
  if (grpc::Status s = CheckCaller(*context, request->worker_id()); !s.ok()) return s;
  if (absl::Status s = CheckId("worker_id", request->worker_id()); !s.ok()) {
    return service_runtime::ToGrpcStatus(s);
  }
  if (absl::Status s = CheckId("attempt_id", request->attempt_id()); !s.ok()) {
    return service_runtime::ToGrpcStatus(s);
  }
  if (request->error().size() > kMaxErrorBytes) {
    return service_runtime::ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("error is ", request->error().size(), " bytes; at most ", kMaxErrorBytes)));
  }
  absl::Status written;
  coordinator_->FailTask(*request, &written);
  return service_runtime::ToGrpcStatus(written);
}

}  // namespace caldera::server
