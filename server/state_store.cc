#include "server/state_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace caldera::server {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs(
  id TEXT PRIMARY KEY, seq INTEGER NOT NULL, request_id TEXT NOT NULL, spec BLOB NOT NULL,
  state INTEGER NOT NULL, error TEXT NOT NULL, create_time REAL NOT NULL,
  update_time REAL NOT NULL, start_time REAL NOT NULL, end_time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_request_id ON jobs(request_id);
CREATE TABLE IF NOT EXISTS tasks(
  id TEXT PRIMARY KEY, job_id TEXT NOT NULL, ord INTEGER NOT NULL, kind INTEGER NOT NULL,
  layer INTEGER NOT NULL, module TEXT NOT NULL, state INTEGER NOT NULL,
  attempts INTEGER NOT NULL, lease_attempt TEXT NOT NULL, lease_worker TEXT NOT NULL,
  lease_expiry REAL NOT NULL, committed_attempt TEXT NOT NULL, result_uris TEXT NOT NULL,
  last_error TEXT NOT NULL, weighted_error REAL NOT NULL, seconds REAL NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_job ON tasks(job_id, ord);
CREATE TABLE IF NOT EXISTS attempts(
  id TEXT PRIMARY KEY, task_id TEXT NOT NULL, worker_id TEXT NOT NULL, number INTEGER NOT NULL,
  start_time REAL NOT NULL, end_time REAL NOT NULL, outcome TEXT NOT NULL, error TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_task ON attempts(task_id);
)sql";

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Text(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Blob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Int(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Real(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  std::string ColText(int i) {
    const unsigned char* p = sqlite3_column_text(stmt_, i);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
  }
  std::string ColBlob(int i) {
    const void* p = sqlite3_column_blob(stmt_, i);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  int64_t ColInt(int i) { return sqlite3_column_int64(stmt_, i); }
  double ColReal(int i) { return sqlite3_column_double(stmt_, i); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data-dir ", data_dir, " cannot be created: ", ec.message()));
  }
  const std::string path = (std::filesystem::path(data_dir) / "coordinator.db").string();
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the state database ", path, ": ", msg,
                     "; check that --data-dir is a writable local directory"));
  }
  std::unique_ptr<StateStore> store(new StateStore(db));
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;"}) {
    if (absl::Status s = store->Exec(pragma); !s.ok()) return s;
  }
  if (absl::Status s = store->Exec(kSchema); !s.ok()) return s;
  if (absl::Status s = store->MigrateJobOwner(); !s.ok()) return s;
  // Columns added with sharded calibration, memory-aware leasing and stored
  // retry times: databases written before them get 0 for every task
  // (unsharded plans, unknown memory, leasable now).
  for (const auto& [probe_sql, alter_sql] :
       {std::pair{"SELECT shard FROM tasks LIMIT 0",
                  "ALTER TABLE tasks ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;"},
        std::pair{"SELECT memory_bytes FROM tasks LIMIT 0",
                  "ALTER TABLE tasks ADD COLUMN memory_bytes INTEGER NOT NULL DEFAULT 0;"},
        std::pair{"SELECT retry_after FROM tasks LIMIT 0",
                  "ALTER TABLE tasks ADD COLUMN retry_after REAL NOT NULL DEFAULT 0;"}}) {
    if (Statement probe(db, probe_sql); probe.ok()) continue;
    if (absl::Status s = store->Exec(alter_sql); !s.ok()) return s;
  }
  return store;
}

StateStore::~StateStore() { sqlite3_close(db_); }

// Data dirs from before jobs had owners: add the column; their jobs get the
// empty owner (visible to admins and to the local single-user mode only).
absl::Status StateStore::MigrateJobOwner() {
  Statement st(db_, "SELECT 1 FROM pragma_table_info('jobs') WHERE name = 'owner'");
  if (!st.ok()) return Error("reading the jobs schema");
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_ROW) return absl::OkStatus();
  if (rc != SQLITE_DONE) return Error("reading the jobs schema");
  return Exec("ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';");
}

