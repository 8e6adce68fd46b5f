// ListJobs and CreateJob copy shared snapshots outside the coordinator's lock
// (issue 17): a listing still carries summaries only (no task list, no matrix
// errors, the per-kind counts), sees every change, and concurrent listings do
// not disturb writers.
#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "job/task_plan.h"
#include "server/coordinator.h"
#include "tests/support/fixtures.h"

namespace caldera::server {
namespace {

using testing::TempDir;

v1::CreateJobRequest Request(const std::string& out) {
  absl::StatusOr<std::string> p = testing::FixturePath("stories260K/model.safetensors");
  EXPECT_TRUE(p.ok()) << p.status();
  const std::string model = p.ok() ? p->substr(0, p->rfind('/')) : "";
  v1::CreateJobRequest r;
  r.mutable_spec()->set_model(model);
  r.mutable_spec()->set_calibration(model + "/calibration.safetensors");
  r.mutable_spec()->set_out(out);
  r.mutable_spec()->add_modules("q_proj");
  r.mutable_spec()->mutable_decomposition()->set_rank(8);
  return r;
}

TEST(ListSnapshotTest, ListingsAreSummariesThatFollowChangesUnderConcurrentWrites) {
  TempDir tmp;
  CoordinatorOptions o;
  o.data_dir = tmp.Join("state");
  absl::StatusOr<std::unique_ptr<Coordinator>> opened = Coordinator::Open(o, nullptr);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Coordinator* c = opened->get();
  absl::StatusOr<v1::Job> job = c->CreateJob(Request(tmp.Join("out")));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_GT(job->task_status_size(), 0);  // CreateJob answers with the full job

  std::atomic<bool> stop{false};
  std::atomic<int> listings{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        absl::StatusOr<v1::ListJobsResponse> list = c->ListJobs(v1::ListJobsRequest());
        ASSERT_TRUE(list.ok());
        ASSERT_EQ(list->jobs_size(), 1);
        EXPECT_EQ(list->jobs(0).task_status_size(), 0);
        EXPECT_EQ(list->jobs(0).progress().matrix_errors_size(), 0);
        ++listings;
      }
    });
  }
  // Run the whole job while the readers list.
  for (int i = 0; i < 100; ++i) {
    v1::LeaseTaskRequest req;
    req.set_worker_id("w1");
    req.set_wait_seconds(0);
    v1::Task t = c->LeaseTask(req).task();
    if (t.task_id().empty()) break;
    v1::CompleteTaskRequest done;
    done.set_worker_id("w1");
    done.set_attempt_id(t.attempt_id());
    job::SetResultOfTask(t, &done);
    ASSERT_TRUE(c->CompleteTask(done).accepted());
  }
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_GT(listings.load(), 0);

  absl::StatusOr<v1::ListJobsResponse> list = c->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->jobs_size(), 1);
  const v1::Job& listed = list->jobs(0);
  EXPECT_EQ(listed.state(), v1::SUCCEEDED);
  EXPECT_EQ(listed.task_status_size(), 0);
  EXPECT_EQ(listed.progress().matrix_errors_size(), 0);
  ASSERT_GT(listed.progress().tasks_size(), 0);
  int done = 0, total = 0;
  for (const v1::TaskCounts& k : listed.progress().tasks()) {
    done += k.done();
    total += k.total();
  }
  EXPECT_EQ(done, total);
  absl::StatusOr<v1::Job> full = c->GetJob(job->name());
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->task_status_size(), total);
  EXPECT_GT(full->progress().matrix_errors_size(), 0);
  // The same request id again: the existing job, as of now.
  v1::CreateJobRequest again = Request(tmp.Join("out"));
  again.set_request_id("rid");
  absl::StatusOr<v1::Job> first = c->CreateJob(again);
  absl::StatusOr<v1::Job> second = c->CreateJob(again);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->name(), second->name());
}

}  // namespace
}  // namespace caldera::server
