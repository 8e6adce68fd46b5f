// TaskRunner: executes one leased task (caldera.v1.Task) with the executors of
// executors.h — reading its input URIs and writing its attempt-unique output
// URIs — and reports what it produced. No RPC: the WorkerAgent talks to the
// coordinator. Thread-compatible; one runner per worker slot.
#ifndef CALDERA_WORKER_TASK_RUNNER_H_
#define CALDERA_WORKER_TASK_RUNNER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "caldera/v1/worker.pb.h"
#include "core/model/checkpoint.h"
#include "storage/storage_options.h"
#include "worker/executors.h"

namespace caldera::worker {

struct TaskResult {
  std::vector<std::string> result_uris;  // committed as the task's outputs
  std::vector<v1::MatrixError> matrix_errors;
  IoCounts io;
};

class TaskRunner {
 public:
  // `search_threads`: threads for a decompose task's codeword searches.
  explicit TaskRunner(storage::StorageOptions options, int search_threads = 1)
      : options_(std::move(options)), search_threads_(search_threads) {}

  // Runs `task`; `cancelled` is polled between steps (CANCELLED when it
  // fires). INVALID_ARGUMENT / NOT_FOUND mean the input is wrong (not worth a
  // retry); other errors may be transient.
  absl::StatusOr<TaskResult> Run(const v1::Task& task, const std::function<bool()>& cancelled);

 private:
  // The task's model, opened once per model URI (headers only).
  absl::StatusOr<const model::Checkpoint*> Model(const std::string& uri);

  storage::StorageOptions options_;
  int search_threads_;
  std::string model_uri_;
  std::unique_ptr<model::Checkpoint> model_;
};

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_TASK_RUNNER_H_
