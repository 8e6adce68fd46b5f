// Job lifecycle and API state: create (validated, planned, idempotent per
// owner), get, list, cancel, the commit of a task's result by the attempt that
// holds its lease, and the end of a job.
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

// Request ids are client idempotency keys (UUIDs, pipeline run ids): bounded
// (kMaxRequestIdBytes, state_check.h) so that stored jobs and ListJobs pages
// stay small.

absl::StatusOr<v1::Job> Coordinator::CreateJob(const v1::CreateJobRequest& request,
                                               const std::string& owner) {
  const std::string& rid = request.request_id();
  if (rid.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id is ", rid.size(), " bytes; use at most ", kMaxRequestIdBytes));
  }
  for (unsigned char ch : rid) {
    if (ch < 0x20 || ch == 0x7F) {
      return absl::InvalidArgumentError(
          "request_id has control characters; use printable text (a UUID, a pipeline run id)");
    }
  }
  absl::StatusOr<job::JobSpec> parsed = job::JobSpecFromProto(request.spec(), rid);
  if (!parsed.ok()) return parsed.status();
  const job::JobSpec spec = *std::move(parsed);
  // The spec as stored (defaults filled in): a repeated request must carry the
  // same one, else it is another job under a reused id.
  const std::string canonical = job::JobSpecToProto(spec).SerializeAsString();
  // The job this request id names (its snapshot: copied outside the lock).
  auto existing = [&]() -> std::optional<absl::StatusOr<std::shared_ptr<const JobSnapshot>>> {
    for (const JobEntry* job : job_order_) {
      if (job->record.request_id != rid || job->record.owner != owner) continue;
      absl::StatusOr<job::JobSpec> stored = job::JobSpecFromProto(job->record.spec, rid);
      if (!stored.ok() || job::JobSpecToProto(*stored).SerializeAsString() != canonical) {
        return absl::AlreadyExistsError(
            absl::StrCat("request_id '", rid, "' was used for jobs/", job->record.id,
                         " with a different spec; use a new request_id for a new job"));
      }
      return SharedSnapshot(*job);
    }
    return std::nullopt;
  };
  auto current = [](const absl::StatusOr<std::shared_ptr<const JobSnapshot>>& found)
      -> absl::StatusOr<v1::Job> {
    if (!found.ok()) return found.status();
    return (*found)->Current();
  };
  {
    std::optional<absl::StatusOr<std::shared_ptr<const JobSnapshot>>> found;
    absl::Status quota;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!rid.empty()) found = existing();
      if (!found) quota = CheckQueuedQuota(owner);  // before validation reads storage
    }
    if (found) return current(*found);
    if (!quota.ok()) return quota;
  }
  // Validation reads storage: outside the lock, so other RPCs go on.
  absl::StatusOr<job::JobShape> shape = job::ValidateJob(spec, options_.storage);
  if (!shape.ok()) return shape.status();

  std::unique_lock<std::mutex> lock(mu_);
  if (shutdown_) return absl::UnavailableError("the coordinator is shutting down; retry");
  if (!rid.empty()) {  // a concurrent create with the same id may have won
    if (auto found = existing()) {
      lock.unlock();
      return current(*found);
    }
  }
  if (absl::Status s = CheckQueuedQuota(owner); !s.ok()) return s;  // again: others may have won
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  auto entry = std::make_unique<JobEntry>();
  JobRecord& r = entry->record;
  r.id = absl::StrCat("j-", RandomHex(12));
  entry->tasks = PlanJob(r.id, shape->num_layers, shape->modules, spec.calibration_shards,
                         spec.finetune_steps > 0);
  const bool sequential = spec.calibration_mode == job::CalibrationMode::kSequential;
  EstimateTaskMemory(shape->config, shape->samples, shape->seq_len, spec.calibration_shards,
                     sequential, &entry->tasks);
  if (absl::Status s =
          CheckTaskMemory(entry->tasks, shape->config, shape->samples, shape->seq_len,
                          spec.calibration_shards, sequential, options_.max_task_memory);
      !s.ok()) {
    return s;
  }
  r.seq = next_seq_++;
  r.request_id = rid;
  r.owner = owner;
  r.spec = job::JobSpecToProto(spec);
  r.state = v1::QUEUED;
  r.create_time = r.update_time = Now();
  entry->calibrate_index = CalibrateIndex(entry->tasks);
  std::vector<const TaskRecord*> tasks;
  for (const TaskRecord& t : entry->tasks) tasks.push_back(&t);
  Persist(entry.get(), tasks, nullptr);
  if (absl::Status s = FinishWrites(); !s.ok()) return s;
  JobEntry* job = entry.get();
  job_order_.push_back(job);
  jobs_[r.id] = std::move(entry);
  Changed(job, absl::StrCat("queued: ", job->tasks.size(), " tasks"));
  std::shared_ptr<const JobSnapshot> snapshot = SharedSnapshot(*job);
  lock.unlock();
  return snapshot->Current();  // the copy is made outside the lock
}

