// The coordinator in-process (no gRPC, no worker): a fake worker leases tasks
// and reports results, so scheduling, leases, exactly-once commits, restart
// and cancel are checked quickly. Validation reads the stories260K fixture.
#include "server/coordinator.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <sstream>
#include <thread>

#include "core/format/safetensors.h"
#include "core/model/model_config.h"
#include "gtest/gtest.h"
#include "job/memory_estimate.h"
#include "job/task_plan.h"
#include "nlohmann/json.hpp"
#include "tests/support/fixtures.h"
#include "tests/unit/server/job_requests.h"

namespace caldera::server {
namespace {

using testing::StoriesModelDir;
using testing::TempDir;

std::unique_ptr<Coordinator> Open(const std::string& dir, double lease = 30) {
  CoordinatorOptions o;
  o.data_dir = dir;
  o.lease_seconds = lease;
  o.heartbeat_seconds = lease / 4;
  o.max_attempts = 2;
  absl::StatusOr<std::unique_ptr<Coordinator>> c =
      Coordinator::Open(o, std::make_shared<CoordinatorMetrics>());
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

v1::Task Lease(Coordinator* c, const std::string& worker = "w1") {
  v1::LeaseTaskRequest req;
  req.set_worker_id(worker);
  req.set_wait_seconds(0);
  return c->LeaseTask(req).task();
}

bool Complete(Coordinator* c, const v1::Task& t, const std::string& worker = "w1") {
  v1::CompleteTaskRequest req;
  req.set_worker_id(worker);
  req.set_attempt_id(t.attempt_id());
  job::SetResultOfTask(t, &req);
  return c->CompleteTask(req).accepted();
}

TEST(CoordinatorTest, RunsAPlanInDependencyOrderAndCommitsOnce) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::Job> job = c->CreateJob(SmallJobRequest(tmp.Join("out")));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::QUEUED);
  ASSERT_EQ(job->task_status_size(), 5 * 2 + 1);  // 5 layers x (calibrate + q_proj) + finalize

  // Only calibrate(0) is ready at first.
  v1::Task t = Lease(c.get());
  ASSERT_EQ(job::KindOf(t), v1::CALIBRATE);
  EXPECT_EQ(t.calibrate().layer(), 0);
  EXPECT_EQ(t.calibrate().input_uri(), StoriesModelDir() + "/calibration.safetensors");
  EXPECT_TRUE(Lease(c.get()).task_id().empty());
  ASSERT_TRUE(Complete(c.get(), t));
  // A second report of the committed attempt is accepted, not committed again.
  EXPECT_TRUE(Complete(c.get(), t));

  // Drain the plan; decompose inputs are the committed calibrate outputs.
  int leased = 0;
  for (int guard = 0; guard < 100; ++guard) {
    v1::Task next = Lease(c.get());
    if (next.task_id().empty()) break;
    ++leased;
    if (job::KindOf(next) == v1::DECOMPOSE) {
      EXPECT_NE(next.decompose().hessians_uri().find("hessians.safetensors"), std::string::npos);
    }
    if (job::KindOf(next) == v1::FINALIZE) {
      EXPECT_EQ(next.finalize().artifact_uris_size(), 5);
    }
    ASSERT_TRUE(Complete(c.get(), next)) << next.task_id();
  }
  absl::StatusOr<v1::Job> end = c->GetJob(job->name());
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->state(), v1::SUCCEEDED) << end->DebugString();
  for (const v1::TaskStatus& ts : end->task_status()) {
    EXPECT_EQ(ts.state(), v1::TASK_DONE);
    EXPECT_EQ(ts.attempts(), 1) << ts.task_id();
  }
}