absl::Status StateStore::Error(const char* what) const {
  return absl::InternalError(absl::StrCat("state database: ", what, ": ", sqlite3_errmsg(db_)));
}

absl::Status StateStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    // A failed statement inside an open transaction (a probe's INSERT) must
    // not leave it open.
    if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
    return absl::InternalError(absl::StrCat("state database: ", msg));
  }
  return absl::OkStatus();
}

absl::Status StateStore::ProbeWrite() {
  // A row with a blob that needs pages of its own, replaced on every probe.
  // The table is made by the first probe, not at Open: an existing database
  // must open without a write (its disk may be full).
  return Exec(
      "CREATE TABLE IF NOT EXISTS write_probe(id INTEGER PRIMARY KEY, body BLOB NOT NULL); "
      "BEGIN IMMEDIATE; INSERT OR REPLACE INTO write_probe(id, body) VALUES "
      "(1, randomblob(16384)); COMMIT;");
}

absl::Status StateStore::SetMaxPageCountForTest(int64_t pages) {
  return Exec(absl::StrCat("PRAGMA max_page_count = ", pages, ";").c_str());
}

absl::Status StateStore::Begin() { return Exec("BEGIN IMMEDIATE;"); }
absl::Status StateStore::Commit() { return Exec("COMMIT;"); }
void StateStore::Rollback() { (void)Exec("ROLLBACK;"); }

absl::Status StateStore::LoadJobs(std::vector<JobRecord>* jobs) {
  Statement st(db_,
               "SELECT id, seq, request_id, spec, state, error, create_time, update_time, "
               "start_time, end_time, owner FROM jobs ORDER BY seq");
  if (!st.ok()) return Error("loading jobs");
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    JobRecord j;
    j.id = st.ColText(0);
    j.seq = st.ColInt(1);
    j.request_id = st.ColText(2);
    if (!j.spec.ParseFromString(st.ColBlob(3))) {
      j.spec.Clear();
      j.corrupt = "has a spec that does not decode";
    }
    j.state = static_cast<v1::JobState>(st.ColInt(4));
    j.error = st.ColText(5);
    j.create_time = st.ColReal(6);
    j.update_time = st.ColReal(7);
    j.start_time = st.ColReal(8);
    j.end_time = st.ColReal(9);
    j.owner = st.ColText(10);
    jobs->push_back(std::move(j));
  }
  return rc == SQLITE_DONE ? absl::OkStatus() : Error("loading jobs");
}

absl::Status StateStore::LoadTasks(std::vector<TaskRecord>* tasks) {
  Statement st(db_,
               "SELECT t.id, t.job_id, t.ord, t.kind, t.layer, t.module, t.state, t.attempts, "
               "t.lease_attempt, t.lease_worker, t.lease_expiry, t.committed_attempt, "
               "t.result_uris, t.last_error, t.weighted_error, t.seconds, t.shard, t.memory_bytes, "
               "t.retry_after FROM tasks t "
               "JOIN jobs j ON j.id = t.job_id ORDER BY j.seq, t.ord");
  if (!st.ok()) return Error("loading tasks");
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    TaskRecord t;
    t.id = st.ColText(0);
    t.job_id = st.ColText(1);
    t.ord = static_cast<int32_t>(st.ColInt(2));
    t.kind = static_cast<v1::TaskKind>(st.ColInt(3));
    t.layer = static_cast<int32_t>(st.ColInt(4));
    t.module = st.ColText(5);
    t.state = static_cast<v1::TaskState>(st.ColInt(6));
    t.attempts = static_cast<int32_t>(st.ColInt(7));
    t.lease_attempt = st.ColText(8);
    t.lease_worker = st.ColText(9);
    t.lease_expiry = st.ColReal(10);
    t.committed_attempt = st.ColText(11);
    const std::string uris = st.ColText(12);
    if (!uris.empty()) t.result_uris = absl::StrSplit(uris, '\n');
    t.last_error = st.ColText(13);
    t.weighted_relative_error = st.ColReal(14);
    t.seconds = st.ColReal(15);
    t.shard = static_cast<int32_t>(st.ColInt(16));
    t.memory_bytes = st.ColInt(17);
    t.retry_after = st.ColReal(18);
    tasks->push_back(std::move(t));
  }
  return rc == SQLITE_DONE ? absl::OkStatus() : Error("loading tasks");
}

