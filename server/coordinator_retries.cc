// The reaper and retries: expired leases re-queued, failed tasks retried with
// a doubling delay or their job failed after max_attempts.
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

using internal::Now;

double RetryDelaySeconds(double base, int attempts) {
  if (!(base > 0)) return 0;
  double delay = base;
  for (int i = 1; i < attempts && delay < kMaxRetryDelaySeconds; ++i) delay *= 2;
  return std::min(delay, kMaxRetryDelaySeconds);
}

void Coordinator::RetryOrFail(JobEntry* job, TaskRecord* t, const std::string& why, bool retryable,
                              double delay) {
  t->last_error = why;
  if (retryable && t->attempts < options_.max_attempts) {
    t->state = v1::TASK_PENDING;
    t->lease_attempt.clear();
    t->lease_worker.clear();
    t->retry_after = delay > 0 ? Now() + delay : 0;
    Persist(job, {t}, nullptr);
    if (metrics_ != nullptr) metrics_->TaskRetried();
    Changed(job, absl::StrCat(
                     DescribeTask(*t, job->record.spec.calibration_shards()), " will be retried",
                     delay > 0 ? absl::StrCat(" in ", delay, " s") : std::string(), ": ", why));
    return;
  }
  t->state = v1::TASK_FAILED;
  Persist(nullptr, {t}, nullptr);
  EndJob(job, v1::FAILED,
         absl::StrCat(DescribeTask(*t, job->record.spec.calibration_shards()), " failed (attempt ",
                      t->attempts, " of at most ", options_.max_attempts, "): ", why));
}

void Coordinator::FailTask(const v1::FailTaskRequest& request, absl::Status* status) {
  std::lock_guard<std::mutex> lock(mu_);
  TouchWorker(request.worker_id());
  if (absl::Status s = CheckWritable(); !s.ok()) {
    if (status != nullptr) *status = s;
    return;
  }
  auto it = leases_.find(request.attempt_id());
  if (it == leases_.end()) return;  // no longer holds the lease: nothing to do
  JobEntry* job = it->second.job;
  TaskRecord& t = job->tasks[it->second.index];
  if (request.worker_id() != t.lease_worker) {  // only the holder may fail its lease
    std::fprintf(stderr, "caldera-coordinator: %s tried to fail %s leased to %s; refused\n",
                 request.worker_id().substr(0, 128).c_str(), t.id.c_str(), t.lease_worker.c_str());
    return;
  }
  leases_.erase(it);
  if (auto at = attempts_.find(request.attempt_id()); at != attempts_.end()) {
    at->second.outcome = "failed";
    at->second.error = request.error();
    at->second.end_time = Now();
    Persist(nullptr, {}, &at->second);
    attempts_.erase(at);
  }
  RetryOrFail(job, &t, request.error(), request.retryable(),
              RetryDelaySeconds(options_.retry_delay_seconds, t.attempts));
  if (absl::Status s = FinishWrites(); !s.ok() && status != nullptr) *status = s;
}

void Coordinator::ReaperLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    changed_.wait_for(lock, std::chrono::milliseconds(200));
    if (shutdown_) break;
    // While the state cannot be written, leases are not expired (the
    // workers' heartbeats still extend them).
    if (!CheckWritable().ok()) continue;
    const double now = Now();
    std::vector<std::string> expired;
    for (const auto& [attempt, ref] : leases_) {
      if (ref.job->tasks[ref.index].lease_expiry < now) expired.push_back(attempt);
    }
    for (const std::string& attempt : expired) {
      // An earlier expiry in this loop may have failed the job and dropped its
      // other leases (found by the coordinator_requests fuzzer): skip those.
      auto lease = leases_.find(attempt);
      if (lease == leases_.end()) continue;
      TaskRef ref = lease->second;
      leases_.erase(lease);
      TaskRecord& t = ref.job->tasks[ref.index];
      if (auto at = attempts_.find(attempt); at != attempts_.end()) {
        at->second.outcome = "expired";
        at->second.end_time = now;
        Persist(nullptr, {}, &at->second);
        attempts_.erase(at);
      }
      if (metrics_ != nullptr) metrics_->LeaseExpired();
      RetryOrFail(
          ref.job, &t,
          absl::StrCat("worker ", BoundedQuote(t.lease_worker, kMaxWorkerIdBytes),
                       " stopped heartbeating (lease of ", options_.lease_seconds, " s expired)"),
          /*retryable=*/true, /*delay=*/0);
    }
    (void)FinishWrites();
    UpdateGauges();
  }
}

}  // namespace caldera::server
