// The distributed service's lifecycle with real processes on loopback: bad
// inputs rejected next to a running job, SIGTERM drains for workers and the
// coordinator, calderactl's exit codes, operator files refused at start. The
// data path (distributed == embedded bytes, kills and restarts, cancel) is in
// service_integration_test.cc; both are one test binary.
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

// ---- 6 + 7 + 8: bad inputs next to a running job, idempotent submit, metrics
TEST(ServiceIntegrationTest, BadInputsAreRejectedWhileAnotherJobRuns) {
  TempDir tmp;
  Cluster cluster(tmp.Join("state"));
  cluster.StartCoordinator();
  const size_t w = cluster.StartWorker();
  const std::string calib = StoriesModelDir() + "/calibration.safetensors";
  const std::string good = cluster.Submit(JobFlags(StoriesModelDir(), calib, tmp.Join("good"),
                                                   " --iters 8 --lplr-iters 4 --request-id r1"));
  ASSERT_FALSE(good.empty());
  const std::string scrape_start = Scrape(cluster.metrics_port());

  // 7. Idempotent submit: the same request id gives the same job.
  EXPECT_EQ(cluster.Submit(JobFlags(StoriesModelDir(), calib, tmp.Join("good"),
                                    " --iters 8 --lplr-iters 4 --request-id r1")),
            good);

  // Inputs for the bad cases.
  const std::string arch = tmp.Join("arch");
  std::filesystem::create_directories(arch);
  std::filesystem::copy(StoriesModelDir() + "/model.safetensors", arch + "/model.safetensors");
  {
    nlohmann::json config = nlohmann::json::parse(ReadFile(StoriesModelDir() + "/config.json"));
    config["architectures"] = {"GPTNeoXForCausalLM"};
    config["model_type"] = "gpt_neox";
    std::ofstream(arch + "/config.json") << config.dump();
  }
  const std::string truncated = tmp.Join("truncated");
  std::filesystem::create_directories(truncated);
  std::filesystem::copy(StoriesModelDir() + "/config.json", truncated + "/config.json");
  {
    const std::string bytes = ReadFile(StoriesModelDir() + "/model.safetensors");
    std::ofstream(truncated + "/model.safetensors", std::ios::binary)
        << bytes.substr(0, bytes.size() / 2);
  }
  const std::string bad_tokens = tmp.Join("bad_tokens.safetensors");
  {
    // input_ids [1, 4] with an id far outside the 512-token vocabulary.
    const std::string header =
        R"({"input_ids":{"dtype":"I32","shape":[1,4],"data_offsets":[0,16]}})";
    std::string file(8, '\0');
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    file += header;
    const int32_t ids[4] = {1, 2, 99999, 3};
    file.append(reinterpret_cast<const char*>(ids), sizeof(ids));
    std::ofstream(bad_tokens, std::ios::binary) << file;
  }
  std::ofstream(tmp.Join("a-file")) << "x";

  struct Case {
    std::string what, flags, expect;
  };
  const std::vector<Case> cases = {
      {"missing model", JobFlags(tmp.Join("no-such-model"), calib, tmp.Join("o1")),
       "no-such-model"},
      {"unsupported architecture", JobFlags(arch, calib, tmp.Join("o2")), "GPTNeoXForCausalLM"},
      {"truncated safetensors", JobFlags(truncated, calib, tmp.Join("o3")), "model.safetensors"},
      {"token ids out of range", JobFlags(StoriesModelDir(), bad_tokens, tmp.Join("o4")), "99999"},
      {"rank too large", JobFlags(StoriesModelDir(), calib, tmp.Join("o5"), " --rank 100"),
       "--rank 100 is larger than"},
      {"unknown bits", JobFlags(StoriesModelDir(), calib, tmp.Join("o6"), " --q-bits 7"),
       "--q-bits 7"},
      {"output not writable", JobFlags(StoriesModelDir(), calib, tmp.Join("a-file/out")),
       "is not writable"},
  };
  for (const Case& c : cases) {
    std::string out;
    EXPECT_EQ(cluster.Run(absl::StrCat(" submit", c.flags), &out), 2) << c.what << ": " << out;
    EXPECT_NE(out.find(c.expect), std::string::npos) << c.what << ": " << out;
    EXPECT_NE(out.find("error"), std::string::npos) << c.what << ": " << out;
  }
  // 8. Metrics move while the job runs, on the coordinator and the worker.
  ASSERT_TRUE(cluster.WaitFor(good, Terminal, 180s));
  EXPECT_EQ(cluster.Status(good)["state"], "SUCCEEDED");
  const std::string scrape_end = Scrape(cluster.metrics_port());
  EXPECT_GT(MetricSum(scrape_end, "caldera_task_commits_total"),
            MetricSum(scrape_start, "caldera_task_commits_total"));
  EXPECT_EQ(MetricSum(scrape_end, "caldera_jobs{state=\"succeeded\"}"), 1);
  EXPECT_GT(MetricSum(scrape_end, "caldera_matrix_weighted_error_count"), 0);
  EXPECT_GT(MetricSum(scrape_end, "caldera_task_duration_seconds_count{kind=\"decompose\"}"), 0);
  EXPECT_GE(MetricSum(scrape_end, "caldera_workers_connected"), 1);
  const std::string worker = Scrape(cluster.worker_metrics_port(w));
  EXPECT_GT(MetricSum(worker, "caldera_worker_busy_seconds_total"), 0) << worker;
  EXPECT_GT(MetricSum(worker, "caldera_worker_storage_bytes_total"), 0) << worker;
  // Only one job was ever created: the bad ones never reached the plan.
  std::string list;
  ASSERT_EQ(cluster.Run(" list -o json", &list), 0) << list;
  EXPECT_EQ(nlohmann::json::parse(list)["jobs"].size(), 1u) << list;
}