absl::Status Coordinator::CheckQueuedQuota(const std::string& owner) {
  const int64_t limit = QuotaOf(owner).max_queued;
  int64_t queued = 0;
  for (const JobEntry* job : job_order_) {
    if (job->record.state == v1::QUEUED && job->record.owner == owner) ++queued;
  }
  if (queued < limit) return absl::OkStatus();
  if (metrics_ != nullptr) metrics_->QuotaRefused();
  return absl::ResourceExhaustedError(absl::StrCat(
      owner.empty() ? std::string("this coordinator's user") : absl::StrCat("owner ", owner),
      " has ", queued, " queued jobs, the limit of queued=", limit,
      " (the owner's quota; docs/security.md#quotas); wait for some to start or cancel some, "
      "or ask the operator for a larger queued= in the token file"));
}

absl::StatusOr<v1::Job> Coordinator::GetJob(const std::string& name) const {
  std::shared_ptr<const JobSnapshot> snapshot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<JobEntry*> job = FindJobOrError(name);
    if (!job.ok()) return job.status();
    snapshot = SharedSnapshot(**job);
  }
  return snapshot->Current();  // the copy is made outside the lock
}

absl::StatusOr<v1::ListJobsResponse> Coordinator::ListJobs(const v1::ListJobsRequest& request,
                                                           const std::string* only_owner) const {
  if (request.page_size() < 0 || request.page_size() > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", request.page_size(), " is out of range; use 1..1000"));
  }
  const int page_size = request.page_size() == 0 ? 50 : request.page_size();
  int64_t below = INT64_MAX;
  if (!request.page_token().empty() && !absl::SimpleAtoi(request.page_token(), &below)) {
    return absl::InvalidArgumentError(
        "page token is malformed; pass the next_page_token of the previous page");
  }
  // The page's shared snapshots under the lock; their copies (summaries only:
  // no task list, no matrix errors) outside it.
  std::vector<std::shared_ptr<const JobSnapshot>> page;
  v1::ListJobsResponse out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t last_seq = 0;
    for (auto it = job_order_.rbegin(); it != job_order_.rend(); ++it) {
      const JobEntry* job = *it;
      if (job->record.seq >= below) continue;
      if (only_owner != nullptr && job->record.owner != *only_owner) continue;
      if (request.state() != v1::JOB_STATE_UNSPECIFIED && job->record.state != request.state()) {
        continue;
      }
      if (static_cast<int>(page.size()) == page_size) {
        out.set_next_page_token(absl::StrCat(last_seq));
        break;
      }
      page.push_back(SharedSnapshot(*job));
      last_seq = job->record.seq;
    }
  }
  for (const std::shared_ptr<const JobSnapshot>& snapshot : page) {
    *out.add_jobs() = snapshot->CurrentListing();
  }
  return out;
}

absl::StatusOr<v1::Job> Coordinator::CancelJob(const std::string& name) {
  std::unique_lock<std::mutex> lock(mu_);
  absl::StatusOr<JobEntry*> found = FindJobOrError(name);
  if (!found.ok()) return found.status();
  JobEntry* job = *found;
  if (IsTerminal(job->record.state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, " already ended (", v1::JobState_Name(job->record.state), "); nothing to cancel"));
  }
  for (const TaskRecord& t : job->tasks) {
    if (t.kind == v1::FINALIZE && t.state == v1::TASK_LEASED) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " is writing its output checkpoint and can no longer be cancelled; wait for it"));
    }
  }
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  EndJob(job, v1::CANCELLED, "");
  if (absl::Status s = FinishWrites(); !s.ok()) return s;
  std::shared_ptr<const JobSnapshot> snapshot = SharedSnapshot(*job);
  lock.unlock();
  return snapshot->Current();
}

void Coordinator::EndJob(JobEntry* job, v1::JobState state, const std::string& error) {
  const double now = Now();
  job->record.state = state;
  job->record.error = error;
  job->record.end_time = now;
  if (job->record.start_time == 0) job->record.start_time = now;
  std::vector<const TaskRecord*> changed;
  std::vector<AttemptRecord> ended;
  for (TaskRecord& t : job->tasks) {
    if (t.state != v1::TASK_PENDING && t.state != v1::TASK_LEASED) continue;
    if (t.state == v1::TASK_LEASED) {
      leases_.erase(t.lease_attempt);
      if (auto it = attempts_.find(t.lease_attempt); it != attempts_.end()) {
        it->second.outcome = "cancelled";
        it->second.end_time = now;
        ended.push_back(it->second);
        attempts_.erase(it);
      }
    }
    t.state = v1::TASK_CANCELLED;
    changed.push_back(&t);
  }
  Persist(job, changed, nullptr);
  for (const AttemptRecord& a : ended) Persist(nullptr, {}, &a);
  std::string message = absl::StrCat("job ", v1::JobState_Name(state));
  if (!error.empty()) absl::StrAppend(&message, ": ", error);
  Changed(job, std::move(message));
}