TEST(CoordinatorTest, ExpiredLeaseIsRequeuedAndTheStaleResultRejected) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"), /*lease=*/0.4);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->CreateJob(SmallJobRequest(tmp.Join("out"))).ok());
  v1::Task first = Lease(c.get());
  ASSERT_FALSE(first.task_id().empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(900));  // no heartbeat
  v1::Task second = Lease(c.get(), "w2");
  ASSERT_EQ(second.task_id(), first.task_id());
  EXPECT_EQ(second.attempt_number(), 2);
  EXPECT_NE(second.attempt_id(), first.attempt_id());
  EXPECT_NE(second.calibrate().hessians_uri(),
            first.calibrate().hessians_uri());  // attempt-unique keys
  EXPECT_FALSE(Complete(c.get(), first));       // stale
  v1::HeartbeatRequest hb;
  hb.set_attempt_id(first.attempt_id());
  EXPECT_TRUE(c->Heartbeat(hb).lease_lost());
  EXPECT_TRUE(Complete(c.get(), second, "w2"));
  // Out of attempts (max 2): the job fails naming the task.
  v1::Task t = Lease(c.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  t = Lease(c.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  absl::StatusOr<v1::ListJobsResponse> list = c->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->jobs_size(), 1);
  EXPECT_EQ(list->jobs(0).state(), v1::FAILED);
  EXPECT_NE(list->jobs(0).error().find("stopped heartbeating"), std::string::npos)
      << list->jobs(0).error();
}

// Two leases of one job expire in the same reaper pass and the first expiry
// fails the job (out of attempts), which drops the job's other lease: the
// reaper must skip it, not look it up afresh (found by the
// coordinator_requests fuzzer: a null job dereferenced in the reaper).
TEST(CoordinatorTest, LeasesDroppedByAnEarlierExpiryInTheSamePassAreSkipped) {
  TempDir tmp;
  CoordinatorOptions o;
  o.data_dir = tmp.Join("state");
  o.lease_seconds = 0.4;
  o.heartbeat_seconds = 0.1;
  o.max_attempts = 1;
  absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Open(o, nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  v1::CreateJobRequest r = SmallJobRequest(tmp.Join("out"));
  r.mutable_spec()->set_calibration_shards(2);  // two calibrate tasks leasable at once
  ASSERT_TRUE((*c)->CreateJob(r).ok());
  const v1::Task a = Lease(c->get(), "w1");
  const v1::Task b = Lease(c->get(), "w2");
  ASSERT_FALSE(a.task_id().empty());
  ASSERT_FALSE(b.task_id().empty());
  ASSERT_NE(a.task_id(), b.task_id());
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // both expire, no heartbeat
  absl::StatusOr<v1::ListJobsResponse> list = (*c)->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->jobs_size(), 1);
  EXPECT_EQ(list->jobs(0).state(), v1::FAILED);
  v1::HeartbeatRequest hb;
  hb.set_attempt_id(b.attempt_id());
  const v1::HeartbeatResponse resp = (*c)->Heartbeat(hb);
  EXPECT_TRUE(resp.cancel() || resp.lease_lost());  // the worker stops either way
}