// ---- 9. SIGTERM: a worker drains (Kubernetes scale-down) ----------------------
// The worker takes no new task, finishes (or hands back) the one it holds and
// exits 0 while the job goes on; another worker completes the job.
TEST(ServiceIntegrationTest, WorkerSigtermDrainsAndExitsZeroAndTheJobSucceeds) {
  TempDir tmp;
  Cluster cluster(tmp.Join("state"));
  cluster.StartCoordinator();
  const size_t w = cluster.StartWorker();
  const std::string name =
      cluster.Submit(JobFlags(StoriesModelDir(), StoriesModelDir() + "/calibration.safetensors",
                              tmp.Join("out"), " --iters 20 --lplr-iters 5"));
  ASSERT_FALSE(name.empty());
  ASSERT_TRUE(cluster.WaitFor(
      name, [](const nlohmann::json& j) { return !TasksIn(j, "TASK_LEASED", "DECOMPOSE").empty(); },
      60s));
  cluster.SignalWorker(w, SIGTERM);
  const int status = cluster.WaitWorker(w, 120000ms);
  ASSERT_NE(status, -1) << "the worker did not drain and exit after SIGTERM";
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status
                                 << (WIFSIGNALED(status) ? " (killed by the signal)" : "");
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // It left the job unfinished (it took no new tasks) and nothing failed.
  nlohmann::json mid = cluster.Status(name);
  EXPECT_FALSE(Terminal(mid)) << mid.dump(2);
  EXPECT_TRUE(TasksIn(mid, "TASK_FAILED").empty()) << mid.dump(2);
  cluster.StartWorker();
  ASSERT_TRUE(cluster.WaitFor(name, Terminal, 180s));
  nlohmann::json job = cluster.Status(name);
  EXPECT_EQ(job["state"], "SUCCEEDED") << job.dump(2);
}

// ---- 10. SIGTERM: the coordinator shuts down gracefully, a restart continues -
TEST(ServiceIntegrationTest, CoordinatorSigtermExitsZeroAndRestartContinuesTheJob) {
  TempDir tmp;
  Cluster cluster(tmp.Join("state"));
  cluster.StartCoordinator();
  cluster.StartWorker();
  const std::string name =
      cluster.Submit(JobFlags(StoriesModelDir(), StoriesModelDir() + "/calibration.safetensors",
                              tmp.Join("out"), " --iters 6 --lplr-iters 3"));
  ASSERT_TRUE(cluster.WaitFor(
      name, [&](const nlohmann::json& j) { return TasksIn(j, "TASK_DONE").size() >= 6; }, 120s));
  std::set<std::string> done_before;
  for (const nlohmann::json& t : TasksIn(cluster.Status(name), "TASK_DONE")) {
    done_before.insert(t["taskId"]);
  }
  const int status = cluster.StopCoordinator(SIGTERM);
  ASSERT_NE(status, -1) << "the coordinator did not exit within 15 s of SIGTERM";
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  cluster.StartCoordinator();
  ASSERT_TRUE(cluster.WaitFor(name, Terminal, 180s));
  nlohmann::json job = cluster.Status(name);
  ASSERT_EQ(job["state"], "SUCCEEDED") << job.dump(2);
  for (const nlohmann::json& t : job["taskStatus"]) {
    if (done_before.count(t["taskId"]) != 0) {
      EXPECT_EQ(t["attempts"], 1) << "finished before the shutdown, ran again: " << t.dump();
    }
  }
  EXPECT_FALSE(ReadFile(tmp.Join("out/model.safetensors.index.json")).empty());
}

