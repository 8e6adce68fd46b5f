// The coordinator when its state database cannot be written (issue 17): write
// calls fail with UNAVAILABLE and a message naming the data directory, reads
// go on, nothing aborts, memory stays what the database holds, and writes
// work again once space returns. "Full" here is SQLite's own limit (PRAGMA
// max_page_count on the coordinator's connection: SQLITE_FULL, the code a full
// disk gives); tests/integration/disk_full_test.py fills a real file system.
#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "job/task_plan.h"
#include "server/coordinator.h"
#include "tests/support/fixtures.h"
#include "tests/unit/server/job_requests.h"

namespace caldera::server {
namespace {

using testing::TempDir;

std::unique_ptr<Coordinator> Open(const std::string& dir) {
  CoordinatorOptions o;
  o.data_dir = dir;
  o.lease_seconds = 30;
  o.heartbeat_seconds = 5;
  absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Open(o, nullptr);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

v1::Task Lease(Coordinator* c, absl::Status* status = nullptr) {
  v1::LeaseTaskRequest req;
  req.set_worker_id("w1");
  req.set_wait_seconds(0);
  return c->LeaseTask(req, status).task();
}

v1::CompleteTaskRequest Report(const v1::Task& t) {
  v1::CompleteTaskRequest req;
  req.set_worker_id("w1");
  req.set_attempt_id(t.attempt_id());
  job::SetResultOfTask(t, &req);
  return req;
}

// The state of each task of `name`, as GetJob shows it.
std::vector<v1::TaskState> TaskStates(Coordinator* c, const std::string& name) {
  std::vector<v1::TaskState> out;
  absl::StatusOr<v1::Job> job = c->GetJob(name);
  EXPECT_TRUE(job.ok()) << job.status();
  if (!job.ok()) return out;
  for (const v1::TaskStatus& t : job->task_status()) out.push_back(t.state());
  return out;
}

TEST(StateDegradedTest, FullDatabaseRefusesWritesKeepsReadsAndRecovers) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::Job> first =
      c->CreateJob(SmallJobRequest(tmp.Join("out0"), "", /*all_modules=*/true));
  ASSERT_TRUE(first.ok()) << first.status();
  const v1::Task held = Lease(c.get());  // calibrate(0), leased before the disk fills
  ASSERT_FALSE(held.task_id().empty());

  // The database is full at its current size (max_page_count below the page
  // count clamps to it): the next job's plan cannot be written.
  ASSERT_TRUE(c->SetStateMaxPagesForTest(1).ok());
  absl::StatusOr<v1::Job> refused =
      c->CreateJob(SmallJobRequest(tmp.Join("out1"), "", /*all_modules=*/true));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), tmp.Join("state"))) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "full")) << refused.status();

  // Reads go on; the refused job does not exist, in memory or on disk.
  absl::StatusOr<v1::Job> got = c->GetJob(first->name());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state(), v1::RUNNING);
  absl::StatusOr<v1::ListJobsResponse> list = c->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->jobs_size(), 1);

  // Every write is refused while full: a new job, a cancel, a report; no
  // task is leased; the held lease survives (heartbeats still work).
  EXPECT_EQ(
      c->CreateJob(SmallJobRequest(tmp.Join("out2"), "", /*all_modules=*/true)).status().code(),
      absl::StatusCode::kUnavailable);
  EXPECT_EQ(c->CancelJob(first->name()).status().code(), absl::StatusCode::kUnavailable);
  absl::Status lease_status;
  EXPECT_TRUE(Lease(c.get(), &lease_status).task_id().empty());
  absl::Status report_status;
  EXPECT_FALSE(c->CompleteTask(Report(held), &report_status).accepted());
  EXPECT_EQ(report_status.code(), absl::StatusCode::kUnavailable) << report_status;
  v1::HeartbeatRequest hb;
  hb.set_worker_id("w1");
  hb.set_attempt_id(held.attempt_id());
  EXPECT_FALSE(c->Heartbeat(hb).lease_lost());
  got = c->GetJob(first->name());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), v1::RUNNING);  // the cancel did not happen

  // Space returns: after the next probe (at most a second) writes work again,
  // and the report retried by the worker commits.
  ASSERT_TRUE(c->SetStateMaxPagesForTest(1 << 30).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  absl::Status retried;
  EXPECT_TRUE(c->CompleteTask(Report(held), &retried).accepted()) << retried;
  EXPECT_TRUE(retried.ok()) << retried;
  absl::StatusOr<v1::Job> second =
      c->CreateJob(SmallJobRequest(tmp.Join("out1"), "", /*all_modules=*/true));
  ASSERT_TRUE(second.ok()) << second.status();

  // What a restart reads back is what the API said.
  c.reset();
  c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  list = c->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->jobs_size(), 2);
  EXPECT_EQ(TaskStates(c.get(), first->name()).at(0), v1::TASK_DONE);
}

// A write that fails in the middle of a call (a lease, a report) leaves no
// half-made change behind: memory goes back to what the database holds (the
// same task states a restart reads), and work goes on once writes succeed.
TEST(StateDegradedTest, AFailedWriteMidCallIsUndone) {
  TempDir tmp;
  std::unique_ptr<Coordinator> c = Open(tmp.Join("state"));
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::Job> job =
      c->CreateJob(SmallJobRequest(tmp.Join("out"), "", /*all_modules=*/true));
  ASSERT_TRUE(job.ok()) << job.status();
  // Full at the current size: lease and report until a write fails.
  ASSERT_TRUE(c->SetStateMaxPagesForTest(1).ok());
  absl::Status status;
  for (int i = 0; i < 200 && status.ok(); ++i) {
    v1::Task t = Lease(c.get(), &status);
    if (t.task_id().empty()) break;
    c->CompleteTask(Report(t), &status);
  }
  ASSERT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  const std::vector<v1::TaskState> in_memory = TaskStates(c.get(), job->name());
  c.reset();
  c = Open(tmp.Join("state"));  // a fresh connection: no page limit
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(in_memory, TaskStates(c.get(), job->name()));
  absl::Status lease_status;
  v1::Task t = Lease(c.get(), &lease_status);
  EXPECT_TRUE(lease_status.ok()) << lease_status;
}

}  // namespace
}  // namespace caldera::server
