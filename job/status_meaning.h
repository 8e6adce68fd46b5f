// The one table of what a status code means to the caller: the process exit
// code of calderactl (documented in README.md and `calderactl --help`) and
// whether a worker reports a failed task as retryable. Both read this table,
// so "retry me" means the same to a pipeline and to the coordinator.
//
//   code                                  exit  retryable  meaning
//   OK                                      0   -          succeeded
//   INVALID_ARGUMENT, NOT_FOUND,            2   no         the input, flags or configuration
//   OUT_OF_RANGE, FAILED_PRECONDITION,                     are wrong: the same request fails
//   ALREADY_EXISTS, PERMISSION_DENIED,                     again until someone fixes it
//   UNAUTHENTICATED, UNIMPLEMENTED
//   UNAVAILABLE, DEADLINE_EXCEEDED,        75   yes        temporarily unavailable: retry later
//   RESOURCE_EXHAUSTED, ABORTED                            (EX_TEMPFAIL)
//   CANCELLED                               4   yes        cancelled (a task stopped by a lost
//                                                          lease may run again)
//   UNKNOWN, INTERNAL, DATA_LOSS, others    1   yes        a bug or unexpected failure; a task
//                                                          gets its remaining attempts
//
// ALREADY_EXISTS and UNAUTHENTICATED are "wrong input" by meaning: the entity
// exists (a create cannot succeed by repeating it) and the credentials are
// missing or invalid (repeating with the same ones cannot succeed). Before
// this table the worker retried both while calderactl said "do not retry".
#ifndef CALDERA_JOB_STATUS_MEANING_H_
#define CALDERA_JOB_STATUS_MEANING_H_

#include "absl/status/status.h"

namespace caldera::job {

inline constexpr int kExitOk = 0;            // succeeded
inline constexpr int kExitInternal = 1;      // a bug or an unexpected local failure
inline constexpr int kExitInvalidInput = 2;  // the input or flags are wrong: do not retry
inline constexpr int kExitJobFailed = 3;     // the job ran and failed
inline constexpr int kExitCancelled = 4;     // the job was cancelled
inline constexpr int kExitUnavailable = 75;  // temporarily unavailable: retry later (EX_TEMPFAIL)

struct StatusMeaning {
  int exit_code = kExitInternal;
  bool retryable = true;
};

// The row of the table above for `code`.
StatusMeaning MeaningOf(absl::StatusCode code);

// Exit code of calderactl for `status` (MeaningOf(status.code()).exit_code).
inline int ExitCodeFor(const absl::Status& status) { return MeaningOf(status.code()).exit_code; }

// Whether a task that failed with `code` is worth another attempt.
inline bool IsRetryable(absl::StatusCode code) { return MeaningOf(code).retryable; }

}  // namespace caldera::job

#endif  // CALDERA_JOB_STATUS_MEANING_H_