// ---- 11. exit codes of submit --wait and watch: 3 failed, 4 cancelled -------
TEST(ServiceIntegrationTest, SubmitWaitAndWatchExitThreeForFailedAndFourForCancelled) {
  TempDir tmp;
  Cluster cluster(tmp.Join("state"));
  cluster.StartCoordinator();
  // A model that passes submit's checks, then is corrupted before any worker
  // reads it: its calibrate task fails (a corrupt input is not retried).
  const std::string model = tmp.Join("model");
  ASSERT_EQ(
      RunCommand(absl::StrCat("mkdir -p ", model, " && cp ", StoriesModelDir(), "/config.json ",
                              StoriesModelDir(), "/model.safetensors ", model, "/")),
      0);
  const std::string calib = StoriesModelDir() + "/calibration.safetensors";
  auto submit_wait = [&](const std::string& out) {
    absl::StatusOr<Subprocess> p = Subprocess::Start(
        {"/bin/sh", "-c",
         absl::StrCat("exec ", Ctl(), " submit --wait", JobFlags(model, calib, out), " --server ",
                      cluster.server(), " 2>&1")});
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::make_unique<Subprocess>(*std::move(p)) : nullptr;
  };
  auto newest_job = [&]() -> std::string {
    std::string out;
    if (RunCommand(absl::StrCat(Ctl(), " list -o json --server ", cluster.server()), &out) != 0) {
      return "";
    }
    nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
    const nlohmann::json* jobs = &j;
    if (j.is_object() && j.contains("jobs")) jobs = &j["jobs"];
    if (!jobs->is_array() || jobs->empty()) return "";
    return (*jobs)[0].value("name", "");
  };

  // Cancelled: submit --wait with no worker, cancel it.
  std::unique_ptr<Subprocess> cancelled = submit_wait(tmp.Join("out-c"));
  ASSERT_NE(cancelled, nullptr);
  std::string cname;
  for (int i = 0; i < 100 && cname.empty(); ++i) {
    cname = newest_job();
    if (cname.empty()) std::this_thread::sleep_for(100ms);
  }
  ASSERT_FALSE(cname.empty());
  std::string out;
  ASSERT_EQ(cluster.Run(absl::StrCat(" cancel ", cname), &out), 0) << out;
  int status = cancelled->Wait(30000ms);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 4) << "submit --wait of a cancelled job";
  EXPECT_EQ(cluster.Run(absl::StrCat(" watch ", cname), &out), 4) << out;

  // Failed: submit --wait, corrupt the model, then start a worker.
  std::unique_ptr<Subprocess> failed = submit_wait(tmp.Join("out-f"));
  ASSERT_NE(failed, nullptr);
  std::string fname;
  for (int i = 0; i < 100 && (fname.empty() || fname == cname); ++i) {
    fname = newest_job();
    if (fname.empty() || fname == cname) std::this_thread::sleep_for(100ms);
  }
  ASSERT_FALSE(fname.empty());
  ASSERT_NE(fname, cname);
  ASSERT_EQ(RunCommand(absl::StrCat("head -c 2000 ", StoriesModelDir(), "/model.safetensors > ",
                                    model, "/model.safetensors")),
            0);
  cluster.StartWorker();
  status = failed->Wait(120000ms);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 3) << "submit --wait of a failed job";
  EXPECT_EQ(cluster.Status(fname).value("state", ""), "FAILED");
  EXPECT_EQ(cluster.Run(absl::StrCat(" watch ", fname), &out), 3) << out;
}

