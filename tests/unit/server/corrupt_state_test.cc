// A state database that is valid SQLite but holds rows no plan makes (issue
// 17): the coordinator starts, quarantines that job (FAILED with a message
// naming it and the bad row) and runs every other job. One case per defect
// the issue lists plus the other checks of server/state_check.h.
#include <sqlite3.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "job/task_plan.h"
#include "server/coordinator.h"
#include "server/planner.h"
#include "server/state_check.h"
#include "tests/support/fixtures.h"
#include "tests/unit/server/job_requests.h"

namespace caldera::server {
namespace {

using testing::TempDir;

std::unique_ptr<Coordinator> Open(const std::string& dir) {
  CoordinatorOptions o;
  o.data_dir = dir;
  absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Open(o, nullptr);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// Runs `sql` ("%s" = the bad job's id) on the closed coordinator's database.
void Corrupt(const std::string& dir, const std::string& sql_template, const std::string& job_id) {
  std::string sql = sql_template;
  for (size_t at; (at = sql.find("%s")) != std::string::npos;) sql.replace(at, 2, job_id);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/coordinator.db").c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
      << (err != nullptr ? err : "") << " in " << sql;
  sqlite3_free(err);
  sqlite3_close(db);
}

struct Case {
  const char* name;
  const char* sql;
  const char* message;  // part of the quarantine message
};

class CorruptStateTest : public ::testing::TestWithParam<Case> {};

TEST_P(CorruptStateTest, BadJobIsQuarantinedAndTheOtherRuns) {
  TempDir tmp;
  const std::string dir = tmp.Join("state");
  std::string bad_name, good_name;
  {
    std::unique_ptr<Coordinator> c = Open(dir);
    ASSERT_NE(c, nullptr);
    absl::StatusOr<v1::Job> bad = c->CreateJob(SmallJobRequest(tmp.Join("out-bad")));
    absl::StatusOr<v1::Job> good = c->CreateJob(SmallJobRequest(tmp.Join("out-good")));
    ASSERT_TRUE(bad.ok() && good.ok());
    bad_name = bad->name();
    good_name = good->name();
  }
  const std::string bad_id = bad_name.substr(std::string("jobs/").size());
  Corrupt(dir, GetParam().sql, bad_id);

  std::unique_ptr<Coordinator> c = Open(dir);  // starts: no abort, no SIGSEGV
  ASSERT_NE(c, nullptr);
  absl::StatusOr<v1::Job> bad = c->GetJob(bad_name);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_EQ(bad->state(), v1::FAILED);
  EXPECT_TRUE(absl::StrContains(bad->error(), bad_id)) << bad->error();
  EXPECT_TRUE(absl::StrContains(bad->error(), GetParam().message)) << bad->error();
  EXPECT_TRUE(absl::StrContains(bad->error(), "quarantined")) << bad->error();
  absl::StatusOr<v1::ListJobsResponse> list = c->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->jobs_size(), 2);

  // The other job runs to the end; nothing of the bad one is leased.
  for (int i = 0; i < 100; ++i) {
    v1::LeaseTaskRequest req;
    req.set_worker_id("w1");
    req.set_wait_seconds(0);
    v1::Task t = c->LeaseTask(req).task();
    if (t.task_id().empty()) break;
    EXPECT_EQ(t.job_name(), good_name);
    v1::CompleteTaskRequest done;
    done.set_worker_id("w1");
    done.set_attempt_id(t.attempt_id());
    job::SetResultOfTask(t, &done);
    ASSERT_TRUE(c->CompleteTask(done).accepted());
  }
  absl::StatusOr<v1::Job> good = c->GetJob(good_name);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->state(), v1::SUCCEEDED);
  EXPECT_EQ(c->CancelJob(bad_name).status().code(), absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, CorruptStateTest,
    ::testing::Values(
        Case{"NoCalibrateRows", "DELETE FROM tasks WHERE job_id = '%s' AND kind = 1;", "calibrate"},
        Case{"NegativeDecomposeLayer",
             "UPDATE tasks SET layer = -5 WHERE job_id = '%s' AND kind = 2 AND ord = "
             "(SELECT MIN(ord) FROM tasks WHERE job_id = '%s' AND kind = 2);",
             "layer -5"},
        Case{"NegativeCalibrateLayer",
             "UPDATE tasks SET layer = -5 WHERE job_id = '%s' AND kind = 1 AND layer = 2;",
             "layer -5"},
        Case{"LayerBeyondThePlan",
             "UPDATE tasks SET layer = 4000 WHERE job_id = '%s' AND kind = 2 AND layer = 1;",
             "layer 4000"},
        Case{"UnknownJobState", "UPDATE jobs SET state = 42 WHERE id = '%s';",
             "unknown state (42)"},
        Case{"UnknownTaskState", "UPDATE tasks SET state = 99 WHERE job_id = '%s' AND kind = 3;",
             "unknown state (99)"},
        Case{"UnknownTaskKind", "UPDATE tasks SET kind = 7 WHERE job_id = '%s' AND kind = 3;",
             "unknown kind (7)"},
        Case{"UnknownModule",
             "UPDATE tasks SET module = 'x_proj' WHERE job_id = '%s' AND kind = 2;",
             "unknown module"},
        Case{"NoFinalize", "DELETE FROM tasks WHERE job_id = '%s' AND kind = 3;", "no finalize"},
        Case{"NoTasks", "DELETE FROM tasks WHERE job_id = '%s';", "no tasks"},
        Case{"LeasedWithoutAttempt",
             "UPDATE tasks SET state = 2, lease_attempt = '' WHERE job_id = '%s' AND kind = 3;",
             "leased without an attempt"},
        Case{"SpecDoesNotDecode", "UPDATE jobs SET spec = X'FFFFFFFF' WHERE id = '%s';",
             "spec that does not decode"},
        Case{"HugeRequestId", "UPDATE jobs SET request_id = hex(randomblob(1000)) WHERE id = '%s';",
             "request id of 2000 bytes"}),
    [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

TEST(StateCheckTest, PlansOfThePlannerPass) {
  for (int shards : {1, 3}) {
    JobRecord job;
    job.id = "j-1";
    job.state = v1::RUNNING;
    job.spec.set_calibration_shards(shards);
    const std::vector<TaskRecord> tasks = PlanJob("j-1", 5, {"q_proj", "down_proj"}, shards);
    EXPECT_TRUE(CheckStoredJob(job, tasks).ok()) << CheckStoredJob(job, tasks);
  }
}

}  // namespace
}  // namespace caldera::server
