// Durability: loading the SQLite state, writing every change before a call
// returns, and the degraded mode while the state cannot be written (disk full).
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

absl::Status Coordinator::Load() {
  std::vector<JobRecord> jobs;
  std::vector<TaskRecord> tasks;
  if (absl::Status s = store_->LoadJobs(&jobs); !s.ok()) return s;
  if (absl::Status s = store_->LoadTasks(&tasks); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  for (JobRecord& j : jobs) {
    auto entry = std::make_unique<JobEntry>();
    next_seq_ = std::max(next_seq_, j.seq + 1);
    entry->record = std::move(j);
    job_order_.push_back(entry.get());
    jobs_[entry->record.id] = std::move(entry);
  }
  for (TaskRecord& t : tasks) {
    auto it = jobs_.find(t.job_id);
    if (it == jobs_.end()) continue;
    it->second->tasks.push_back(std::move(t));
  }
  const double now = Now();
  for (JobEntry* job : job_order_) {
    AdoptTasks(job, now);
    if (job->message.empty()) job->message = "coordinator restarted";
  }
  UpdateGauges();
  return absl::OkStatus();
}

void Coordinator::Persist(const JobEntry* job, const std::vector<const TaskRecord*>& tasks,
                          const AttemptRecord* attempt) {
  // After a failed write in this call, nothing more is written: the database
  // keeps the last committed state and FinishWrites() reverts memory to it.
  if (!write_error_.ok()) return;
  StateTransaction tx(store_.get());
  absl::Status s = tx.status();
  if (s.ok() && job != nullptr) s = store_->PutJob(job->record);
  for (const TaskRecord* t : tasks) {
    if (s.ok()) s = store_->PutTask(*t);
  }
  if (s.ok() && attempt != nullptr) s = store_->PutAttempt(*attempt);
  if (s.ok()) s = tx.Commit();
  if (!s.ok()) {
    std::fprintf(stderr,
                 "caldera-coordinator: cannot write the state database (%s); refusing writes "
                 "until it can be written again, reads go on\n",
                 std::string(s.message()).c_str());
    write_error_ = s;
  }
}

absl::Status Coordinator::SetStateMaxPagesForTest(int64_t pages) {
  std::lock_guard<std::mutex> lock(mu_);
  return store_->SetMaxPageCountForTest(pages);
}

absl::Status Coordinator::CheckWritable() {
  if (degraded_.empty()) return absl::OkStatus();
  // Probe at most once a second while the disk stays full.
  const auto now = std::chrono::steady_clock::now();
  if (now - last_probe_ >= std::chrono::seconds(1)) {
    last_probe_ = now;
    if (store_->ProbeWrite().ok()) {
      std::fprintf(stderr, "caldera-coordinator: the state database can be written again\n");
      degraded_.clear();
      return absl::OkStatus();
    }
  }
  return absl::UnavailableError(degraded_);
}

absl::Status Coordinator::FinishWrites() {
  if (write_error_.ok()) return absl::OkStatus();
  degraded_ =
      absl::StrCat("the coordinator cannot write its state database in --data-dir ",
                   options_.data_dir, " (", write_error_.message(),
                   "); the disk is probably full: free space there; until then changes are refused "
                   "(retry later) and reads go on");
  write_error_ = absl::OkStatus();
  last_probe_ = std::chrono::steady_clock::now();
  if (absl::Status s = RevertToStore(); !s.ok()) {
    std::fprintf(stderr,
                 "caldera-coordinator: cannot re-read the state database either (%s); "
                 "serving the state in memory read-only\n",
                 std::string(s.message()).c_str());
  }
  return absl::UnavailableError(degraded_);
}

absl::Status Coordinator::RevertToStore() {
  std::vector<JobRecord> jobs;
  std::vector<TaskRecord> tasks;
  if (absl::Status s = store_->LoadJobs(&jobs); !s.ok()) return s;
  if (absl::Status s = store_->LoadTasks(&tasks); !s.ok()) return s;
  // Entries are updated in place: watchers hold pointers to them.
  for (JobEntry* job : job_order_) job->tasks.clear();
  for (JobRecord& j : jobs) {
    auto it = jobs_.find(j.id);
    if (it == jobs_.end()) {
      auto entry = std::make_unique<JobEntry>();
      job_order_.push_back(entry.get());
      it = jobs_.emplace(j.id, std::move(entry)).first;
    }
    it->second->record = std::move(j);
  }
  for (TaskRecord& t : tasks) {
    auto it = jobs_.find(t.job_id);
    if (it != jobs_.end()) it->second->tasks.push_back(std::move(t));
  }
  leases_.clear();
  attempts_.clear();
  const double now = Now();
  for (JobEntry* job : job_order_) {
    AdoptTasks(job, now);
    Changed(job, "a state write failed: back to the last committed state");
  }
  return absl::OkStatus();
}

void Coordinator::AdoptTasks(JobEntry* job, double now) {
  if (absl::Status bad = CheckStoredJob(job->record, job->tasks); !bad.ok()) {
    // Quarantined: FAILED in memory with the reason, nothing scheduled; its
    // rows stay in the database as they are (a restart finds the same).
    std::fprintf(stderr, "caldera-coordinator: %s; the job is quarantined (FAILED)\n",
                 std::string(bad.message()).c_str());
    job->tasks.clear();
    job->record.state = v1::FAILED;
    job->record.error = absl::StrCat(bad.message(),
                                     "; the job is quarantined: its rows are kept in the state "
                                     "database for inspection, resubmit it to run it again");
    if (job->record.request_id.size() > kMaxRequestIdBytes) job->record.request_id.clear();
    if (job->record.start_time <= 0) job->record.start_time = now;
    if (job->record.end_time <= 0) job->record.end_time = now;
    job->calibrate_index.clear();
    job->message = "quarantined: a corrupt row in the state database";
    return;
  }
  job->calibrate_index = CalibrateIndex(job->tasks);
  for (size_t i = 0; i < job->tasks.size(); ++i) {
    TaskRecord& t = job->tasks[i];
    if (t.state != v1::TASK_LEASED) continue;
    // The worker may still be running: give it a fresh lease to reconnect.
    t.lease_expiry = now + options_.lease_seconds;
    leases_[t.lease_attempt] = TaskRef{job, i};
    AttemptRecord a;
    a.id = t.lease_attempt;
    a.task_id = t.id;
    a.worker_id = t.lease_worker;
    a.number = t.attempts;
    a.start_time = now;
    a.outcome = "running";
    attempts_[a.id] = a;
  }
}

}  // namespace caldera::server
