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
#include "server/planner.h"
#include "server/state_check.h"

namespace caldera::server {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

google::protobuf::Timestamp ToTimestamp(double unix_seconds) {
  google::protobuf::Timestamp t;
  const double whole = std::floor(unix_seconds);
  t.set_seconds(static_cast<int64_t>(whole));
  t.set_nanos(static_cast<int32_t>((unix_seconds - whole) * 1e9));
  return t;
}

using job::IsTerminal;

// Elapsed and estimated remaining seconds of a job, as of now.
void SetTimes(double start_time, double end_time, bool terminal, int done, int total,
              v1::JobProgress* p) {
  double elapsed = 0;
  if (start_time > 0) elapsed = (end_time > 0 ? end_time : Now()) - start_time;
  p->set_elapsed_seconds(elapsed);
  double eta = -1;
  if (terminal) {
    eta = 0;
  } else if (done > 0 && elapsed > 0) {
    eta = elapsed * (total - done) / done;
  }
  p->set_estimated_remaining_seconds(eta);
}

// "j-abc/decompose-0001-q_proj/a2-ff01" -> "j-abc".
std::string JobIdOfAttempt(const std::string& attempt_id) {
  return attempt_id.substr(0, attempt_id.find('/'));
}

}  // namespace

double RetryDelaySeconds(double base, int attempts) {
  if (!(base > 0)) return 0;
  double delay = base;
  for (int i = 1; i < attempts && delay < kMaxRetryDelaySeconds; ++i) delay *= 2;
  return std::min(delay, kMaxRetryDelaySeconds);
}

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
      rng_(std::random_device{}()) {}

Coordinator::~Coordinator() {
  Shutdown();
  if (reaper_.joinable()) reaper_.join();
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

std::string Coordinator::RandomHex(int chars) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < chars; ++i) s.push_back(kHex[rng_() % 16]);
  return s;
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
  for (v1::TaskKind k : {v1::CALIBRATE, v1::DECOMPOSE, v1::FINALIZE}) {
    for (v1::TaskState s :
         {v1::TASK_PENDING, v1::TASK_LEASED, v1::TASK_DONE, v1::TASK_FAILED, v1::TASK_CANCELLED}) {
      metrics_->SetTasks(k, s, tasks[{k, s}]);
    }
  }
  metrics_->SetQueueDepth(ready);
  const double now = Now();
  int connected = 0;
  for (const auto& [id, seen] : workers_) {
    if (now - seen < 3 * options_.heartbeat_seconds + options_.max_long_poll_seconds) ++connected;
  }
  metrics_->SetWorkersConnected(connected);
}

void Coordinator::TouchWorker(const std::string& worker_id) {
  if (!worker_id.empty()) workers_[worker_id] = Now();
}

bool Coordinator::SomeWorkerCanHold(const TaskRecord& task) const {
  const double now = Now();
  for (const auto& [id, seen] : workers_) {
    if (now - seen >= 3 * options_.heartbeat_seconds + options_.max_long_poll_seconds) continue;
    auto it = worker_memory_.find(id);
    if (WorkerCanHold(it == worker_memory_.end() ? 0 : it->second, task)) return true;
  }
  return false;
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
  const job::JobSpec spec = job::JobSpecFromProto(request.spec(), rid);
  // The spec as stored (defaults filled in): a repeated request must carry the
  // same one, else it is another job under a reused id.
  const std::string canonical = job::JobSpecToProto(spec).SerializeAsString();
  // The job this request id names (its snapshot: copied outside the lock).
  auto existing = [&]() -> std::optional<absl::StatusOr<std::shared_ptr<const JobSnapshot>>> {
    for (const JobEntry* job : job_order_) {
      if (job->record.request_id != rid || job->record.owner != owner) continue;
      if (job::JobSpecToProto(job::JobSpecFromProto(job->record.spec, rid)).SerializeAsString() !=
          canonical) {
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
  if (!rid.empty()) {
    std::optional<absl::StatusOr<std::shared_ptr<const JobSnapshot>>> found;
    {
      std::lock_guard<std::mutex> lock(mu_);
      found = existing();
    }
    if (found) return current(*found);
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
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  auto entry = std::make_unique<JobEntry>();
  JobRecord& r = entry->record;
  r.id = absl::StrCat("j-", RandomHex(12));
  entry->tasks = PlanJob(r.id, shape->num_layers, shape->modules, spec.calibration_shards);
  const bool sequential = spec.calibration_mode == "sequential";
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

v1::RegisterWorkerResponse Coordinator::RegisterWorker(const v1::RegisterWorkerRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  v1::RegisterWorkerResponse out;
  std::string host = request.hostname().empty() ? "worker" : request.hostname();
  out.set_worker_id(absl::StrCat(host, "-", RandomHex(6)));
  out.set_heartbeat_interval_seconds(options_.heartbeat_seconds);
  out.set_lease_duration_seconds(options_.lease_seconds);
  TouchWorker(out.worker_id());
  if (request.max_memory_bytes() > 0) worker_memory_[out.worker_id()] = request.max_memory_bytes();
  if (absl::StartsWith(request.device(), "cuda")) gpu_workers_.insert(out.worker_id());
  UpdateGauges();
  return out;
}

bool Coordinator::TryLease(const std::string& worker_id, v1::Task* task, double* next_retry) {
  const double now = Now();
  double earliest_retry = 0;
  const auto mem = worker_memory_.find(worker_id);
  const int64_t worker_memory = mem == worker_memory_.end() ? 0 : mem->second;
  const bool gpu = gpu_workers_.contains(worker_id);
  const int decompose_rank = LeasePriority(v1::DECOMPOSE);
  for (JobEntry* job : job_order_) {
    if (IsTerminal(job->record.state)) continue;
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
  std::unique_lock<std::mutex> lock(mu_);
  if (request.max_memory_bytes() > 0 && !request.worker_id().empty()) {
    worker_memory_[request.worker_id()] = request.max_memory_bytes();
  }
  if (absl::StartsWith(request.device(), "cuda") && !request.worker_id().empty()) {
    gpu_workers_.insert(request.worker_id());
  }
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
  std::lock_guard<std::mutex> lock(mu_);
  TouchWorker(request.worker_id());
  v1::HeartbeatResponse out;
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
              : absl::StrCat(DescribeTask(t, job->record.spec.calibration_shards()), " done",
                             t.kind == v1::DECOMPOSE
                                 ? absl::StrCat(" (weighted error ", t.weighted_relative_error, ")")
                                 : std::string()));
  return out;
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
      RetryOrFail(ref.job, &t,
                  absl::StrCat("worker ", t.lease_worker, " stopped heartbeating (lease of ",
                               options_.lease_seconds, " s expired)"),
                  /*retryable=*/true, /*delay=*/0);
    }
    (void)FinishWrites();
    UpdateGauges();
  }
}

}  // namespace caldera::server