// Issue 17: a task a worker failed retryably (its output disk full) was leased
// again at once and burnt its attempts in a second. Now it waits the retry
// delay, doubled per attempt; a long-polling worker gets it when the delay
// ends, not at its poll deadline.
TEST(CoordinatorTest, RetryableFailureWaitsTheDoublingRetryDelay) {
  EXPECT_EQ(RetryDelaySeconds(5, 1), 5);
  EXPECT_EQ(RetryDelaySeconds(5, 2), 10);
  EXPECT_EQ(RetryDelaySeconds(5, 3), 20);
  EXPECT_EQ(RetryDelaySeconds(5, 1000), kMaxRetryDelaySeconds);
  EXPECT_EQ(RetryDelaySeconds(0, 3), 0);

  TempDir tmp;
  CoordinatorOptions o;
  o.data_dir = tmp.Join("state");
  o.max_attempts = 3;
  o.retry_delay_seconds = -1;
  absl::StatusOr<std::unique_ptr<Coordinator>> bad =
      Coordinator::Open(o, std::make_shared<CoordinatorMetrics>());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("retry delay"), std::string::npos) << bad.status();
  o.retry_delay_seconds = 0.6;
  absl::StatusOr<std::unique_ptr<Coordinator>> opened =
      Coordinator::Open(o, std::make_shared<CoordinatorMetrics>());
  ASSERT_TRUE(opened.ok()) << opened.status();
  Coordinator* c = opened->get();
  absl::StatusOr<v1::Job> job = c->CreateJob(SmallJobRequest(tmp.Join("out")));
  ASSERT_TRUE(job.ok()) << job.status();

  auto fail = [&](const v1::Task& t) {
    v1::FailTaskRequest req;
    req.set_worker_id("w1");
    req.set_attempt_id(t.attempt_id());
    req.set_error("write out/x: No space left on device");
    req.set_retryable(true);
    absl::Status s;
    c->FailTask(req, &s);
    EXPECT_TRUE(s.ok()) << s;
  };
  // Seconds until a long poll (deadline 8 s) returns the retried task.
  auto poll = [&](int attempt) {
    const auto start = std::chrono::steady_clock::now();
    v1::LeaseTaskRequest req;
    req.set_worker_id("w1");
    req.set_wait_seconds(8);
    v1::Task t = c->LeaseTask(req).task();
    EXPECT_EQ(t.attempt_number(), attempt) << t.DebugString();
    return std::make_pair(
        t, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  };

  v1::Task first = Lease(c);  // calibrate(0), the only ready task
  ASSERT_EQ(job::KindOf(first), v1::CALIBRATE);
  fail(first);
  EXPECT_TRUE(Lease(c).task_id().empty()) << "leased again before the retry delay";
  absl::StatusOr<v1::Job> waiting = c->GetJob(job->name());
  ASSERT_TRUE(waiting.ok());
  EXPECT_NE(waiting->message().find("will be retried in 0.6 s: write out/x: No space left"),
            std::string::npos)
      << waiting->message();
  auto [second, waited] = poll(2);
  EXPECT_EQ(second.task_id(), first.task_id());
  EXPECT_GE(waited, 0.5);
  EXPECT_LT(waited, 4.0) << "woke at the poll deadline, not when the delay ended";

  fail(second);  // the second retry waits twice as long
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_TRUE(Lease(c).task_id().empty()) << "the delay did not double";
  auto [third, rest] = poll(3);
  EXPECT_EQ(third.task_id(), first.task_id());
  EXPECT_GE(rest, 0.3);
  EXPECT_LT(rest, 4.0);

  fail(third);  // out of attempts: the job fails at once, naming the error
  absl::StatusOr<v1::Job> end = c->GetJob(job->name());
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->state(), v1::FAILED);
  EXPECT_NE(end->error().find("No space left on device"), std::string::npos) << end->error();
}

// A long poll asking for NaN, -inf or negative seconds is a poll without a
// wait: a NaN deadline never passed, so LeaseTask spun on the coordinator's
// mutex for as long as no task was ready.
TEST(CoordinatorTest, ALongPollOfNaNOrNegativeSecondsReturnsAtOnce) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->CreateJob(SmallJobRequest(tmp.Join("out"))).ok());
  ASSERT_EQ(job::KindOf(Lease(c.get())), v1::CALIBRATE);  // now nothing is ready
  for (double wait :
       {std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::infinity(), -5.0}) {
    v1::LeaseTaskRequest req;
    req.set_worker_id("w2");
    req.set_wait_seconds(wait);
    std::future<v1::LeaseTaskResponse> poll =
        std::async(std::launch::async, [&] { return c->LeaseTask(req); });
    if (poll.wait_for(std::chrono::seconds(3)) != std::future_status::ready) {
      // The spinning poll holds the mutex nearly always: nothing can stop it.
      std::fprintf(stderr, "FAILED: a long poll of %g s did not return within 3 s\n", wait);
      std::_Exit(1);
    }
    EXPECT_TRUE(poll.get().task().task_id().empty());
  }
}

