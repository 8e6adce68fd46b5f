#include "worker/worker_agent.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "job/status_meaning.h"
#include "job/task_plan.h"
#include "storage/retry.h"

namespace caldera::worker {
namespace {

using Clock = std::chrono::steady_clock;

std::unique_ptr<grpc::ClientContext> ContextWithDeadline(double seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  return ctx;
}

// Backoff of the RPC retries while the coordinator is unavailable (it may be
// restarting): 0.1 s doubling up to 2 s, with jitter so that workers spread out.
storage::Backoff RpcBackoff() {
  storage::RetryPolicy policy;
  policy.base_delay = std::chrono::milliseconds(100);
  policy.max_delay = std::chrono::milliseconds(2000);
  return storage::Backoff(policy);
}

}  // namespace

WorkerAgent::WorkerAgent(std::shared_ptr<grpc::Channel> channel, WorkerAgentOptions options)
    : stub_(v1::WorkerService::NewStub(std::move(channel))),
      options_(std::move(options)),
      runner_(options_.storage, options_.search_threads, options_.backend) {}

void WorkerAgent::Log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

absl::Status WorkerAgent::Register() {
  storage::Backoff backoff = RpcBackoff();
  int failures = 0;
  while (!draining_.load()) {
    v1::RegisterWorkerRequest req;
    req.set_hostname(options_.hostname);
    req.set_slots(1);
    req.set_has_gpu(options_.device != "cpu");
    req.set_device(options_.device);
    req.set_max_memory_bytes(options_.max_memory_bytes);
    v1::RegisterWorkerResponse resp;
    auto ctx = ContextWithDeadline(10);
    grpc::Status s = stub_->RegisterWorker(ctx.get(), req, &resp);
    if (s.ok()) {
      worker_id_ = resp.worker_id();
      heartbeat_seconds_ = resp.heartbeat_interval_seconds() > 0 ? resp.heartbeat_interval_seconds()
                                                                 : heartbeat_seconds_;
      Log(absl::StrCat("registered as ", worker_id_, " (device ", options_.device, ")"));
      return absl::OkStatus();
    }
    const auto code = static_cast<absl::StatusCode>(s.error_code());
    if (!job::IsRetryable(code)) {
      return absl::Status(
          code, absl::StrCat("the coordinator refused to register this worker: ", s.error_message(),
                             " (a configuration error: not retrying)"));
    }
    Log(absl::StrCat("cannot register (", s.error_message(), "); retrying"));
    std::this_thread::sleep_for(backoff.DelayFor(failures++));
  }
  return absl::OkStatus();
}

absl::Status WorkerAgent::Run() {
  if (absl::Status s = Register(); !s.ok() || worker_id_.empty()) return s;
  storage::Backoff backoff = RpcBackoff();
  int failures = 0;
  while (!draining_.load()) {
    v1::LeaseTaskRequest req;
    req.set_worker_id(worker_id_);
    req.set_wait_seconds(options_.poll_seconds);
    req.set_max_memory_bytes(options_.max_memory_bytes);
    req.set_device(options_.device);
    v1::LeaseTaskResponse resp;
    auto ctx = ContextWithDeadline(options_.poll_seconds + 10);
    grpc::Status s = stub_->LeaseTask(ctx.get(), req, &resp);
    if (!s.ok()) {
      std::this_thread::sleep_for(backoff.DelayFor(failures++));
      continue;
    }
    failures = 0;
    if (!resp.has_task()) continue;
    RunTask(resp.task());
  }
  Log("drained");
  return absl::OkStatus();
}

void WorkerAgent::RunTask(const v1::Task& task) {
  const std::string kind = absl::AsciiStrToLower(v1::TaskKind_Name(job::KindOf(task)));
  Log(absl::StrCat("running ", task.task_id(), " (attempt ", task.attempt_number(), ")"));
  if (options_.metrics) options_.metrics->TaskStarted();
  const auto start = Clock::now();

  // Heartbeats on their own thread while the task runs.
  std::atomic<bool> stop{false};
  std::atomic<bool> cancelled{false};
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread heartbeat([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, std::chrono::duration<double>(heartbeat_seconds_),
                        [&] { return done; })) {
      lock.unlock();
      v1::HeartbeatRequest req;
      req.set_worker_id(worker_id_);
      req.set_attempt_id(task.attempt_id());
      v1::HeartbeatResponse resp;
      auto ctx = ContextWithDeadline(std::max(1.0, heartbeat_seconds_));
      grpc::Status s = stub_->Heartbeat(ctx.get(), req, &resp);
      if (s.ok() && (resp.cancel() || resp.lease_lost())) {
        Log(absl::StrCat(task.task_id(), resp.cancel() ? ": job cancelled" : ": lease lost",
                         ", stopping the task"));
        cancelled.store(true);
        stop.store(true);
      }
      lock.lock();
    }
  });
  absl::StatusOr<TaskResult> result = runner_.Run(task, [&] { return stop.load(); });
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  }
  heartbeat.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double read = result.ok() ? static_cast<double>(result->io.bytes_read) : 0;
  const double written = result.ok() ? static_cast<double>(result->io.bytes_written) : 0;

  if (cancelled.load()) {
    if (options_.metrics) options_.metrics->TaskEnded(kind, "cancelled", seconds, read, written);
    return;
  }
  // Report; retried while the coordinator is unavailable (it may be restarting).
  storage::Backoff backoff = RpcBackoff();
  int failures = 0;
  const auto give_up = Clock::now() + std::chrono::minutes(5);
  for (;;) {
    grpc::Status s;
    std::string outcome;
    if (result.ok()) {
      v1::CompleteTaskRequest req = result->report;
      req.set_worker_id(worker_id_);
      req.set_attempt_id(task.attempt_id());
      req.set_bytes_read(result->io.bytes_read);
      req.set_bytes_written(result->io.bytes_written);
      req.set_busy_seconds(seconds);
      v1::CompleteTaskResponse resp;
      auto ctx = ContextWithDeadline(30);
      s = stub_->CompleteTask(ctx.get(), req, &resp);
      outcome = resp.accepted() ? "succeeded" : "rejected";
    } else {
      v1::FailTaskRequest req;
      req.set_worker_id(worker_id_);
      req.set_attempt_id(task.attempt_id());
      req.set_error(std::string(result.status().message()));
      req.set_retryable(job::IsRetryable(result.status().code()));
      v1::FailTaskResponse resp;
      auto ctx = ContextWithDeadline(30);
      s = stub_->FailTask(ctx.get(), req, &resp);
      outcome = "failed";
      Log(absl::StrCat(task.task_id(), " failed: ", result.status().message()));
    }
    if (s.ok()) {
      if (options_.metrics) options_.metrics->TaskEnded(kind, outcome, seconds, read, written);
      Log(absl::StrCat(task.task_id(), " ", outcome, " in ", seconds, " s"));
      return;
    }
    if (Clock::now() > give_up) {
      Log(absl::StrCat("cannot report ", task.task_id(), ": ", s.error_message(),
                       "; the lease will expire and the task run again"));
      if (options_.metrics) options_.metrics->TaskEnded(kind, "failed", seconds, read, written);
      return;
    }
    std::this_thread::sleep_for(backoff.DelayFor(failures++));
  }
}

}  // namespace caldera::worker