absl::Status StateStore::LoadAttempts(const std::string& task_id,
                                      std::vector<AttemptRecord>* attempts) {
  Statement st(db_,
               "SELECT id, task_id, worker_id, number, start_time, end_time, outcome, error "
               "FROM attempts WHERE task_id = ? ORDER BY number");
  if (!st.ok()) return Error("loading attempts");
  st.Text(1, task_id);
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    AttemptRecord a;
    a.id = st.ColText(0);
    a.task_id = st.ColText(1);
    a.worker_id = st.ColText(2);
    a.number = static_cast<int32_t>(st.ColInt(3));
    a.start_time = st.ColReal(4);
    a.end_time = st.ColReal(5);
    a.outcome = st.ColText(6);
    a.error = st.ColText(7);
    attempts->push_back(std::move(a));
  }
  return rc == SQLITE_DONE ? absl::OkStatus() : Error("loading attempts");
}

absl::Status StateStore::PutJob(const JobRecord& j) {
  Statement st(db_,
               "INSERT OR REPLACE INTO jobs (id, seq, request_id, spec, state, error, "
               "create_time, update_time, start_time, end_time, owner) "
               "VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  if (!st.ok()) return Error("writing a job");
  st.Text(1, j.id);
  st.Int(2, j.seq);
  st.Text(3, j.request_id);
  st.Blob(4, j.spec.SerializeAsString());
  st.Int(5, j.state);
  st.Text(6, j.error);
  st.Real(7, j.create_time);
  st.Real(8, j.update_time);
  st.Real(9, j.start_time);
  st.Real(10, j.end_time);
  st.Text(11, j.owner);
  return sqlite3_step(st.get()) == SQLITE_DONE ? absl::OkStatus() : Error("writing a job");
}

absl::Status StateStore::PutTask(const TaskRecord& t) {
  Statement st(
      db_,
      "INSERT OR REPLACE INTO tasks (id, job_id, ord, kind, layer, module, state, "
      "attempts, lease_attempt, lease_worker, lease_expiry, committed_attempt, "
      "result_uris, last_error, weighted_error, seconds, shard, memory_bytes, retry_after) "
      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!st.ok()) return Error("writing a task");
  st.Text(1, t.id);
  st.Text(2, t.job_id);
  st.Int(3, t.ord);
  st.Int(4, t.kind);
  st.Int(5, t.layer);
  st.Text(6, t.module);
  st.Int(7, t.state);
  st.Int(8, t.attempts);
  st.Text(9, t.lease_attempt);
  st.Text(10, t.lease_worker);
  st.Real(11, t.lease_expiry);
  st.Text(12, t.committed_attempt);
  st.Text(13, absl::StrJoin(t.result_uris, "\n"));
  st.Text(14, t.last_error);
  st.Real(15, t.weighted_relative_error);
  st.Real(16, t.seconds);
  st.Int(17, t.shard);
  st.Int(18, t.memory_bytes);
  st.Real(19, t.retry_after);
  return sqlite3_step(st.get()) == SQLITE_DONE ? absl::OkStatus() : Error("writing a task");
}

absl::Status StateStore::PutAttempt(const AttemptRecord& a) {
  Statement st(db_, "INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?,?,?)");
  if (!st.ok()) return Error("writing an attempt");
  st.Text(1, a.id);
  st.Text(2, a.task_id);
  st.Text(3, a.worker_id);
  st.Int(4, a.number);
  st.Real(5, a.start_time);
  st.Real(6, a.end_time);
  st.Text(7, a.outcome);
  st.Text(8, a.error);
  return sqlite3_step(st.get()) == SQLITE_DONE ? absl::OkStatus() : Error("writing an attempt");
}

}  // namespace caldera::server
