#include "server/coordinator_metrics.h"

#include "absl/strings/ascii.h"

namespace caldera::server {
namespace {

constexpr v1::JobState kJobStates[] = {v1::QUEUED, v1::RUNNING, v1::SUCCEEDED, v1::FAILED,
                                       v1::CANCELLED};
constexpr v1::TaskKind kTaskKinds[] = {v1::CALIBRATE, v1::DECOMPOSE, v1::FINETUNE, v1::FINALIZE};
constexpr v1::TaskState kTaskStates[] = {v1::TASK_PENDING, v1::TASK_LEASED, v1::TASK_DONE,
                                         v1::TASK_FAILED, v1::TASK_CANCELLED};

}  // namespace

std::string JobStateLabel(v1::JobState state) {
  return absl::AsciiStrToLower(v1::JobState_Name(state));
}
std::string TaskKindLabel(v1::TaskKind kind) {
  return absl::AsciiStrToLower(v1::TaskKind_Name(kind));
}
std::string TaskStateLabel(v1::TaskState state) {
  return absl::AsciiStrToLower(v1::TaskState_Name(state).substr(5));  // drop "TASK_"
}

CoordinatorMetrics::CoordinatorMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& jobs = prometheus::BuildGauge()
                   .Name("caldera_jobs")
                   .Help("Jobs known to the coordinator, by state")
                   .Register(*registry_);
  for (v1::JobState s : kJobStates) jobs_[s] = &jobs.Add({{"state", JobStateLabel(s)}});
  auto& tasks = prometheus::BuildGauge()
                    .Name("caldera_tasks")
                    .Help("Tasks of all jobs, by kind and state")
                    .Register(*registry_);
  auto& duration = prometheus::BuildHistogram()
                       .Name("caldera_task_duration_seconds")
                       .Help("Run time of committed task attempts, by kind")
                       .Register(*registry_);
  auto& commits = prometheus::BuildCounter()
                      .Name("caldera_task_commits_total")
                      .Help("Task results committed (exactly one per task), by kind")
                      .Register(*registry_);
  const prometheus::Histogram::BucketBoundaries seconds = {0.01, 0.05, 0.1, 0.5, 1,   2,
                                                           5,    10,   30,  60,  300, 1800};
  for (v1::TaskKind k : kTaskKinds) {
    for (v1::TaskState s : kTaskStates) {
      tasks_[{k, s}] = &tasks.Add({{"kind", TaskKindLabel(k)}, {"state", TaskStateLabel(s)}});
    }
    duration_[k] = &duration.Add({{"kind", TaskKindLabel(k)}}, seconds);
    commits_[k] = &commits.Add({{"kind", TaskKindLabel(k)}});
  }
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("caldera_queue_depth")
                      .Help("Tasks whose inputs are ready, waiting for a worker")
                      .Register(*registry_)
                      .Add({});
  workers_ = &prometheus::BuildGauge()
                  .Name("caldera_workers_connected")
                  .Help("Workers heard from within three heartbeat intervals")
                  .Register(*registry_)
                  .Add({});
  retries_ = &prometheus::BuildCounter()
                  .Name("caldera_task_retries_total")
                  .Help("Task attempts re-queued after a failure or an expired lease")
                  .Register(*registry_)
                  .Add({});
  lease_expiries_ = &prometheus::BuildCounter()
                         .Name("caldera_lease_expiries_total")
                         .Help("Leases whose worker stopped heartbeating")
                         .Register(*registry_)
                         .Add({});
  stale_ = &prometheus::BuildCounter()
                .Name("caldera_stale_results_rejected_total")
                .Help("Results of attempts that no longer held the lease, discarded")
                .Register(*registry_)
                .Add({});
  matrix_error_ = &prometheus::BuildHistogram()
                       .Name("caldera_matrix_weighted_error")
                       .Help(
                           "Weighted relative error ||(W - What) X|| / ||W X|| per matrix "
                           "(report.json weighted_relative_error)")
                       .Register(*registry_)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.02, 0.05, 0.1, 0.15,
                                                                        0.2, 0.3, 0.5, 1.0});
  auto& bytes = prometheus::BuildCounter()
                    .Name("caldera_task_storage_bytes_total")
                    .Help("Object-storage bytes moved by workers' tasks, by direction")
                    .Register(*registry_);
  bytes_read_ = &bytes.Add({{"direction", "read"}});
  bytes_written_ = &bytes.Add({{"direction", "written"}});
  reload_failures_ = &prometheus::BuildCounter()
                          .Name("caldera_token_file_reload_failures_total")
                          .Help(
                              "Changed --auth-tokens files refused (unreadable, not a regular "
                              "file, too large, or not parsing); the previous tokens stay")
                          .Register(*registry_)
                          .Add({});
  quota_refusals_ = &prometheus::BuildCounter()
                         .Name("caldera_quota_refusals_total")
                         .Help(
                             "CreateJob calls refused with RESOURCE_EXHAUSTED by an owner's "
                             "queued-jobs quota")
                         .Register(*registry_)
                         .Add({});
  busy_ = &prometheus::BuildCounter()
               .Name("caldera_task_busy_seconds_total")
               .Help("Seconds workers spent running tasks, as reported with results")
               .Register(*registry_)
               .Add({});
}

void CoordinatorMetrics::SetJobs(v1::JobState state, double n) {
  if (auto it = jobs_.find(state); it != jobs_.end()) it->second->Set(n);
}

void CoordinatorMetrics::SetTasks(v1::TaskKind kind, v1::TaskState state, double n) {
  if (auto it = tasks_.find({kind, state}); it != tasks_.end()) it->second->Set(n);
}

void CoordinatorMetrics::TaskCommitted(v1::TaskKind kind, double seconds) {
  if (auto it = duration_.find(kind); it != duration_.end()) it->second->Observe(seconds);
  if (auto it = commits_.find(kind); it != commits_.end()) it->second->Increment();
}

void CoordinatorMetrics::WorkerIo(double read, double written, double busy_seconds) {
  bytes_read_->Increment(read);
  bytes_written_->Increment(written);
  busy_->Increment(busy_seconds);
}

}  // namespace caldera::server
