// Process exit codes of calderactl, documented in README.md and `--help`. The
// codes and the status -> exit code table live in job/status_meaning.h (the
// same table decides which task failures a worker retries).
#ifndef CALDERA_CLIENT_CALDERACTL_EXIT_CODES_H_
#define CALDERA_CLIENT_CALDERACTL_EXIT_CODES_H_

#include "job/status_meaning.h"

namespace caldera::cli {

using job::ExitCodeFor;
using job::kExitCancelled;
using job::kExitInternal;
using job::kExitInvalidInput;
using job::kExitJobFailed;
using job::kExitOk;
using job::kExitUnavailable;

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_EXIT_CODES_H_
