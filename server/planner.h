// The plan of a compression job (DESIGN.md, data flow), the server's side of
// the typed task plan (job/task_plan.h): for each block l, calibrate(l, s)
// for every sample shard s (one shard unless JobSpec.calibration_shards > 1)
// — which needs calibrate(l-1, s)'s hidden states — then decompose(l, m) for
// every selected module m — which needs the Hessians of every calibrate(l, *);
// finalize last, after every other task. Tasks are listed in that order; TaskIsReady says
// when one may be leased and BuildTask names what a leased attempt reads (the
// committed results of the tasks it depends on) and writes.
//
// A new task kind: a message in worker.proto's Task.work, its builder in
// job/task_plan.h, its place in PlanJob / TaskIsReady / BuildTask /
// LeasePriority here, and one executor in the worker.
#ifndef CALDERA_SERVER_PLANNER_H_
#define CALDERA_SERVER_PLANNER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "caldera/v1/worker.pb.h"
#include "core/model/model_config.h"
#include "server/state_store.h"

namespace caldera::server {

// Tasks of job `job_id` over `num_layers` blocks and `modules` ("q_proj", ...,
// in kLinearModules order), all PENDING, with `num_shards` calibrate tasks per
// layer (listed in shard order, ids "calibrate-0003-s001"; with one shard the
// plan and its ids are those of unsharded jobs, "calibrate-0003").
// `finetune` (JobSpec.finetune_steps > 0): finetune(l) ("finetune-0003")
// follows the layer's decompose tasks.
std::vector<TaskRecord> PlanJob(const std::string& job_id, int num_layers,
                                const std::vector<std::string>& modules, int num_shards = 1,
                                bool finetune = false);

// Index of the first calibrate task (shard 0) of every layer in `tasks` (a
// plan from PlanJob); the layer's other shards follow it.
std::vector<size_t> CalibrateIndex(const std::vector<TaskRecord>& tasks);

// The number of calibrate tasks (shards) of `layer`.
int ShardsOfLayer(const std::vector<TaskRecord>& tasks, const std::vector<size_t>& calibrate_index,
                  int layer);

// True when every input of tasks[i] is committed: calibrate(l, s) waits for
// calibrate(l-1, s) only; decompose(l, m) for every calibrate(l, *);
// finetune(l) for every decompose(l, *) and finetune(l-1).
// `sequential`: calibration_mode "sequential" (calibrate(l, s) also waits for
// every decompose(l-1, m) and finetune(l-1)).
bool TaskIsReady(const std::vector<TaskRecord>& tasks, const std::vector<size_t>& calibrate_index,
                 size_t i, bool sequential = false);

// The task payload of the attempt `t.lease_attempt` of task `t` (one of
// `tasks`, a plan of job `job` whose calibrate tasks `calibrate_index` lists).
// `job_elapsed_seconds` goes to finalize. Inputs come from the committed
// results of the tasks `t` depends on; outputs are attempt-unique keys.
v1::Task BuildTask(const JobRecord& job, const std::vector<TaskRecord>& tasks,
                   const std::vector<size_t>& calibrate_index, const TaskRecord& t,
                   double job_elapsed_seconds);

// Sets every task's memory_bytes (job/memory_estimate.h) for a model of
// `config` calibrated on `samples` sequences of `seq_len` tokens split into
// `num_shards` shards; `sequential`: the job's calibration mode is sequential.
void EstimateTaskMemory(const model::ModelConfig& config, int64_t samples, int64_t seq_len,
                        int num_shards, bool sequential, std::vector<TaskRecord>* tasks);

// The submit-time check of the coordinator's --max-task-memory
// (`limit_bytes` > 0): INVALID_ARGUMENT when a task of `tasks` (estimated by
// EstimateTaskMemory) needs more, saying which task, how much, and — for a
// calibrate task — how many shards would fit (or that none would).
absl::Status CheckTaskMemory(const std::vector<TaskRecord>& tasks, const model::ModelConfig& config,
                             int64_t samples, int64_t seq_len, int num_shards, bool sequential,
                             int64_t limit_bytes);

// The leasing rule: a worker reporting `worker_max_memory` bytes (0 =
// unknown) may run `task` when either is unknown or the task's estimate fits.
bool WorkerCanHold(int64_t worker_max_memory, const TaskRecord& task);

// Scheduling order of ready tasks within a job, lower first, in
// [0, kLeasePriorities): calibrate (the critical path), decompose, finalize.
inline constexpr int kLeasePriorities = 3;
int LeasePriority(v1::TaskKind kind);

// "decompose layer 3 q_proj" / "calibrate layer 3" / "finalize"; calibrate
// tasks of a job with `num_shards` > 1 name their shard.
std::string DescribeTask(const TaskRecord& task, int num_shards = 1);

}  // namespace caldera::server

#endif  // CALDERA_SERVER_PLANNER_H_
