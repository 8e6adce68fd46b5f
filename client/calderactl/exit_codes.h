// Process exit codes of calderactl, documented in README.md and `--help`.
#ifndef CALDERA_CLIENT_CALDERACTL_EXIT_CODES_H_
#define CALDERA_CLIENT_CALDERACTL_EXIT_CODES_H_

#include "absl/status/status.h"

namespace caldera::cli {

inline constexpr int kExitOk = 0;            // succeeded
inline constexpr int kExitInternal = 1;      // a bug or an unexpected local failure
inline constexpr int kExitInvalidInput = 2;  // the input or flags are wrong: do not retry
inline constexpr int kExitJobFailed = 3;     // the job ran and failed
inline constexpr int kExitCancelled = 4;     // the job was cancelled
inline constexpr int kExitUnavailable = 75;  // temporarily unavailable: retry later (EX_TEMPFAIL)

// Maps a status from the core or the API onto an exit code by meaning.
inline int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kUnimplemented:
      return kExitInvalidInput;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
      return kExitUnavailable;
    case absl::StatusCode::kCancelled:
      return kExitCancelled;
    default:
      return kExitInternal;
  }
}

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_EXIT_CODES_H_