// A hostile or confused worker: completing a lease it does not hold, or
// reporting keys it was not given (the next task would read them), is
// refused and the lease stays with its holder; numbers that SQLite cannot
// store in NOT NULL columns (NaN) never reach the state, and the coordinator
// keeps running and restarts cleanly.
TEST(CoordinatorTest, CompleteTaskChecksTheLeaseHolderKeysAndNumbers) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->CreateJob(SmallJobRequest(tmp.Join("out"))).ok());
  v1::Task t = Lease(c.get(), "w1");
  ASSERT_EQ(job::KindOf(t), v1::CALIBRATE);
  EXPECT_FALSE(Complete(c.get(), t, "intruder"));
  v1::CompleteTaskRequest forged;
  forged.set_worker_id("w1");
  forged.set_attempt_id(t.attempt_id());
  job::SetResultOfTask(t, &forged);
  forged.mutable_calibrate()->set_hidden_states_uri("/etc/passwd");
  EXPECT_FALSE(c->CompleteTask(forged).accepted());
  // The holder still completes it, with NaN figures.
  v1::CompleteTaskRequest nan;
  nan.set_worker_id("w1");
  nan.set_attempt_id(t.attempt_id());
  job::SetResultOfTask(t, &nan);
  nan.set_busy_seconds(std::nan(""));
  nan.add_matrix_errors()->set_weighted_relative_error(std::nan(""));
  EXPECT_TRUE(c->CompleteTask(nan).accepted());
  v1::Task d = Lease(c.get(), "w1");  // calibrate(1) or decompose(0)
  ASSERT_FALSE(d.task_id().empty());
  v1::CompleteTaskRequest inf;
  inf.set_worker_id("w1");
  inf.set_attempt_id(d.attempt_id());
  job::SetResultOfTask(d, &inf);
  inf.set_busy_seconds(-std::numeric_limits<double>::infinity());
  inf.add_matrix_errors()->set_weighted_relative_error(std::numeric_limits<double>::infinity());
  EXPECT_TRUE(c->CompleteTask(inf).accepted());
  c.reset();
  c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::ListJobsResponse> list = c->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->jobs_size(), 1);
  absl::StatusOr<v1::Job> job = c->GetJob(list->jobs(0).name());
  ASSERT_TRUE(job.ok()) << job.status();
  int done = 0;
  for (const v1::TaskStatus& ts : job->task_status()) {
    if (ts.state() != v1::TASK_DONE) continue;
    ++done;
    EXPECT_EQ(ts.seconds(), 0) << ts.task_id();
  }
  EXPECT_EQ(done, 2);
}

// Idempotent create: the same request id and spec give the same job (also
// after a restart); the same id with another spec is ALREADY_EXISTS naming the
// job; an oversized or control-character id is refused before anything is
// stored.
TEST(CoordinatorTest, RequestIdsAreIdempotentBoundedAndBoundToTheirSpec) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::Job> a = c->CreateJob(SmallJobRequest(tmp.Join("out"), "run-1"));
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<v1::Job> again = c->CreateJob(SmallJobRequest(tmp.Join("out"), "run-1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->name(), a->name());
  v1::CreateJobRequest other = SmallJobRequest(tmp.Join("out"), "run-1");
  other.mutable_spec()->mutable_decomposition()->set_rank(4);
  absl::StatusOr<v1::Job> clash = c->CreateJob(other);
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(clash.status().message().find(a->name()), std::string::npos) << clash.status();
  EXPECT_EQ(c->CreateJob(SmallJobRequest(tmp.Join("out"), std::string(300, 'x'))).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->CreateJob(SmallJobRequest(tmp.Join("out"), "a\nb")).status().code(),
            absl::StatusCode::kInvalidArgument);
  c.reset();
  c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::Job> after = c->CreateJob(SmallJobRequest(tmp.Join("out"), "run-1"));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->name(), a->name());
  absl::StatusOr<v1::ListJobsResponse> list = c->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->jobs_size(), 1);
}

