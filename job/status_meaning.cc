#include "job/status_meaning.h"

namespace caldera::job {

StatusMeaning MeaningOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return {kExitOk, false};
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kUnimplemented:
      return {kExitInvalidInput, false};
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
      return {kExitUnavailable, true};
    case absl::StatusCode::kCancelled:
      return {kExitCancelled, true};
    default:
      return {kExitInternal, true};
  }
}

}  // namespace caldera::job
