// StateStore: the coordinator's durable state in SQLite (WAL journal, full
// sync) under --data-dir: jobs, the tasks of their plans, and every attempt.
// The coordinator keeps a copy in memory and writes each change through here
// inside a transaction before it answers the RPC that caused it, so a crash
// (SIGKILL) loses nothing that a client or worker was told.
//
// Not thread-safe: the coordinator serialises calls under its own mutex.
#ifndef CALDERA_SERVER_STATE_STORE_H_
#define CALDERA_SERVER_STATE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "caldera/v1/jobs.pb.h"

struct sqlite3;
struct sqlite3_stmt;

namespace caldera::server {

struct JobRecord {
  std::string id;          // "j-<hex>"; the API name is "jobs/<id>"
  int64_t seq = 0;         // creation order
  std::string request_id;  // unique per owner (an idempotency key)
  std::string owner;       // name of the token that created it; "" = local mode or older data
  v1::JobSpec spec;        // as stored after defaults were applied
  v1::JobState state = v1::QUEUED;
  std::string error;
  double create_time = 0, update_time = 0, start_time = 0, end_time = 0;  // Unix seconds
  // Set by LoadJobs for a row it could not decode ("has a spec that does not
  // decode"); the coordinator quarantines such a job (state_check.h).
  std::string corrupt;
};

struct TaskRecord {
  std::string id;  // "<job>/decompose-0003-q_proj"
  std::string job_id;
  int32_t ord = 0;  // position in the plan
  v1::TaskKind kind = v1::CALIBRATE;
  int32_t layer = -1;
  int32_t shard = 0;  // calibrate: the sample shard (column `shard`, 0 in older databases)
  // Estimated peak memory of one attempt (job/memory_estimate.h); 0 = unknown
  // (older databases): any worker may run it.
  int64_t memory_bytes = 0;
  std::string module;
  v1::TaskState state = v1::TASK_PENDING;
  int32_t attempts = 0;
  std::string lease_attempt, lease_worker;
  double lease_expiry = 0;  // Unix seconds
  // A pending task a worker failed retryably is not leased before this time
  // (Unix seconds; the coordinator's retry backoff). Stored, so a restarted
  // coordinator honours it (issue 37); 0 = leasable now.
  double retry_after = 0;
  std::string committed_attempt;
  // Keys the committed attempt wrote, in the stored layout of
  // job/task_plan.h (read them only through its Stored*Uri functions).
  std::vector<std::string> result_uris;
  std::string last_error;
  // decompose: of the committed result (column `weighted_error`, the name
  // it had before, so that old databases load).
  double weighted_relative_error = -1;
  double seconds = 0;  // run time of the committed attempt
};

struct AttemptRecord {
  std::string id;
  std::string task_id;
  std::string worker_id;
  int32_t number = 0;
  double start_time = 0, end_time = 0;
  std::string outcome;  // running | committed | rejected | failed | expired | cancelled
  std::string error;
};

class StateStore {
 public:
  // Opens (creating if needed) DIR/coordinator.db. FAILED_PRECONDITION names
  // the directory when it cannot be created or the database is unusable.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::string& data_dir);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Every row; one that does not decode comes back with `corrupt` set.
  absl::Status LoadJobs(std::vector<JobRecord>* jobs);
  absl::Status LoadTasks(std::vector<TaskRecord>* tasks);  // ordered by job seq, ord
  absl::Status LoadAttempts(const std::string& task_id, std::vector<AttemptRecord>* attempts);

  // Writes (and replaces) a 16 KiB probe row in its own transaction: OK when
  // the database can take a write again after a failed one (disk full).
  absl::Status ProbeWrite();
  // PRAGMA max_page_count on this connection: tests make the database "full"
  // with it (SQLITE_FULL, as on a full disk) and raise it to "free space".
  absl::Status SetMaxPageCountForTest(int64_t pages);

  absl::Status Begin();
  absl::Status Commit();
  void Rollback();

  // Inserts or replaces by id.
  absl::Status PutJob(const JobRecord& job);
  absl::Status PutTask(const TaskRecord& task);
  absl::Status PutAttempt(const AttemptRecord& attempt);

 private:
  explicit StateStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  absl::Status MigrateJobOwner();  // adds jobs.owner to databases from before it
  absl::Status Error(const char* what) const;

  sqlite3* db_;  // owned; closed in the destructor
};

// Begin() on construction; Rollback() on destruction unless Commit() succeeded.
class StateTransaction {
 public:
  explicit StateTransaction(StateStore* store) : store_(store) { status_ = store_->Begin(); }
  ~StateTransaction() {
    if (!done_ && status_.ok()) store_->Rollback();
  }
  StateTransaction(const StateTransaction&) = delete;
  StateTransaction& operator=(const StateTransaction&) = delete;
  const absl::Status& status() const { return status_; }
  absl::Status Commit() {
    done_ = true;
    return status_.ok() ? store_->Commit() : status_;
  }

 private:
  StateStore* store_;
  absl::Status status_;
  bool done_ = false;
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_STATE_STORE_H_
