// RunLocalJob: one whole compression job in this process, with the task
// executors of executors.h — calibrate every block (core), decompose every
// selected linear on `workers` threads as soon as its block's Hessians exist,
// then finalize. Scratch artifacts go under <out>/_scratch/ and are removed at
// the end. This is the engine of `calderactl compress`.
#ifndef CALDERA_WORKER_LOCAL_JOB_H_
#define CALDERA_WORKER_LOCAL_JOB_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "storage/storage_options.h"
#include "worker/job_spec.h"

namespace caldera::worker {

struct LocalJobOptions {
  int workers = 1;  // decompose threads
  // (tasks done, tasks total, what just finished); called from any thread,
  // serialised. May be empty.
  std::function<void(int64_t, int64_t, const std::string&)> progress;
  // Set to true (e.g. from a signal handler) to cancel; may be null.
  const std::atomic<bool>* cancel = nullptr;
};

// Runs the job. INVALID_ARGUMENT / NOT_FOUND for bad input (message names the
// problem), CANCELLED when cancelled (no index is written then).
absl::Status RunLocalJob(const JobSpec& spec, const LocalJobOptions& job_options,
                         const storage::StorageOptions& options);

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_LOCAL_JOB_H_
