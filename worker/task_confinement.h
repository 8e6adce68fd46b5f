// The worker's own check of a leased task's storage locations, before the
// task reads or writes anything: the coordinator (or whoever speaks the
// worker protocol) is not trusted to name only sane locations.
//
// A task is refused with PERMISSION_DENIED (not retryable) unless
//  - its job's --out does not overlap --model or --calibration
//    (job/output_safety.h), and
//  - every location the task names (the spec's model, calibration and out,
//    and every string field of the task's work message whose name ends in
//    "_uri", "_uris" or "_prefix", found by reflection so a new task kind is
//    covered without code here) lies inside one of options.allowed_roots
//    (when any are given; storage/allowed_roots.h), and
//  - every task location other than the model and calibration lies inside
//    the job's --out (scratch, artifacts and the checkpoint all live there),
//    so a task can never write over an input, even one inside the roots.
#ifndef CALDERA_WORKER_TASK_CONFINEMENT_H_
#define CALDERA_WORKER_TASK_CONFINEMENT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "caldera/v1/worker.pb.h"
#include "job/job_spec.h"
#include "storage/storage_options.h"

namespace caldera::worker {

// Every location string of `task`'s work message (see above), in field order;
// empty strings are skipped.
std::vector<std::string> TaskLocations(const v1::Task& task);

// OK, or PERMISSION_DENIED naming the task, the field, the location and the
// rule it breaks (INVALID_ARGUMENT for a location that does not parse).
absl::Status CheckTaskConfined(const v1::Task& task, const job::JobSpec& spec,
                               const storage::StorageOptions& options);

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_TASK_CONFINEMENT_H_