v1::CompleteTaskResponse Coordinator::CompleteTask(const v1::CompleteTaskRequest& request,
                                                   absl::Status* status) {
  std::lock_guard<std::mutex> lock(mu_);
  TouchWorker(request.worker_id());
  v1::CompleteTaskResponse out;
  if (metrics_ != nullptr) {
    auto counted = [](double v) { return std::isfinite(v) && v > 0 ? v : 0.0; };
    metrics_->WorkerIo(counted(static_cast<double>(request.bytes_read())),
                       counted(static_cast<double>(request.bytes_written())),
                       counted(request.busy_seconds()));
  }
  if (absl::Status s = CheckWritable(); !s.ok()) {
    if (status != nullptr) *status = s;  // the worker retries the report
    return out;
  }
  auto it = leases_.find(request.attempt_id());
  if (it == leases_.end()) {
    // A retry of a report that was committed (the reply was lost, e.g. the
    // coordinator restarted) is accepted again without a second commit.
    const std::string& attempt = request.attempt_id();
    if (JobEntry* job = FindJob(absl::StrCat("jobs/", JobIdOfAttempt(attempt)))) {
      const std::string task_id = attempt.substr(0, attempt.rfind('/'));
      for (const TaskRecord& t : job->tasks) {
        if (t.id == task_id && t.committed_attempt == attempt) {
          out.set_accepted(true);
          return out;
        }
      }
    }
    // Expired, cancelled or another attempt won: the result is discarded.
    if (metrics_ != nullptr) metrics_->StaleResultRejected();
    out.set_accepted(false);
    return out;
  }
  JobEntry* job = it->second.job;
  TaskRecord& t = job->tasks[it->second.index];
  // Only the worker holding the lease may complete it, and only with the keys
  // this attempt was given to write (never a path of its choosing that the
  // next task would then read).
  if (t.lease_worker != request.worker_id()) {
    std::fprintf(stderr, "caldera-coordinator: %s tried to complete %s leased to %s; refused\n",
                 request.worker_id().substr(0, 128).c_str(), t.id.c_str(), t.lease_worker.c_str());
    out.set_accepted(false);
    return out;
  }
  v1::CompleteTaskRequest assigned;
  job::SetResultOfTask(BuildTask(job->record, job->tasks, job->calibrate_index, t, 0), &assigned);
  std::vector<std::string> results = job::StoredResultUris(request);
  if (results != job::StoredResultUris(assigned)) {
    std::fprintf(stderr,
                 "caldera-coordinator: %s reported other result keys than %s was given; refused\n",
                 request.worker_id().substr(0, 128).c_str(), t.id.c_str());
    out.set_accepted(false);
    return out;
  }
  leases_.erase(it);
  const double now = Now();
  t.state = v1::TASK_DONE;
  t.committed_attempt = request.attempt_id();
  t.result_uris = std::move(results);
  // The service layer refuses non-finite numbers; a direct caller's are not
  // stored either (NaN is NULL to SQLite, and these columns are NOT NULL).
  t.seconds = std::isfinite(request.busy_seconds()) && request.busy_seconds() >= 0
                  ? request.busy_seconds()
                  : 0;
  t.last_error.clear();
  if (!request.matrix_errors().empty()) {
    const double e = request.matrix_errors(0).weighted_relative_error();
    t.weighted_relative_error = std::isfinite(e) && e >= 0 ? e : -1;
  }
  AttemptRecord a;
  if (auto at = attempts_.find(request.attempt_id()); at != attempts_.end()) {
    a = at->second;
    attempts_.erase(at);
  }
  a.id = request.attempt_id();
  a.task_id = t.id;
  a.worker_id = request.worker_id();
  a.end_time = now;
  a.outcome = "committed";
  if (t.kind == v1::FINALIZE) {
    job->record.state = v1::SUCCEEDED;
    job->record.end_time = now;
  }
  Persist(job, {&t}, &a);
  if (absl::Status s = FinishWrites(); !s.ok()) {
    if (status != nullptr) *status = s;
    return v1::CompleteTaskResponse();
  }
  if (metrics_ != nullptr) {
    metrics_->TaskCommitted(t.kind, t.seconds);
    if (t.kind == v1::DECOMPOSE && t.weighted_relative_error >= 0) {
      metrics_->MatrixError(t.weighted_relative_error);
    }
  }
  out.set_accepted(true);
  Changed(job,
          t.kind == v1::FINALIZE
              ? std::string("job SUCCEEDED")
              : absl::StrCat(
                    DescribeTask(t, job->record.spec.calibration_shards()), " done",
                    t.kind == v1::DECOMPOSE
                        ? absl::StrCat(" (weighted error ", t.weighted_relative_error, ")")
                    : request.has_finetune()
                        ? absl::StrCat(" (", request.finetune().steps(), " steps, held-out error ",
                                       request.finetune().holdout_before(), " -> ",
                                       request.finetune().holdout_after(), ")")
                        : std::string()));
  return out;
}

}  // namespace caldera::server
