// WorkerAgent: the worker side of the worker protocol. Registers with the
// coordinator, long-polls for a task, runs it with a TaskRunner while a
// heartbeat thread keeps the lease (and stops the task when the coordinator
// answers "cancel" or "lease lost"), then reports the result or the error.
// Survives coordinator restarts: every RPC is retried with backoff while the
// coordinator is unavailable. Used by caldera-worker and by the in-process
// workers of `calderactl compress`.
#ifndef CALDERA_WORKER_WORKER_AGENT_H_
#define CALDERA_WORKER_WORKER_AGENT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "caldera/v1/worker.grpc.pb.h"
#include "storage/storage_options.h"
#include "worker/task_runner.h"
#include "worker/worker_metrics.h"

namespace caldera::worker {

struct WorkerAgentOptions {
  std::string hostname = "worker";
  storage::StorageOptions storage;
  double poll_seconds = 5;  // long-poll wait per LeaseTask
  // Memory offered for one task, reported at registration and with every
  // lease request (the coordinator leases only tasks estimated to fit); 0 =
  // unknown (any task).
  int64_t max_memory_bytes = 0;
  int search_threads = 1;  // threads for a decompose task's codeword searches
  // Where decompose tasks run their dense kernels (not owned; must outlive
  // the agent; null: the CPU). `device` names it in logs ("cpu", "cuda:0").
  backend::ComputeBackend* backend = nullptr;
  std::string device = "cpu";
  std::shared_ptr<WorkerMetrics> metrics;       // may be null
  std::function<void(const std::string&)> log;  // may be empty
};

class WorkerAgent {
 public:
  WorkerAgent(std::shared_ptr<grpc::Channel> channel, WorkerAgentOptions options);

  // Runs until Drain() is called and the task in progress (if any) ended:
  // OK. A registration the coordinator refuses for a reason that repeating
  // cannot fix (job/status_meaning.h: a wrong or missing token, a worker
  // certificate missing, an invalid request) ends it at once with that
  // status: the configuration must change (caldera-worker exits 2).
  absl::Status Run();
  // Stops taking new tasks; thread-safe, may be called from any thread.
  void Drain() { draining_.store(true); }

 private:
  // OK once registered; a non-retryable refusal; OK (not registered) when
  // draining began first.
  absl::Status Register();
  void RunTask(const v1::Task& task);
  void Log(const std::string& line) const;

  std::unique_ptr<v1::WorkerService::Stub> stub_;
  WorkerAgentOptions options_;
  TaskRunner runner_;
  std::atomic<bool> draining_{false};
  std::string worker_id_;
  double heartbeat_seconds_ = 5;
};

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_WORKER_AGENT_H_
