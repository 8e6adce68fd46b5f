// The coordinator itself: opening it (state loaded, reaper started), shutdown,
// the job table and its change notifications, and the gauges.
#include "server/coordinator.h"

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
#include "server/coordinator_internal.h"
#include "server/planner.h"
#include "server/state_check.h"

namespace caldera::server {

using internal::Now;
using job::IsTerminal;

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Open(
    CoordinatorOptions options, std::shared_ptr<CoordinatorMetrics> metrics) {
  if (options.lease_seconds <= 0 || options.heartbeat_seconds <= 0 ||
      options.heartbeat_seconds >= options.lease_seconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lease ", options.lease_seconds, " s and heartbeat ", options.heartbeat_seconds,
        " s are invalid; both must be positive and the heartbeat shorter than the "
        "lease"));
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("max attempts must be at least 1");
  }
  if (!(options.retry_delay_seconds >= 0 && options.retry_delay_seconds <= kMaxRetryDelaySeconds)) {
    return absl::InvalidArgumentError(absl::StrCat("retry delay ", options.retry_delay_seconds,
                                                   " s is invalid; use 0 (retry at once) to ",
                                                   kMaxRetryDelaySeconds, " s"));
  }
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open(options.data_dir);
  if (!store.ok()) return store.status();
  std::unique_ptr<Coordinator> c(
      new Coordinator(std::move(options), std::move(metrics), *std::move(store)));
  if (absl::Status s = c->Load(); !s.ok()) return s;
  c->reaper_ = std::thread([p = c.get()] { p->ReaperLoop(); });
  return c;
}

Coordinator::Coordinator(CoordinatorOptions options, std::shared_ptr<CoordinatorMetrics> metrics,
                         std::unique_ptr<StateStore> store)
    : options_(std::move(options)),
      metrics_(std::move(metrics)),
      store_(std::move(store)),
      // Connected: heard from within three heartbeats (and a long poll);
      // forgotten after ten of them, or a lease period, whichever is longer.
      workers_(3 * options_.heartbeat_seconds + options_.max_long_poll_seconds,
               std::max(10 * options_.heartbeat_seconds, options_.lease_seconds) +
                   options_.max_long_poll_seconds),
      rng_(std::random_device{}()) {}

Coordinator::~Coordinator() {
  Shutdown();
  if (reaper_.joinable()) reaper_.join();
}

void Coordinator::SetQuotaSource(QuotaSource source) {
  std::lock_guard<std::mutex> lock(mu_);
  quota_source_ = std::move(source);
}

OwnerQuota Coordinator::QuotaOf(const std::string& owner) const {
  return quota_source_ ? quota_source_(owner) : OwnerQuota();
}

void Coordinator::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  changed_.notify_all();
  for (const JobEntry* job : job_order_) job->watch.notify_all();
}

bool Coordinator::shutting_down() const {
  std::lock_guard<std::mutex> lock(mu_);
  return shutdown_;
}

std::string Coordinator::RandomHex(int chars) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < chars; ++i) s.push_back(kHex[rng_() % 16]);
  return s;
}

void Coordinator::Changed(JobEntry* job, std::string message) {
  job->record.update_time = Now();
  ++job->version;
  job->message = std::move(message);
  UpdateGauges();
  changed_.notify_all();
  job->watch.notify_all();
}

void Coordinator::UpdateGauges() {
  if (metrics_ == nullptr) return;
  std::map<v1::JobState, int> jobs;
  std::map<std::pair<v1::TaskKind, v1::TaskState>, int> tasks;
  int ready = 0;
  for (const JobEntry* job : job_order_) {
    ++jobs[job->record.state];
    const bool active = !IsTerminal(job->record.state);
    for (size_t i = 0; i < job->tasks.size(); ++i) {
      const TaskRecord& t = job->tasks[i];
      ++tasks[{t.kind, t.state}];
      if (active && t.state == v1::TASK_PENDING &&
          TaskIsReady(job->tasks, job->calibrate_index, i,
                      job->record.spec.calibration_mode() == "sequential")) {
        ++ready;
      }
    }
  }
  for (v1::JobState s : {v1::QUEUED, v1::RUNNING, v1::SUCCEEDED, v1::FAILED, v1::CANCELLED}) {
    metrics_->SetJobs(s, jobs[s]);
  }
  for (v1::TaskKind k : {v1::CALIBRATE, v1::DECOMPOSE, v1::FINETUNE, v1::FINALIZE}) {
    for (v1::TaskState s :
         {v1::TASK_PENDING, v1::TASK_LEASED, v1::TASK_DONE, v1::TASK_FAILED, v1::TASK_CANCELLED}) {
      metrics_->SetTasks(k, s, tasks[{k, s}]);
    }
  }
  metrics_->SetQueueDepth(ready);
  metrics_->SetWorkersConnected(workers_.Connected(Now()));
}

Coordinator::JobEntry* Coordinator::FindJob(const std::string& name) const {
  absl::string_view id = name;
  if (!absl::ConsumePrefix(&id, "jobs/")) return nullptr;
  auto it = jobs_.find(std::string(id));
  return it == jobs_.end() ? nullptr : it->second.get();
}

absl::StatusOr<Coordinator::JobEntry*> Coordinator::FindJobOrError(const std::string& name) const {
  if (!absl::StartsWith(name, "jobs/")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job name \"", BoundedQuote(name), "\" is malformed; names look like jobs/j-1a2b3c4d"));
  }
  JobEntry* job = FindJob(name);
  if (job == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        BoundedQuote(name), " does not exist; `calderactl list` shows the known jobs"));
  }
  return job;
}

}  // namespace caldera::server
