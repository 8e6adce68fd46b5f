// The distributed service with real processes on loopback: caldera-coordinator,
// caldera-worker(s), a moto S3 server, and calderactl as the client. Covers the
// issue's list: distributed == embedded bytes, worker SIGKILL mid-decompose,
// coordinator SIGKILL and restart, cancel, bad inputs next to a running job,
// idempotent submit, metrics that move.
// (Lifecycle cases — bad input, signals, exit codes — are in
// service_lifecycle_test.cc; the cluster helpers in service_cluster.h.)
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/storage.h"
#include "storage/storage_options.h"
#include "storage/uri.h"
#include "tests/integration/service_cluster.h"
#include "tests/support/fixtures.h"
#include "tests/support/s3_server.h"
#include "tests/support/subprocess.h"

namespace caldera::service_test {
namespace {

// ---- 2. distributed over S3 == embedded, byte for byte ----------------------
TEST(ServiceIntegrationTest, DistributedOverS3MatchesEmbeddedBytes) {
  absl::StatusOr<testing::S3TestServer> s3 = testing::S3TestServer::Start();
  ASSERT_TRUE(s3.ok()) << s3.status();
  storage::StorageOptions so;
  so.endpoint = s3->endpoint();
  so.access_key_id = s3->access_key();
  so.secret_access_key = s3->secret_key();
  // The processes read the same settings from the environment.
  setenv("AWS_ACCESS_KEY_ID", s3->access_key().c_str(), 1);
  setenv("AWS_SECRET_ACCESS_KEY", s3->secret_key().c_str(), 1);
  setenv("AWS_ENDPOINT_URL", s3->endpoint().c_str(), 1);
  const std::string bucket = absl::StrCat("s3://", s3->bucket());
  // Upload the fixture model and its calibration tokens.
  for (const auto& entry : std::filesystem::directory_iterator(StoriesModelDir())) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file()) continue;
    ASSERT_TRUE(storage::WriteObject(absl::StrCat(bucket, "/models/stories260K/", name),
                                     ReadFile(entry.path().string()), so)
                    .ok())
        << name;
  }
  TempDir tmp;
  Cluster cluster(tmp.Join("state"));
  cluster.StartCoordinator();
  cluster.StartWorker();
  cluster.StartWorker();
  const std::string model = bucket + "/models/stories260K";
  std::string log;
  ASSERT_EQ(
      cluster.Run(absl::StrCat(" submit --wait", JobFlags(model, model + "/calibration.safetensors",
                                                          bucket + "/out/dist")),
                  &log),
      0)
      << log;
  EXPECT_NE(log.find("SUCCEEDED"), std::string::npos) << log;

  const std::string local = tmp.Join("embedded");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " compress",
                                    JobFlags(StoriesModelDir(),
                                             StoriesModelDir() + "/calibration.safetensors", local),
                                    " --workers 2 2>&1"),
                       &log),
            0)
      << log;
  int compared = 0;
  for (const auto& entry : std::filesystem::directory_iterator(local)) {
    const std::string name = entry.path().filename().string();
    if (name == "report.json") continue;  // holds timings
    absl::StatusOr<std::string> remote =
        storage::ReadObject(absl::StrCat(bucket, "/out/dist/", name), so);
    ASSERT_TRUE(remote.ok()) << name << ": " << remote.status();
    EXPECT_TRUE(*remote == ReadFile(entry.path().string())) << name << " differs";
    ++compared;
  }
  // 6 shards, config.json, index, the copied tokenizer file and the
  // tokenizer.json + tokenizer_config.json written for its llama2.c vocabulary.
  EXPECT_EQ(compared, 11);
  // report.json exists remotely with every matrix; scratch is gone.
  absl::StatusOr<std::string> report = storage::ReadObject(bucket + "/out/dist/report.json", so);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(nlohmann::json::parse(*report)["matrices"].size(), 35u);
  absl::StatusOr<storage::StoreAndKey> sk = storage::OpenUri(bucket + "/out/dist", so);
  ASSERT_TRUE(sk.ok());
  absl::StatusOr<storage::ListPage> page = sk->store->List("out/dist/.caldera-scratch/", "", 10);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->objects.empty());
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_ENDPOINT_URL");
}