TEST(CoordinatorTest, StateSurvivesARestart) {
  TempDir tmp;
  std::string name;
  std::string attempt;
  v1::Task running;
  {
    std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
    ASSERT_NE(c, nullptr);
    absl::StatusOr<v1::Job> job = c->CreateJob(SmallJobRequest(tmp.Join("out"), "req-1"));
    ASSERT_TRUE(job.ok());
    name = job->name();
    ASSERT_TRUE(Complete(c.get(), Lease(c.get())));  // calibrate(0) committed
    running = Lease(c.get());                        // calibrate(1) or decompose(0) leased
    attempt = running.attempt_id();
  }
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::Job> job = c->GetJob(name);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::RUNNING);
  EXPECT_EQ(job->task_status(0).state(), v1::TASK_DONE);
  // The same request id still maps to the same job.
  absl::StatusOr<v1::Job> again = c->CreateJob(SmallJobRequest(tmp.Join("out"), "req-1"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->name(), name);
  // The attempt leased before the restart still holds its lease and commits.
  v1::HeartbeatRequest hb;
  hb.set_worker_id("w1");  // the lease holder (another worker's heartbeat does not count)
  hb.set_attempt_id(attempt);
  EXPECT_FALSE(c->Heartbeat(hb).lease_lost());
  v1::CompleteTaskRequest done;
  done.set_worker_id("w1");  // the lease holder
  done.set_attempt_id(attempt);
  job::SetResultOfTask(running, &done);
  EXPECT_TRUE(c->CompleteTask(done).accepted());
}

TEST(CoordinatorTest, CancelAndBadRequests) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::Job> job = c->CreateJob(SmallJobRequest(tmp.Join("out")));
  ASSERT_TRUE(job.ok());
  v1::Task t = Lease(c.get());
  absl::StatusOr<v1::Job> cancelled = c->CancelJob(job->name());
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state(), v1::CANCELLED);
  v1::HeartbeatRequest hb;
  hb.set_attempt_id(t.attempt_id());
  EXPECT_TRUE(c->Heartbeat(hb).cancel());
  EXPECT_FALSE(Complete(c.get(), t));
  EXPECT_TRUE(Lease(c.get()).task_id().empty());
  EXPECT_EQ(c->CancelJob(job->name()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c->GetJob("jobs/j-nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c->GetJob("nope").status().code(), absl::StatusCode::kInvalidArgument);
  // A megabyte job name is not echoed whole (gRPC cannot send such a status).
  for (const std::string& huge :
       {"jobs/" + std::string(1 << 20, 'x'), "nope" + std::string(1 << 20, 'x')}) {
    absl::Status missing = c->CancelJob(huge).status();
    EXPECT_FALSE(missing.ok());
    EXPECT_LT(missing.message().size(), 400u) << missing.message().substr(0, 400);
    EXPECT_NE(missing.message().find("xxx\xE2\x80\xA6"), std::string::npos);
  }
  v1::CreateJobRequest bad = SmallJobRequest(tmp.Join("out2"));
  bad.mutable_spec()->mutable_decomposition()->set_q_bits(7);
  absl::Status s = c->CreateJob(bad).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--q-bits 7"), std::string::npos) << s;
  v1::ListJobsRequest page;
  page.set_page_size(2000);
  EXPECT_EQ(c->ListJobs(page).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CoordinatorTest, ListPagesNewestFirst) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  std::vector<std::string> names;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::Job> j = c->CreateJob(SmallJobRequest(tmp.Join("out" + std::to_string(i))));
    ASSERT_TRUE(j.ok());
    names.push_back(j->name());
  }
  v1::ListJobsRequest req;
  req.set_page_size(2);
  absl::StatusOr<v1::ListJobsResponse> p1 = c->ListJobs(req);
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->jobs_size(), 2);
  EXPECT_EQ(p1->jobs(0).name(), names[2]);
  ASSERT_FALSE(p1->next_page_token().empty());
  req.set_page_token(p1->next_page_token());
  absl::StatusOr<v1::ListJobsResponse> p2 = c->ListJobs(req);
  ASSERT_TRUE(p2.ok());
  ASSERT_EQ(p2->jobs_size(), 1);
  EXPECT_EQ(p2->jobs(0).name(), names[0]);
  EXPECT_TRUE(p2->next_page_token().empty());
  req.clear_page_token();
  req.set_state(v1::RUNNING);
  EXPECT_EQ(c->ListJobs(req)->jobs_size(), 0);
}

