// CheckStoredJob: whether a job loaded from the state database (StateStore)
// is one the coordinator can schedule. The database may be valid SQLite and
// still hold rows no plan makes (a hand edit, a bug, a bad restore): a job
// without calibrate tasks, a task with layer -5, an unknown state number.
// Such a job is quarantined by the coordinator (FAILED with this message,
// its tasks not scheduled) while every other job runs; its rows stay in the
// database untouched for inspection.
#ifndef CALDERA_SERVER_STATE_CHECK_H_
#define CALDERA_SERVER_STATE_CHECK_H_

#include <vector>

#include "absl/status/status.h"
#include "server/state_store.h"

namespace caldera::server {

// Request ids longer than this are refused at CreateJob and quarantined when
// found in the database (they would bloat every ListJobs page).
inline constexpr size_t kMaxRequestIdBytes = 256;

// OK when `job` (a row of LoadJobs) and `tasks` (its rows of LoadTasks, in
// plan order) form a plan of PlanJob's shape: valid job and task states and
// kinds; calibrate tasks for layers 0..L-1, each layer's shards 0..n-1 in
// order with the job's calibration_shards; decompose tasks of known modules
// on those layers; one finalize, last; a leased task names its attempt.
// Otherwise DATA_LOSS whose message names the job and the first bad row.
absl::Status CheckStoredJob(const JobRecord& job, const std::vector<TaskRecord>& tasks);

}  // namespace caldera::server

#endif  // CALDERA_SERVER_STATE_CHECK_H_