// ---- 3. a worker killed mid-decompose ---------------------------------------
TEST(ServiceIntegrationTest, WorkerKilledMidDecomposeIsRetriedAndCommittedOnce) {
  TempDir tmp;
  Cluster cluster(tmp.Join("state"));
  cluster.StartCoordinator(/*lease_seconds=*/2);
  const size_t first = cluster.StartWorker();
  // Slower decompositions so the kill lands inside one.
  const std::string name =
      cluster.Submit(JobFlags(StoriesModelDir(), StoriesModelDir() + "/calibration.safetensors",
                              tmp.Join("out"), " --iters 20 --lplr-iters 5"));
  ASSERT_FALSE(name.empty());
  // Freeze the only worker while it holds a decompose lease (SIGSTOP, then
  // check the lease is still there: it may have been between two tasks), so
  // the SIGKILL lands inside a task however fast tasks are.
  std::string victim;
  for (int tries = 0; victim.empty() && tries < 50; ++tries) {
    ASSERT_TRUE(cluster.WaitFor(
        name,
        [&](const nlohmann::json& j) { return !TasksIn(j, "TASK_LEASED", "DECOMPOSE").empty(); },
        60s));
    cluster.SignalWorker(first, SIGSTOP);
    std::this_thread::sleep_for(300ms);  // let a completion already sent land
    auto leased = TasksIn(cluster.Status(name), "TASK_LEASED", "DECOMPOSE");
    if (!leased.empty()) {
      victim = leased[0]["taskId"];
    } else {
      cluster.SignalWorker(first, SIGCONT);
    }
  }
  ASSERT_FALSE(victim.empty());
  cluster.KillWorker(first);
  cluster.StartWorker();
  ASSERT_TRUE(cluster.WaitFor(name, Terminal, 180s));
  nlohmann::json job = cluster.Status(name);
  ASSERT_EQ(job["state"], "SUCCEEDED") << job.dump(2);
  bool found = false;
  int commits_expected = 0;
  for (const nlohmann::json& t : job["taskStatus"]) {
    ++commits_expected;
    EXPECT_EQ(t["state"], "TASK_DONE");
    EXPECT_FALSE(t["committedAttempt"].get<std::string>().empty());
    if (t["taskId"] == victim) {
      found = true;
      EXPECT_EQ(t["attempts"], 2) << t.dump();
      // The second attempt is the one committed.
      EXPECT_NE(t["committedAttempt"].get<std::string>().find("/a2-"), std::string::npos)
          << t.dump();
    }
  }
  EXPECT_TRUE(found) << victim;
  // Exactly one commit per task, one lease expiry.
  const std::string scrape = Scrape(cluster.metrics_port());
  EXPECT_EQ(MetricSum(scrape, "caldera_task_commits_total"), commits_expected) << scrape;
  EXPECT_GE(MetricSum(scrape, "caldera_lease_expiries_total"), 1.0);
  EXPECT_GE(MetricSum(scrape, "caldera_task_retries_total"), 1.0);
  EXPECT_FALSE(std::filesystem::exists(tmp.Join("out/.caldera-scratch")));
}

// A job with 2 calibration shards whose only worker is killed inside a
// calibrate(l, s) task: the task is retried on a new worker, and every task —
// each shard's calibrate included — is committed exactly once.
TEST(ServiceIntegrationTest, WorkerKilledMidCalibrateShardIsRetriedAndEachShardCommittedOnce) {
  TempDir tmp;
  Cluster cluster(tmp.Join("state"));
  cluster.StartCoordinator(/*lease_seconds=*/2);
  const size_t first = cluster.StartWorker();
  const std::string name =
      cluster.Submit(JobFlags(StoriesModelDir(), StoriesModelDir() + "/calibration.safetensors",
                              tmp.Join("out"), " --calibration-shards 2"));
  ASSERT_FALSE(name.empty());
  std::string victim;
  for (int tries = 0; victim.empty() && tries < 50; ++tries) {
    ASSERT_TRUE(cluster.WaitFor(
        name,
        [&](const nlohmann::json& j) { return !TasksIn(j, "TASK_LEASED", "CALIBRATE").empty(); },
        60s));
    cluster.SignalWorker(first, SIGSTOP);
    std::this_thread::sleep_for(300ms);  // let a completion already sent land
    auto leased = TasksIn(cluster.Status(name), "TASK_LEASED", "CALIBRATE");
    if (!leased.empty()) {
      victim = leased[0]["taskId"];
    } else {
      cluster.SignalWorker(first, SIGCONT);
    }
  }
  ASSERT_FALSE(victim.empty());
  EXPECT_NE(victim.find("-s00"), std::string::npos) << victim;  // a shard's task
  cluster.KillWorker(first);
  cluster.StartWorker();
  ASSERT_TRUE(cluster.WaitFor(name, Terminal, 180s));
  nlohmann::json job = cluster.Status(name);
  ASSERT_EQ(job["state"], "SUCCEEDED") << job.dump(2);
  int commits_expected = 0, calibrate_tasks = 0;
  bool found = false;
  for (const nlohmann::json& t : job["taskStatus"]) {
    ++commits_expected;
    if (t.value("kind", "") == "CALIBRATE") ++calibrate_tasks;
    EXPECT_EQ(t["state"], "TASK_DONE");
    EXPECT_FALSE(t["committedAttempt"].get<std::string>().empty());
    if (t["taskId"] == victim) {
      found = true;
      EXPECT_EQ(t["attempts"], 2) << t.dump();
      EXPECT_NE(t["committedAttempt"].get<std::string>().find("/a2-"), std::string::npos)
          << t.dump();
    }
  }
  EXPECT_TRUE(found) << victim;
  EXPECT_EQ(calibrate_tasks, 2 * 5);  // 5 layers x 2 shards
  const std::string scrape = Scrape(cluster.metrics_port());
  EXPECT_EQ(MetricSum(scrape, "caldera_task_commits_total"), commits_expected) << scrape;
  EXPECT_GE(MetricSum(scrape, "caldera_task_retries_total"), 1.0);
  EXPECT_FALSE(std::filesystem::exists(tmp.Join("out/.caldera-scratch")));
}

