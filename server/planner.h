// The plan of a compression job (DESIGN.md, data flow): for each block l,
// calibrate(l) — which needs calibrate(l-1)'s hidden states — then
// decompose(l, m) for every selected module m — which needs calibrate(l)'s
// Hessians; finalize last, after every other task. Tasks are listed in that
// order; TaskIsReady says when one may be leased.
#ifndef CALDERA_SERVER_PLANNER_H_
#define CALDERA_SERVER_PLANNER_H_

#include <string>
#include <vector>

#include "server/state_store.h"

namespace caldera::server {

// Tasks of job `job_id` over `num_layers` blocks and `modules` ("q_proj", ...,
// in kLinearModules order), all PENDING.
std::vector<TaskRecord> PlanJob(const std::string& job_id, int num_layers,
                                const std::vector<std::string>& modules);

// Index of the calibrate task of every layer in `tasks` (a plan from PlanJob).
std::vector<size_t> CalibrateIndex(const std::vector<TaskRecord>& tasks);

// True when every input of tasks[i] is committed.
bool TaskIsReady(const std::vector<TaskRecord>& tasks, const std::vector<size_t>& calibrate_index,
                 size_t i);

// "decompose layer 3 q_proj" / "calibrate layer 3" / "finalize".
std::string DescribeTask(const TaskRecord& task);

}  // namespace caldera::server

#endif  // CALDERA_SERVER_PLANNER_H_
