// Scheduling: worker registration, leasing (memory-aware, GPU workers take the
// largest ready decompose task, long polls), heartbeats.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/util/bounded_quote.h"
#include "job/job_spec_proto.h"
#include "job/job_state.h"
#include "job/job_validation.h"
#include "job/memory_estimate.h"
#include "job/task_plan.h"
#include "server/coordinator.h"
#include "server/coordinator_internal.h"
#include "server/planner.h"
#include "server/state_check.h"

namespace caldera::server {

using internal::JobIdOfAttempt;
using internal::Now;
using job::IsTerminal;

void Coordinator::TouchWorker(const std::string& worker_id, int64_t memory, bool gpu) {
  workers_.Touch(worker_id, Now(), memory, gpu);
}

bool Coordinator::SomeWorkerCanHold(const TaskRecord& task) const {
  return workers_.AnyConnected(Now(), [&](int64_t memory) { return WorkerCanHold(memory, task); });
}

bool Coordinator::WaitsForRunningQuota(JobEntry* job,
                                       std::optional<std::map<std::string, int64_t>>* running) {
  if (job->record.state != v1::QUEUED) return false;
  if (!running->has_value()) {
    running->emplace();
    for (const JobEntry* j : job_order_) {
      if (j->record.state == v1::RUNNING) ++(**running)[j->record.owner];
    }
  }
  const int64_t limit = QuotaOf(job->record.owner).max_running;
  auto it = (*running)->find(job->record.owner);
  const int64_t now_running = it == (*running)->end() ? 0 : it->second;
  if (now_running < limit) return false;
  std::string why = absl::StrCat("queued: waits for one of its owner's ", now_running,
                                 " running jobs to end (running=", limit,
                                 " jobs at once, the owner's quota; docs/security.md#quotas)");
  if (job->message != why) Changed(job, std::move(why));
  return true;
}

v1::RegisterWorkerResponse Coordinator::RegisterWorker(const v1::RegisterWorkerRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  v1::RegisterWorkerResponse out;
  // Bounded, printable (it lands in job messages and the attempts table).
  out.set_worker_id(absl::StrCat(WorkerIdPrefix(request.hostname()), "-", RandomHex(12)));
  out.set_heartbeat_interval_seconds(options_.heartbeat_seconds);
  out.set_lease_duration_seconds(options_.lease_seconds);
  TouchWorker(out.worker_id(), request.max_memory_bytes(),
              absl::StartsWith(request.device(), "cuda"));
  UpdateGauges();
  return out;
}

bool Coordinator::TryLease(const std::string& worker_id, v1::Task* task, double* next_retry) {
  const double now = Now();
  double earliest_retry = 0;
  const int64_t worker_memory = workers_.MemoryOf(worker_id);
  const bool gpu = workers_.IsGpu(worker_id);
  const int decompose_rank = LeasePriority(v1::DECOMPOSE);
  std::optional<std::map<std::string, int64_t>> running;  // by owner, counted on first use
  for (JobEntry* job : job_order_) {
    if (IsTerminal(job->record.state)) continue;
    if (WaitsForRunningQuota(job, &running)) continue;
    // Ready calibrate first, then decompose, then finalize (plan order within;
    // a GPU worker: the largest ready decompose task, the first of equals).
    size_t pick = job->tasks.size();
    int best = kLeasePriorities;
    bool reported = false;
    for (size_t i = 0; i < job->tasks.size() && best > 0; ++i) {
      const TaskRecord& t = job->tasks[i];
      if (t.state != v1::TASK_PENDING) continue;
      // Backing off after a retryable failure (a retry time further away than
      // the longest delay means the clock went back: retry now).
      if (t.retry_after > now && t.retry_after <= now + kMaxRetryDelaySeconds) {
        if (earliest_retry == 0 || t.retry_after < earliest_retry) earliest_retry = t.retry_after;
        continue;
      }
      const int rank = LeasePriority(t.kind);
      const bool larger = gpu && rank == decompose_rank && rank == best &&
                          t.memory_bytes > job->tasks[pick].memory_bytes;
      if ((rank >= best && !larger) ||
          !TaskIsReady(job->tasks, job->calibrate_index, i,
                       job->record.spec.calibration_mode() == "sequential"))
        continue;
      if (!WorkerCanHold(worker_memory, t)) {
        if (!reported && !SomeWorkerCanHold(t)) {
          reported = true;  // the first such task in plan order
          // Waits (a larger worker may register); the job's message says why.
          std::string why =
              absl::StrCat(DescribeTask(t, job->record.spec.calibration_shards()),
                           " waits: it needs about ", job::FormatBytes(t.memory_bytes),
                           " and no connected worker has that much --max-memory (use more "
                           "--calibration-shards or a larger worker)");
          if (job->message != why) Changed(job, std::move(why));
        }
        continue;
      }
      best = rank;
      pick = i;
    }
    if (pick == job->tasks.size()) continue;
    TaskRecord& t = job->tasks[pick];
    ++t.attempts;
    t.retry_after = 0;
    t.state = v1::TASK_LEASED;
    t.lease_worker = worker_id;
    t.lease_expiry = now + options_.lease_seconds;
    const std::string task_short = t.id.substr(t.id.find('/') + 1);
    t.lease_attempt =
        absl::StrCat(job->record.id, "/", task_short, "/a", t.attempts, "-", RandomHex(8));
    AttemptRecord a;
    a.id = t.lease_attempt;
    a.task_id = t.id;
    a.worker_id = worker_id;
    a.number = t.attempts;
    a.start_time = now;
    a.outcome = "running";
    if (job->record.state == v1::QUEUED) {
      job->record.state = v1::RUNNING;
      job->record.start_time = now;
    }
    Persist(job, {&t}, &a);
    attempts_[a.id] = a;
    leases_[a.id] = TaskRef{job, pick};
    *task = BuildTask(job->record, job->tasks, job->calibrate_index, t,
                      job->record.start_time > 0 ? now - job->record.start_time : 0);
    Changed(job, absl::StrCat(DescribeTask(t, job->record.spec.calibration_shards()),
                              " started on ", worker_id, " (attempt ", t.attempts, ")"));
    return true;
  }
  if (next_retry != nullptr) *next_retry = earliest_retry;
  return false;
}

v1::LeaseTaskResponse Coordinator::LeaseTask(const v1::LeaseTaskRequest& request,
                                             absl::Status* status) {
  v1::LeaseTaskResponse out;
  // NaN or negative: no wait (a NaN deadline never passes and would spin).
  const double asked = request.wait_seconds();
  const double wait = asked > 0 ? std::min(asked, options_.max_long_poll_seconds) : 0.0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait);
  if (!IsValidWorkerId(request.worker_id())) {
    if (status != nullptr) {
      *status = absl::InvalidArgumentError(
          absl::StrCat("worker_id must be 1 to ", kMaxWorkerIdBytes,
                       " printable characters (the id RegisterWorker returned); got ",
                       request.worker_id().size(), " bytes"));
    }
    return out;
  }
  std::unique_lock<std::mutex> lock(mu_);
  TouchWorker(request.worker_id(), request.max_memory_bytes(),
              absl::StartsWith(request.device(), "cuda"));
  // While the state cannot be written no task is leased (the poll returns
  // empty and the worker polls again); a lease whose write fails is UNAVAILABLE.
  double next_retry = 0;  // Unix s: a backed-off task becomes leasable; 0 = none
  auto try_lease = [&]() -> bool {
    next_retry = 0;
    if (!CheckWritable().ok()) return false;
    const bool leased = TryLease(request.worker_id(), out.mutable_task(), &next_retry);
    if (absl::Status s = FinishWrites(); !s.ok()) {
      if (status != nullptr) *status = s;
      out.clear_task();
      return true;
    }
    if (!leased) out.clear_task();
    return leased;
  };
  for (;;) {
    TouchWorker(request.worker_id());
    if (shutdown_) return out;
    if (try_lease()) return out;
    // Wakes on a change, at the deadline, or when a backed-off task's retry
    // time comes (nothing else signals that).
    auto wake = deadline;
    if (next_retry > 0) {
      const auto retry_at =  // the type of `deadline`
          std::chrono::steady_clock::now() + std::chrono::duration<double>(next_retry - Now());
      wake = std::min(wake, retry_at);
    }
    if (changed_.wait_until(lock, wake) == std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      try_lease();
      return out;
    }
  }
}

v1::HeartbeatResponse Coordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse out;
  std::lock_guard<std::mutex> lock(mu_);
  TouchWorker(request.worker_id());  // ignores an invalid id, which holds no lease
  JobEntry* job = FindJob(absl::StrCat("jobs/", JobIdOfAttempt(request.attempt_id())));
  if (job != nullptr && IsTerminal(job->record.state)) {
    out.set_cancel(true);
    return out;
  }
  auto it = leases_.find(request.attempt_id());
  // Another worker's attempt is not extended (a lease belongs to its holder).
  if (it == leases_.end() ||
      it->second.job->tasks[it->second.index].lease_worker != request.worker_id()) {
    out.set_lease_lost(true);
    return out;
  }
  it->second.job->tasks[it->second.index].lease_expiry = Now() + options_.lease_seconds;
  return out;
}

}  // namespace caldera::server