// CreateJob with `request`, failing the test (instead of hanging) when it does
// not answer within 2 s; `fifo` gets a writer then, to release a blocked open.
absl::Status CreateWithin2s(Coordinator* c, const v1::CreateJobRequest& request,
                            const std::string& fifo) {
  auto created = std::async(std::launch::async, [&] { return c->CreateJob(request).status(); });
  if (created.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
    const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (w >= 0) ::close(w);
    ADD_FAILURE() << "CreateJob blocked on the FIFO " << fifo;
  }
  return created.get();
}

// #17: a FIFO as config.json or calibration file blocked CreateJob forever.
TEST(CoordinatorTest, FifoInputsAreRefusedAtOnce) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  const std::string model = tmp.Join("fifo-model");
  std::filesystem::create_directories(model);
  ASSERT_EQ(::mkfifo((model + "/config.json").c_str(), 0600), 0);
  v1::CreateJobRequest r = SmallJobRequest(tmp.Join("out"));
  r.mutable_spec()->set_model(model);
  absl::Status s = CreateWithin2s(c.get(), r, model + "/config.json");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("config.json is not a regular file"), std::string::npos) << s;

  const std::string calibration = tmp.Join("calibration.safetensors");
  ASSERT_EQ(::mkfifo(calibration.c_str(), 0600), 0);
  r = SmallJobRequest(tmp.Join("out"));
  r.mutable_spec()->set_calibration(calibration);
  s = CreateWithin2s(c.get(), r, calibration);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("calibration.safetensors is not a regular file"), std::string::npos)
      << s;
}

// A copy of the fixture's config.json with `key` set to `value`.
void WriteConfig(const std::string& dir, const std::string& key, int64_t value) {
  std::ifstream in(StoriesModelDir() + "/config.json");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
  ASSERT_TRUE(j.is_object());
  j[key] = value;
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << j.dump();
}

// #17: shapes are checked against config.json for every tensor the plan reads
// (a config claiming 5000 layers over zero-size tensors planned 40,001 tasks),
// and the plan size is bounded.
TEST(CoordinatorTest, TensorShapesAndPlanSizeAreCheckedAtSubmit) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> real =
      SafetensorsReader::OpenFile(StoriesModelDir() + "/model.safetensors");
  ASSERT_TRUE(real.ok()) << real.status();

  // Every tensor present, the layers' ones of size zero.
  const std::string zero = tmp.Join("zero-model");
  WriteConfig(zero, "num_hidden_layers", 5);
  SafetensorsWriter w;
  for (const TensorInfo& t : (*real)->tensors()) {
    if (t.name.rfind("model.layers.", 0) == 0) {
      absl::StatusOr<Tensor> empty = Tensor::Zeros(t.dtype, {0});
      ASSERT_TRUE(empty.ok());
      ASSERT_TRUE(w.Add(t.name, *std::move(empty)).ok());
    } else {
      absl::StatusOr<Tensor> full = (*real)->Read(t.name);
      ASSERT_TRUE(full.ok());
      ASSERT_TRUE(w.Add(t.name, *std::move(full)).ok());
    }
  }
  ASSERT_TRUE(w.WriteFile(zero + "/model.safetensors").ok());
  v1::CreateJobRequest r = SmallJobRequest(tmp.Join("out"));
  r.mutable_spec()->set_model(zero);
  absl::Status s = c->CreateJob(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("tensor model.layers.0.input_layernorm.weight has shape [0]"),
            std::string::npos)
      << s;

  // A config claiming 5000 layers names the limit.
  const std::string deep = tmp.Join("deep-model");
  WriteConfig(deep, "num_hidden_layers", 5000);
  std::filesystem::create_symlink(StoriesModelDir() + "/model.safetensors",
                                  deep + "/model.safetensors");
  r.mutable_spec()->set_model(deep);
  s = c->CreateJob(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("num_hidden_layers 5000 is above the limit of 1024"),
            std::string::npos)
      << s;
}