// ---- 4. the coordinator killed and restarted --------------------------------
TEST(ServiceIntegrationTest, CoordinatorKilledAndRestartedContinuesTheJob) {
  TempDir tmp;
  Cluster cluster(tmp.Join("state"));
  cluster.StartCoordinator();
  cluster.StartWorker();
  cluster.StartWorker();
  const std::string name =
      cluster.Submit(JobFlags(StoriesModelDir(), StoriesModelDir() + "/calibration.safetensors",
                              tmp.Join("out"), " --iters 6 --lplr-iters 3"));
  std::set<std::string> done_before;
  ASSERT_TRUE(cluster.WaitFor(
      name, [&](const nlohmann::json& j) { return TasksIn(j, "TASK_DONE").size() >= 8; }, 120s));
  nlohmann::json before = cluster.Status(name);
  for (const nlohmann::json& t : TasksIn(before, "TASK_DONE")) done_before.insert(t["taskId"]);
  cluster.KillCoordinator();
  std::this_thread::sleep_for(500ms);
  cluster.StartCoordinator();
  ASSERT_TRUE(cluster.WaitFor(name, Terminal, 180s));
  nlohmann::json job = cluster.Status(name);
  ASSERT_EQ(job["state"], "SUCCEEDED") << job.dump(2);
  int checked = 0;
  for (const nlohmann::json& t : job["taskStatus"]) {
    if (done_before.count(t["taskId"]) == 0) continue;
    EXPECT_EQ(t["attempts"], 1) << "finished before the crash, ran again: " << t.dump();
    ++checked;
  }
  EXPECT_GE(checked, 8);
  EXPECT_FALSE(ReadFile(tmp.Join("out/model.safetensors.index.json")).empty());
}

// ---- 5. cancel mid-job -------------------------------------------------------
TEST(ServiceIntegrationTest, CancelStopsWorkersAndWritesNoIndex) {
  TempDir tmp;
  Cluster cluster(tmp.Join("state"));
  cluster.StartCoordinator();
  const size_t w = cluster.StartWorker();
  const std::string name =
      cluster.Submit(JobFlags(StoriesModelDir(), StoriesModelDir() + "/calibration.safetensors",
                              tmp.Join("out"), " --iters 100 --lplr-iters 100"));
  ASSERT_TRUE(cluster.WaitFor(
      name, [](const nlohmann::json& j) { return !TasksIn(j, "TASK_LEASED", "DECOMPOSE").empty(); },
      60s));
  std::string out;
  ASSERT_EQ(cluster.Run(absl::StrCat(" cancel ", name), &out), 0) << out;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(cluster.WaitFor(
      name, [](const nlohmann::json& j) { return j["state"] == "CANCELLED"; }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  // The worker hears "cancel" on its next heartbeat and drops the task.
  bool stopped = false;
  for (int i = 0; i < 100 && !stopped; ++i) {
    stopped =
        MetricSum(Scrape(cluster.worker_metrics_port(w)),
                  "caldera_worker_tasks_total{kind=\"decompose\",outcome=\"cancelled\"}") >= 1;
    if (!stopped) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(stopped);
  EXPECT_FALSE(std::filesystem::exists(tmp.Join("out/model.safetensors.index.json")));
  // Cancelling again is refused with a clear message and exit code 2.
  EXPECT_EQ(cluster.Run(absl::StrCat(" cancel ", name), &out), 2);
  EXPECT_NE(out.find("already ended"), std::string::npos) << out;
}

}  // namespace
}  // namespace caldera::service_test
