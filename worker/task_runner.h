// TaskRunner: executes one leased task (caldera.v1.Task) — one step of the
// pipeline library (pipeline/) per kind of the task's `work` oneof, reading the keys the task
// names and writing its attempt-unique output keys — and reports what it
// produced. No RPC: the WorkerAgent talks to the coordinator.
// Thread-compatible; one runner per worker slot.
#ifndef CALDERA_WORKER_TASK_RUNNER_H_
#define CALDERA_WORKER_TASK_RUNNER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "caldera/v1/worker.pb.h"
#include "core/model/checkpoint.h"
#include "job/job_spec.h"
#include "pipeline/step_environment.h"
#include "storage/storage_options.h"
#include "worker/model_cache.h"

namespace caldera::worker {

struct TaskResult {
  // The result oneof (the keys written) and matrix_errors; the agent adds
  // the ids and counters before it sends it.
  v1::CompleteTaskRequest report;
  pipeline::IoCounts io;
};

class TaskRunner {
 public:
  // `search_threads`: threads for a decompose task's codeword searches.
  // `backend`: where decompose tasks run their dense kernels (not owned;
  // must outlive the runner; null: the CPU).
  explicit TaskRunner(storage::StorageOptions options, int search_threads = 1,
                      backend::ComputeBackend* backend = nullptr)
      : options_(options),
        search_threads_(search_threads),
        backend_(backend),
        models_(std::move(options)) {}

  // Runs `task`; `cancelled` is polled between steps (CANCELLED when it
  // fires). PERMISSION_DENIED, before anything is read, for a task whose
  // locations break worker/task_confinement.h. INVALID_ARGUMENT / NOT_FOUND mean the input is wrong
  // (not worth a retry); other errors may be transient.
  absl::StatusOr<TaskResult> Run(const v1::Task& task, const std::function<bool()>& cancelled);

 private:
  // The pipeline's environment for one task of this runner.
  pipeline::StepEnvironment Environment(const std::function<bool()>& cancelled) const;
  // One per task kind.
  absl::StatusOr<TaskResult> RunCalibrate(const model::Checkpoint& ckpt, const job::JobSpec& spec,
                                          const v1::CalibrateTask& task,
                                          const std::function<bool()>& cancelled);
  absl::StatusOr<TaskResult> RunDecompose(const model::Checkpoint& ckpt, const job::JobSpec& spec,
                                          const v1::DecomposeTask& task,
                                          const std::function<bool()>& cancelled);
  absl::StatusOr<TaskResult> RunFinetune(const model::Checkpoint& ckpt, const job::JobSpec& spec,
                                         const v1::FinetuneTask& task,
                                         const std::function<bool()>& cancelled);
  // A retried finalize (attempt > 1) whose earlier attempt already wrote
  // this job's report.json (same request id and matrix count) and then began
  // removing scratch, so that some input artifact is gone: that attempt
  // finished the checkpoint and was lost before its completion reached the
  // coordinator. Finalize is otherwise re-run from its inputs.
  bool EarlierFinalizeFinished(const job::JobSpec& spec, const v1::FinalizeTask& task) const;
  absl::StatusOr<TaskResult> RunFinalize(const model::Checkpoint& ckpt, const job::JobSpec& spec,
                                         const v1::FinalizeTask& task,
                                         const std::function<bool()>& cancelled);

  storage::StorageOptions options_;
  int search_threads_;
  backend::ComputeBackend* backend_;
  // The task's model (headers only), reopened when its URI or files change.
  ModelCache models_;
};

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_TASK_RUNNER_H_
