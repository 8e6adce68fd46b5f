// Coordinator: jobs, their plans and the leases of their tasks. The gRPC
// services (job_service.h, worker_service.h) are thin wrappers around it, and
// `calderactl compress` embeds one.
//
// Scheduling: jobs in creation order; within a job, ready calibrate tasks
// first (they are the critical path), then decompose tasks in plan order
// (a worker that registered a CUDA device takes the ready decompose task with
// the largest estimate instead, so the slow CPU workers are not the ones
// left holding a job's largest matrices), then finalize. Memory: a task goes only to a worker whose
// reported max_memory_bytes holds the task's estimate (WorkerCanHold, planner.h); a ready task no
// connected worker can hold waits, and the job's message says so. A lease lasts lease_seconds and
// is extended by heartbeats; the reaper thread re-queues tasks whose lease expired, and fails the
// job after max_attempts attempts of one task. A result is committed only from the attempt that
// holds the lease (attempt ids are unique and name the scratch keys a worker writes), so each task
// is committed exactly once.
//
// Durability: every change is written to the StateStore before the call
// returns; Open() reloads it, gives every held lease a fresh lease period (its
// worker may still be running and will heartbeat again), and goes on.
//
// Disk full: when a write to the StateStore fails (SQLITE_FULL, an I/O
// error), the call that made the change returns UNAVAILABLE, memory goes back
// to the last committed state (as after a restart, without one), and every
// later change (CreateJob, CancelJob, leasing, CompleteTask, FailTask, lease
// expiry) is refused with UNAVAILABLE naming the data directory, while reads
// (GetJob, ListJobs, WatchJob) and heartbeats go on. A probe write at most
// once a second ends the degraded mode when space returns. Never aborts.
//
// Thread-safe.
//
// One class, one file per job: coordinator.cc (open, shutdown, the job table),
// coordinator_jobs.cc (job lifecycle and API state, committing results),
// coordinator_scheduling.cc (registration, leasing, heartbeats),
// coordinator_durability.cc (the state store and the degraded mode),
// coordinator_retries.cc (the reaper and retries), coordinator_watch.cc
// (snapshots and watches).
#ifndef CALDERA_SERVER_COORDINATOR_H_
#define CALDERA_SERVER_COORDINATOR_H_

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "caldera/v1/jobs.pb.h"
#include "caldera/v1/worker.pb.h"
#include "server/coordinator_metrics.h"
#include "server/owner_quota.h"
#include "server/state_store.h"
#include "server/worker_table.h"
#include "storage/storage_options.h"

namespace caldera::server {

// The longest wait of a retry (CoordinatorOptions::retry_delay_seconds).
inline constexpr double kMaxRetryDelaySeconds = 300;

// Seconds a task waits before attempt `attempts` + 1 after a retryable
// failure of attempt `attempts` (>= 1): base, 2 base, 4 base, ... capped.
double RetryDelaySeconds(double base, int attempts);

struct CoordinatorOptions {
  std::string data_dir;          // SQLite state lives here
  double lease_seconds = 30;     // a task's lease without heartbeats
  double heartbeat_seconds = 5;  // told to workers at registration
  int max_attempts = 3;          // attempts of one task before the job fails
  // A task a worker failed retryably (a full output disk, an unreachable
  // store) waits this long before its next lease, doubled per further
  // attempt, at most kMaxRetryDelaySeconds; 0 = at once. An expired lease is
  // re-queued at once (it already waited lease_seconds).
  double retry_delay_seconds = 5;
  double max_long_poll_seconds = 10;
  storage::StorageOptions storage;  // for submit-time validation
  // --max-task-memory: a job with a task estimated (job/memory_estimate.h)
  // above this many bytes is refused at submit; 0 = no limit.
  int64_t max_task_memory = 0;
};

// A job snapshot built once per change of the job and shared, read-only, by
// GetJob, ListJobs, CreateJob, CancelJob and every watcher of that change
// (copied outside the coordinator's lock). Current() is the snapshot with elapsed and remaining
// time as of now.
struct JobSnapshot {
  v1::Job job;      // elapsed/remaining as of the build
  v1::Job listing;  // `job` without task_status and matrix errors (ListJobs)
  int64_t version = 0;
  double start_time = 0;  // Unix s; 0 = not started
  double end_time = 0;    // Unix s; 0 = not ended
  int done = 0;           // tasks done
  int total = 0;          // tasks in the plan
  bool terminal = false;