// Memory-aware leasing: a worker reporting less memory than a task's
// estimate is not given it; while no connected worker can hold the ready
// task, it waits and the job's message says why; a worker that can (or one
// that reports nothing) gets it.
TEST(CoordinatorTest, TasksLeaseOnlyToWorkersThatCanHoldThem) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  v1::CreateJobRequest request = SmallJobRequest(tmp.Join("out"));
  request.mutable_spec()->set_calibration_shards(2);
  absl::StatusOr<v1::Job> job = c->CreateJob(request);
  ASSERT_TRUE(job.ok()) << job.status();

  auto register_worker = [&](int64_t bytes) {
    v1::RegisterWorkerRequest r;
    r.set_hostname("w");
    r.set_max_memory_bytes(bytes);
    return c->RegisterWorker(r).worker_id();
  };
  const std::string small = register_worker(int64_t{1} << 20);  // 1 MiB: below any estimate
  EXPECT_TRUE(Lease(c.get(), small).task_id().empty());
  absl::StatusOr<v1::Job> waiting = c->GetJob(job->name());
  ASSERT_TRUE(waiting.ok());
  EXPECT_NE(waiting->message().find("calibrate layer 0 shard 1/2 waits: it needs about"),
            std::string::npos)
      << waiting->message();
  EXPECT_NE(waiting->message().find("no connected worker has that much --max-memory"),
            std::string::npos)
      << waiting->message();

  const std::string large = register_worker(int64_t{64} << 30);
  const v1::Task t = Lease(c.get(), large);
  ASSERT_EQ(job::KindOf(t), v1::CALIBRATE);
  EXPECT_EQ(t.calibrate().num_shards(), 2);
  EXPECT_TRUE(Lease(c.get(), small).task_id().empty());  // shard 2 still does not fit it
  // A worker that reports no limit (older workers) may run anything.
  const v1::Task other = Lease(c.get(), "legacy-worker");
  ASSERT_EQ(job::KindOf(other), v1::CALIBRATE);
  EXPECT_NE(other.calibrate().shard(), t.calibrate().shard());
}

