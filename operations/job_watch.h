// Following a job over the public JobService (WatchJob): what calderactl's
// compress, submit --wait and watch, and operations/compress share.
#ifndef CALDERA_OPERATIONS_JOB_WATCH_H_
#define CALDERA_OPERATIONS_JOB_WATCH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "caldera/v1/jobs.grpc.pb.h"

namespace caldera::operations {

// Follows the job until it ends (WatchJob; re-watches after the coordinator
// was briefly unavailable, up to `reconnect_seconds`). Each event goes to
// `on_event` (may be empty). Returns the final snapshot.
absl::StatusOr<v1::Job> WaitForJob(v1::JobService::Stub* stub, const std::string& name,
                                   const std::function<void(const v1::JobEvent&)>& on_event,
                                   double reconnect_seconds = 60);

// (tasks done, tasks total) over all kinds.
std::pair<int64_t, int64_t> TaskTotals(const v1::Job& job);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_JOB_WATCH_H_
