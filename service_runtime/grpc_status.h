// absl::Status <-> grpc::Status (the codes have the same numbers and meaning).
#ifndef CALDERA_SERVICE_RUNTIME_GRPC_STATUS_H_
#define CALDERA_SERVICE_RUNTIME_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace caldera::service_runtime {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace caldera::service_runtime

#endif  // CALDERA_SERVICE_RUNTIME_GRPC_STATUS_H_