// A worker that registered a CUDA device takes the largest ready decompose
// task; a CPU worker takes them in plan order (q_proj first).
TEST(CoordinatorTest, GpuWorkersTakeTheLargestReadyDecompose) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::Job> job = c->CreateJob(SmallJobRequest(tmp.Join("out"), "", true));
  ASSERT_TRUE(job.ok()) << job.status();
  auto register_worker = [&](const std::string& device) {
    v1::RegisterWorkerRequest r;
    r.set_hostname(device);
    r.set_device(device);
    return c->RegisterWorker(r).worker_id();
  };
  const std::string gpu = register_worker("cuda:0"), cpu = register_worker("cpu");
  const v1::Task calibrate = Lease(c.get(), cpu);
  ASSERT_EQ(job::KindOf(calibrate), v1::CALIBRATE);
  ASSERT_TRUE(Complete(c.get(), calibrate, cpu));

  // Layer 0's seven decompose tasks are ready (sequential calibration: layer
  // 1 waits for them). down_proj's estimate is the largest.
  const v1::Task on_gpu = Lease(c.get(), gpu);
  ASSERT_EQ(job::KindOf(on_gpu), v1::DECOMPOSE) << on_gpu.DebugString();
  EXPECT_EQ(on_gpu.decompose().module(), "down_proj");
  EXPECT_EQ(on_gpu.decompose().layer(), 0);
  const v1::Task on_cpu = Lease(c.get(), cpu);
  ASSERT_EQ(job::KindOf(on_cpu), v1::DECOMPOSE);
  EXPECT_EQ(on_cpu.decompose().module(), "q_proj");
  // Among equal estimates (gate_proj and up_proj) the GPU takes plan order's first.
  const v1::Task next = Lease(c.get(), gpu);
  ASSERT_EQ(job::KindOf(next), v1::DECOMPOSE);
  EXPECT_EQ(next.decompose().module(), "gate_proj");
  // A GPU worker the coordinator never saw register (it restarted since)
  // says its device in every lease request.
  v1::LeaseTaskRequest req;
  req.set_worker_id("gpu-registered-before-a-restart");
  req.set_device("cuda:1");
  const v1::Task unregistered = c->LeaseTask(req).task();
  ASSERT_EQ(job::KindOf(unregistered), v1::DECOMPOSE);
  EXPECT_EQ(unregistered.decompose().module(), "up_proj");
}

// --max-task-memory: a job whose calibrate task would not fit is refused at
// submit with the number of shards that would; a decompose too large for it
// is refused saying sharding does not help.
TEST(CoordinatorTest, MaxTaskMemorySaysHowManyShardsWouldFit) {
  TempDir tmp;
  absl::StatusOr<std::string> text = [] {
    std::ifstream in(StoriesModelDir() + "/config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return absl::StatusOr<std::string>(ss.str());
  }();
  absl::StatusOr<model::ModelConfig> config = model::ParseModelConfig(*text, "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> tokens =
      SafetensorsReader::OpenFile(StoriesModelDir() + "/calibration.safetensors");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  const TensorInfo* ids = (*tokens)->Find("input_ids");
  ASSERT_NE(ids, nullptr);
  const int64_t samples = ids->shape[0], seq_len = ids->shape[1];
  // Exactly what 4 shards need: 1 to 3 do not fit.
  const int64_t limit =
      job::EstimateCalibrateBytes(*config, job::LargestShardSamples(samples, 4), seq_len, true);
  ASSERT_LT(job::EstimateDecomposeBytes(*config, "q_proj"), limit);

  CoordinatorOptions o;
  o.data_dir = tmp.Join("state");
  o.max_task_memory = limit;
  absl::StatusOr<std::unique_ptr<Coordinator>> c =
      Coordinator::Open(o, std::make_shared<CoordinatorMetrics>());
  ASSERT_TRUE(c.ok()) << c.status();
  absl::Status refused = (*c)->CreateJob(SmallJobRequest(tmp.Join("out"))).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_NE(refused.message().find("calibrate layer 0 needs about"), std::string::npos) << refused;
  EXPECT_NE(refused.message().find("4 calibration shards would fit (use --calibration-shards 4"),
            std::string::npos)
      << refused;
  v1::CreateJobRequest four = SmallJobRequest(tmp.Join("out"));
  four.mutable_spec()->set_calibration_shards(4);
  EXPECT_TRUE((*c)->CreateJob(four).ok());

  // Below the decompose estimate: no shard count helps.
  CoordinatorOptions tiny = o;
  tiny.data_dir = tmp.Join("state2");
  tiny.max_task_memory = job::kTaskBaseBytes;
  absl::StatusOr<std::unique_ptr<Coordinator>> c2 =
      Coordinator::Open(tiny, std::make_shared<CoordinatorMetrics>());
  ASSERT_TRUE(c2.ok());
  refused = (*c2)->CreateJob(SmallJobRequest(tmp.Join("out"))).status();
  EXPECT_NE(refused.message().find("no number of calibration shards fits"), std::string::npos)
      << refused;
}

}  // namespace
}  // namespace caldera::server
