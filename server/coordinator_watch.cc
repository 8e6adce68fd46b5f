// Watch snapshots: the job as the API shows it, built once per change and
// shared by every reader and watcher; long-poll waits for a job's change.
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

using internal::SetTimes;
using internal::ToTimestamp;
using job::IsTerminal;

v1::Job JobSnapshot::Current() const {
  v1::Job out = job;
  SetTimes(start_time, end_time, terminal, done, total, out.mutable_progress());
  return out;
}

v1::Job JobSnapshot::CurrentListing() const {
  v1::Job out = listing;
  SetTimes(start_time, end_time, terminal, done, total, out.mutable_progress());
  return out;
}

v1::Job Coordinator::Snapshot(const JobEntry& job, bool with_tasks) const {
  const JobRecord& r = job.record;
  v1::Job out;
  out.set_name(absl::StrCat("jobs/", r.id));
  *out.mutable_spec() = r.spec;
  out.set_state(r.state);
  out.set_error(r.error);
  out.set_request_id(r.request_id);
  out.set_owner(r.owner);
  out.set_message(job.message);
  *out.mutable_create_time() = ToTimestamp(r.create_time);
  *out.mutable_update_time() = ToTimestamp(r.update_time);
  v1::JobProgress* p = out.mutable_progress();
  std::map<v1::TaskKind, std::pair<int, int>> counts;  // done, total
  int done = 0;
  int current_layer = -1;
  for (const TaskRecord& t : job.tasks) {
    auto& c = counts[t.kind];
    ++c.second;
    if (t.state == v1::TASK_DONE) {
      ++c.first;
      ++done;
    } else if (current_layer < 0 && t.layer >= 0) {
      current_layer = t.layer;
    }
    if (!with_tasks) continue;
    v1::TaskStatus* ts = out.add_task_status();
    ts->set_task_id(t.id);
    ts->set_kind(t.kind);
    ts->set_layer(t.layer);
    ts->set_module(t.module);
    ts->set_state(t.state);
    ts->set_attempts(t.attempts);
    ts->set_committed_attempt(t.committed_attempt);
    ts->set_last_error(t.last_error);
    ts->set_seconds(t.seconds);
    if (t.kind == v1::DECOMPOSE && t.state == v1::TASK_DONE) {
      v1::MatrixError* e = p->add_matrix_errors();
      e->set_layer(t.layer);
      e->set_module(t.module);
      e->set_weighted_relative_error(t.weighted_relative_error);
    }
  }
  for (const auto& [kind, c] : counts) {
    v1::TaskCounts* tc = p->add_tasks();
    tc->set_kind(kind);
    tc->set_done(c.first);
    tc->set_total(c.second);
  }
  p->set_current_layer(current_layer);
  SetTimes(r.start_time, r.end_time, IsTerminal(r.state), done, static_cast<int>(job.tasks.size()),
           p);
  return out;
}

std::shared_ptr<const JobSnapshot> Coordinator::SharedSnapshot(const JobEntry& job) const {
  if (job.cache != nullptr && job.cache->version == job.version) return job.cache;
  auto snapshot = std::make_shared<JobSnapshot>();
  snapshot->job = Snapshot(job);
  snapshot->listing = Snapshot(job, /*with_tasks=*/false);
  snapshot->version = job.version;
  snapshot->start_time = job.record.start_time;
  snapshot->end_time = job.record.end_time;
  snapshot->terminal = IsTerminal(job.record.state);
  snapshot->total = static_cast<int>(job.tasks.size());
  for (const TaskRecord& t : job.tasks) snapshot->done += t.state == v1::TASK_DONE ? 1 : 0;
  job.cache = snapshot;
  return snapshot;
}

absl::StatusOr<JobChange> Coordinator::WaitForChange(const std::string& name, int64_t after_version,
                                                     double timeout_seconds) const {
  std::unique_lock<std::mutex> lock(mu_);
  absl::StatusOr<JobEntry*> found = FindJobOrError(name);
  if (!found.ok()) return found.status();
  const JobEntry* job = *found;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  job->watch.wait_until(lock, deadline, [&] { return shutdown_ || job->version > after_version; });
  JobChange out;
  out.changed = job->version > after_version;
  out.version = job->version;
  out.message = job->message;
  if (out.changed) out.snapshot = SharedSnapshot(*job);
  return out;
}

}  // namespace caldera::server