  v1::Job Current() const;
  v1::Job CurrentListing() const;  // `listing` as of now
};

// A job's change counter and, when it changed, the snapshot at that counter.
struct JobChange {
  std::shared_ptr<const JobSnapshot> snapshot;  // null when !changed
  int64_t version = 0;
  std::string message;   // what changed last ("decompose layer 3 q_proj done")
  bool changed = false;  // false: timed out or shutting down with no change
};

class Coordinator {
 public:
  // Opens or creates the state in options.data_dir and starts the reaper.
  // `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Open(
      CoordinatorOptions options, std::shared_ptr<CoordinatorMetrics> metrics);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Where the owners' quotas come from (the token file); null = the
  // defaults for everyone. The source is called with the coordinator's lock
  // held and must not block.
  void SetQuotaSource(QuotaSource source);
  std::shared_ptr<CoordinatorMetrics> metrics() const { return metrics_; }
  // Seconds after which a worker id not heard from is forgotten (WorkerTable).
  double worker_forget_seconds() const { return workers_.forget_seconds(); }

  // Wakes every long poll and watch; they return at once from now on.
  void Shutdown();
  bool shutting_down() const;

  // ---- Public API (names are "jobs/<id>") ---------------------------------
  // Validates the job (job_validation.h) before creating it, owned by `owner`
  // (the caller's identity; "" in the local single-user mode); a request_id
  // this owner used before returns that job unchanged (ids are per owner).
  // RESOURCE_EXHAUSTED naming the quota when the owner already has its
  // OwnerQuota::max_queued jobs waiting to start.
  absl::StatusOr<v1::Job> CreateJob(const v1::CreateJobRequest& request,
                                    const std::string& owner = "");
  absl::StatusOr<v1::Job> GetJob(const std::string& name) const;
  // Only jobs of `*only_owner` when it is set (a submitter's view).
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request,
                                                const std::string* only_owner = nullptr) const;
  // FAILED_PRECONDITION when the job already ended or is writing its output.
  absl::StatusOr<v1::Job> CancelJob(const std::string& name);
  // Waits up to `timeout_seconds` for the job to change after `after_version`
  // (-1: return the current snapshot at once). Wakes only for changes of this
  // job (or Shutdown); the snapshot is built at most once per change and
  // shared by all callers, so an idle watch costs no snapshot.
  absl::StatusOr<JobChange> WaitForChange(const std::string& name, int64_t after_version,
                                          double timeout_seconds) const;

  // Tests: PRAGMA max_page_count of the state database (StateStore), to make
  // it full and to free space again.
  absl::Status SetStateMaxPagesForTest(int64_t pages);

  // ---- Worker protocol --------------------------------------------------------
  // Worker ids are bounded (IsValidWorkerId, worker_table.h): LeaseTask with
  // another id is INVALID_ARGUMENT and leases nothing, Heartbeat answers
  // lease_lost. RegisterWorker makes ids from a sanitized, bounded hostname.
  // `status` (optional): set to UNAVAILABLE when the call's change could not
  // be written to the state database (the change is then undone; see
  // "Disk full" above); the caller should retry later.
  v1::RegisterWorkerResponse RegisterWorker(const v1::RegisterWorkerRequest& request);
  // Long poll: waits up to min(wait_seconds, max_long_poll_seconds). While the
  // state cannot be written, returns no task.
  v1::LeaseTaskResponse LeaseTask(const v1::LeaseTaskRequest& request,
                                  absl::Status* status = nullptr);
  v1::HeartbeatResponse Heartbeat(const v1::HeartbeatRequest& request);
  v1::CompleteTaskResponse CompleteTask(const v1::CompleteTaskRequest& request,
                                        absl::Status* status = nullptr);
  void FailTask(const v1::FailTaskRequest& request, absl::Status* status = nullptr);

 private:
  struct JobEntry {
    JobRecord record;
    std::vector<TaskRecord> tasks;
    std::vector<size_t> calibrate_index;
    int64_t version = 0;  // +1 on every change visible in a snapshot (Changed())
    std::string message;
    // Watchers of this job wait here (with mu_); Changed() and Shutdown() notify.
    mutable std::condition_variable watch;
    // The last snapshot built; current while its version == version.
    mutable std::shared_ptr<const JobSnapshot> cache;
  };
  struct TaskRef {
    JobEntry* job;
    size_t index;
  };

  Coordinator(CoordinatorOptions options, std::shared_ptr<CoordinatorMetrics> metrics,
              std::unique_ptr<StateStore> store);
  absl::Status Load();
  void ReaperLoop();

  // All below: mu_ held.
  JobEntry* FindJob(const std::string& name) const;
  absl::StatusOr<JobEntry*> FindJobOrError(const std::string& name) const;
  // The job as the API shows it; `with_tasks` false: without the per-task
  // lists (task_status, progress.matrix_errors).
  v1::Job Snapshot(const JobEntry& job, bool with_tasks = true) const;
  // The cached snapshot of the job's current version (built when stale).
  std::shared_ptr<const JobSnapshot> SharedSnapshot(const JobEntry& job) const;
  // Leases the first ready task `worker_id` can hold. False when none; then
  // *next_retry (when not null) is the earliest retry_after of a task that
  // waits for its retry time, or 0.
  bool TryLease(const std::string& worker_id, v1::Task* task, double* next_retry);
  // Ends `job` in `state` with `error`; unfinished tasks become CANCELLED.
  void EndJob(JobEntry* job, v1::JobState state, const std::string& error);
  // Re-queues `task` (not leased for `delay` seconds) or, when not retryable
  // or out of attempts, fails its job.
  void RetryOrFail(JobEntry* job, TaskRecord* task, const std::string& why, bool retryable,
                   double delay);
  void Changed(JobEntry* job, std::string message);
  // Writes the records in one transaction. On failure (the transaction rolls
  // back) records it in write_error_ and writes nothing more until
  // FinishWrites(); every write entry point calls CheckWritable() before its
  // first change and FinishWrites() after its last Persist.
  void Persist(const JobEntry* job, const std::vector<const TaskRecord*>& tasks,
               const AttemptRecord* attempt);
  // UNAVAILABLE while degraded, unless a probe write (at most once a second)
  // succeeds, which ends the degraded mode.
  absl::Status CheckWritable();
  // OK when every Persist since the last call succeeded; else enters the
  // degraded mode, reverts memory to the database (RevertToStore) and returns
  // UNAVAILABLE. Holds no pointer into jobs_ across the revert: call it where
  // the caller holds none either.
  absl::Status FinishWrites();
  // Reloads jobs and tasks from the database into the existing entries (in
  // place: watchers hold pointers to them) and rebuilds leases.
  absl::Status RevertToStore();
  // Rebuilds the calibrate index and the leases of job's tasks (loaded from
  // the database), each lease with a fresh period from `now`.
  void AdoptTasks(JobEntry* job, double now);
  void UpdateGauges();
  std::string RandomHex(int chars);
  void TouchWorker(const std::string& worker_id, int64_t memory = 0, bool gpu = false);
  // True when some connected worker reports enough memory for `task` (or
  // reports none).
  bool SomeWorkerCanHold(const TaskRecord& task) const;
  OwnerQuota QuotaOf(const std::string& owner) const;
  // RESOURCE_EXHAUSTED when `owner` has its quota of QUEUED jobs.
  absl::Status CheckQueuedQuota(const std::string& owner);
  // Whether `job` (QUEUED) must wait for its owner's running-jobs quota;
  // `running` counts RUNNING jobs by owner (filled on first use).
  bool WaitsForRunningQuota(JobEntry* job, std::optional<std::map<std::string, int64_t>>* running);

  const CoordinatorOptions options_;
  const std::shared_ptr<CoordinatorMetrics> metrics_;

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;  // any job or task changed
  std::unique_ptr<StateStore> store_;
  std::map<std::string, std::unique_ptr<JobEntry>> jobs_;  // by id
  std::vector<JobEntry*> job_order_;                       // creation order
  std::map<std::string, TaskRef> leases_;                  // current attempt id -> task
  std::map<std::string, AttemptRecord> attempts_;          // running attempts
  WorkerTable workers_;                                    // last seen, memory, device
  QuotaSource quota_source_;                               // null: default quotas
  int64_t next_seq_ = 1;
  bool shutdown_ = false;
  absl::Status write_error_;  // the failed Persist of the current call
  std::string degraded_;      // why writes are refused; empty = writable
  std::chrono::steady_clock::time_point last_probe_;
  std::mt19937_64 rng_;
  std::thread reaper_;
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_COORDINATOR_H_