// ---- 12. a coordinator setting that cannot work is refused at start ------
// --config naming a FIFO used to block the start forever (read through an
// ifstream); a retry delay out of range is named.
TEST(ServiceIntegrationTest, CoordinatorRefusesAFifoConfigAndABadRetryDelayAtOnce) {
  TempDir tmp;
  const std::string fifo = tmp.Join("coordinator.json");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string start = absl::StrCat("timeout -s KILL 20 ", COORDINATOR_PATH,
                                         " --listen 127.0.0.1:0 --data-dir ", tmp.Join("state"));
  std::string out;
  EXPECT_EQ(RunCommand(absl::StrCat(start, " --config ", fifo, " 2>&1"), &out), 2) << out;
  EXPECT_TRUE(absl::StrContains(out, "coordinator.json is not a regular file")) << out;
  out.clear();
  EXPECT_EQ(RunCommand(absl::StrCat(start, " --retry-delay 301 2>&1"), &out), 2) << out;
  EXPECT_TRUE(
      absl::StrContains(out, "retry delay 301 s is invalid; use 0 (retry at once) to 300 s"))
      << out;
}

}  // namespace
}  // namespace caldera::service_test

namespace caldera::service_test {
namespace {

// ---- 13. operator files and TLS material that cannot work (issue 37) ------
// A key that does not match --tls-cert ended the coordinator in SIGSEGV; a
// FIFO as --auth-tokens blocked its start for ever; a worker with a
// mismatched client key, or a token the coordinator does not know, retried
// for ever. Each now exits 2 at once, naming the file or the refusal.
TEST(ServiceIntegrationTest, UnusableOperatorFilesExitTwoNamingTheProblem) {
  TempDir tmp;
  ASSERT_EQ(
      std::system(
          absl::StrCat("bash ", MAKE_TEST_CERTS, " ", tmp.path(), " >/dev/null 2>&1").c_str()),
      0);
  const std::string fifo = tmp.Join("tokens.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string coordinator =
      absl::StrCat("timeout -s KILL 20 ", COORDINATOR_PATH, " --listen 127.0.0.1:0 --data-dir ",
                   tmp.Join("state"));
  std::string out;
  EXPECT_EQ(RunCommand(absl::StrCat(coordinator, " --tls-cert ", tmp.Join("server.pem"),
                                    " --tls-key ", tmp.Join("wrong-server.key"), " 2>&1"),
                       &out),
            2)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "wrong-server.key does not match the certificate")) << out;
  out.clear();
  EXPECT_EQ(RunCommand(absl::StrCat(coordinator, " --auth-tokens ", fifo, " 2>&1"), &out), 2)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "tokens.fifo is not a regular file but a FIFO")) << out;

  const std::string worker = absl::StrCat("timeout -s KILL 20 ", WORKER_PATH, " --threads 1");
  out.clear();
  EXPECT_EQ(RunCommand(absl::StrCat(worker, " --coordinator 127.0.0.1:1 --tls-ca ",
                                    tmp.Join("ca.pem"), " --tls-cert ", tmp.Join("client.pem"),
                                    " --tls-key ", tmp.Join("wrong-client.key"), " 2>&1"),
                       &out),
            2)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "wrong-client.key does not match the certificate")) << out;

  // A token the coordinator does not know: UNAUTHENTICATED at registration.
  std::ofstream(tmp.Join("tokens")) << "# no worker tokens\n";
  std::ofstream(tmp.Join("worker-token")) << "not-a-known-token\n";
  const int port = FreePort();
  absl::StatusOr<Subprocess> served =
      Subprocess::Start({COORDINATOR_PATH, "--listen", absl::StrCat("127.0.0.1:", port),
                         "--data-dir", tmp.Join("state2"), "--auth-tokens", tmp.Join("tokens")});
  ASSERT_TRUE(served.ok()) << served.status();
  for (int i = 0; i < 100; ++i) {  // up when calderactl stops saying "unavailable" (75)
    if (RunCommand(absl::StrCat(Ctl(), " list --server 127.0.0.1:", port, " 2>&1"), &out) != 75) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  out.clear();
  EXPECT_EQ(RunCommand(absl::StrCat(worker, " --coordinator 127.0.0.1:", port, " --token-file ",
                                    tmp.Join("worker-token"), " 2>&1"),
                       &out),
            2)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "refused to register this worker")) << out;
}

}  // namespace
}  // namespace caldera::service_test
