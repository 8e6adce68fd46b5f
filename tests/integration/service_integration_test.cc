// The distributed service with real processes on loopback: caldera-coordinator,
// caldera-worker(s), a moto S3 server, and calderactl as the client. Covers the
// issue's list: distributed == embedded bytes, worker SIGKILL mid-decompose,
// coordinator SIGKILL and restart, cancel, bad inputs next to a running job,
// idempotent submit, metrics that move.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "storage/storage.h"
#include "storage/storage_options.h"
#include "storage/uri.h"
#include "tests/support/fixtures.h"
#include "tests/support/s3_server.h"
#include "tests/support/subprocess.h"

namespace caldera {
namespace {

using testing::FixturePath;
using testing::RunCommand;
using testing::StoriesModelDir;
using testing::Subprocess;
using testing::TempDir;
using namespace std::chrono_literals;

std::string Ctl() { return CALDERACTL_PATH; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Job flags small enough that a whole job takes seconds on the fixture.
// `extra` flags replace the defaults of the same name.
std::string JobFlags(const std::string& model, const std::string& calibration,
                     const std::string& out, const std::string& extra = "") {
  std::string flags = absl::StrCat(" --model ", model, " --calibration ", calibration, " --out ",
                                   out, " --seed 7", extra);
  for (const char* d : {" --rank 8", " --iters 1", " --lplr-iters 1"}) {
    const std::string name = std::string(d).substr(0, std::string(d).rfind(' ') + 1);
    if (extra.find(name) == std::string::npos) flags += d;
  }
  return flags;
}

// A coordinator and workers on loopback, stopped with the test.
class Cluster {
 public:
  explicit Cluster(std::string data_dir) : data_dir_(std::move(data_dir)) {
    port_ = FreePort();
    metrics_port_ = FreePort();
  }

  void StartCoordinator(double lease_seconds = 3) {
    absl::StatusOr<Subprocess> p = Subprocess::Start(
        {COORDINATOR_PATH, "--listen", absl::StrCat("127.0.0.1:", port_), "--data-dir", data_dir_,
         "--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port_), "--lease-seconds",
         absl::StrCat(lease_seconds), "--heartbeat-seconds", "0.5"});
    ASSERT_TRUE(p.ok()) << p.status();
    coordinator_.emplace(*std::move(p));
    // Ready when the API answers.
    for (int i = 0; i < 100; ++i) {
      if (Run(" list") == 0) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "the coordinator did not come up on port " << port_;
  }

  // Sends `sig` to the coordinator and returns its wait status (-1: still
  // running after 15 s).
  int StopCoordinator(int sig) {
    coordinator_->Signal(sig);
    const int status = coordinator_->Wait(15000ms);
    coordinator_.reset();
    return status;
  }

  void KillCoordinator() {
    coordinator_->Signal(SIGKILL);
    coordinator_->Wait(5000ms);
    coordinator_.reset();
  }

  // Returns the worker's index; its metrics are on worker_metrics_port(i).
  size_t StartWorker() {
    const int mport = FreePort();
    absl::StatusOr<Subprocess> p = Subprocess::Start(
        {WORKER_PATH, "--coordinator", absl::StrCat("127.0.0.1:", port_), "--threads", "1",
         "--poll-seconds", "1", "--metrics-listen", absl::StrCat("127.0.0.1:", mport)});
    EXPECT_TRUE(p.ok()) << p.status();
    workers_.push_back(std::make_unique<Subprocess>(*std::move(p)));
    worker_metrics_ports_.push_back(mport);
    return workers_.size() - 1;
  }

  void SignalWorker(size_t i, int sig) { workers_[i]->Signal(sig); }
  // The worker's wait status, -1 while it still runs after `timeout`.
  int WaitWorker(size_t i, std::chrono::milliseconds timeout) { return workers_[i]->Wait(timeout); }
  void KillWorker(size_t i) {
    workers_[i]->Signal(SIGKILL);
    workers_[i]->Wait(5000ms);
  }

  std::string server() const { return absl::StrCat("127.0.0.1:", port_); }
  int metrics_port() const { return metrics_port_; }
  int worker_metrics_port(size_t i) const { return worker_metrics_ports_[i]; }

  // calderactl <args> --server <this>; returns the exit code.
  int Run(const std::string& args, std::string* out = nullptr) const {
    std::string ignored;
    return RunCommand(absl::StrCat(Ctl(), args, " --server ", server(), " 2>&1"),
                      out != nullptr ? out : &ignored);
  }

  // The job as JSON (calderactl status -o json).
  nlohmann::json Status(const std::string& name) const {
    std::string out;
    if (RunCommand(absl::StrCat(Ctl(), " status ", name, " -o json --server ", server()), &out) !=
        0) {
      return nlohmann::json();
    }
    return nlohmann::json::parse(out, nullptr, false);
  }

  std::string Submit(const std::string& flags) const {
    std::string out;
    EXPECT_EQ(Run(absl::StrCat(" submit", flags), &out), 0) << out;
    while (!out.empty() && (out.back() == '\n')) out.pop_back();
    return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  }

  // Waits until `pred(status)` holds; false after `timeout`.
  bool WaitFor(const std::string& name, const std::function<bool(const nlohmann::json&)>& pred,
               std::chrono::milliseconds timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      nlohmann::json j = Status(name);
      if (j.is_object() && pred(j)) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

 private:
  std::string data_dir_;
  int port_ = 0, metrics_port_ = 0;
  std::optional<Subprocess> coordinator_;
  std::vector<std::unique_ptr<Subprocess>> workers_;
  std::vector<int> worker_metrics_ports_;
};

bool Terminal(const nlohmann::json& j) {
  const std::string s = j.value("state", "");
  return s == "SUCCEEDED" || s == "FAILED" || s == "CANCELLED";
}

// Tasks in `state` (and of `kind`, if given).
std::vector<nlohmann::json> TasksIn(const nlohmann::json& job, const std::string& state,
                                    const std::string& kind = "") {
  std::vector<nlohmann::json> out;
  for (const nlohmann::json& t : job.value("taskStatus", nlohmann::json::array())) {
    if (t.value("state", "") == state && (kind.empty() || t.value("kind", "") == kind)) {
      out.push_back(t);
    }
  }
  return out;
}

// Sum of a metric's samples whose line starts with `prefix` in a scrape.
double MetricSum(const std::string& scrape, const std::string& prefix) {
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (line.empty() || line[0] == '#' || !absl::StartsWith(line, prefix)) continue;
    const size_t space = line.rfind(' ');
    sum += std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr);
  }
  return sum;
}

std::string Scrape(int port) {
  std::string out;
  RunCommand(absl::StrCat("curl -sf http://127.0.0.1:", port, "/metrics"), &out);
  return out;
}

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
  EXPECT_EQ(compared, 9);  // 6 shards, config.json, index, the copied tokenizer file
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
                              tmp.Join("out"), " --iters 400 --lplr-iters 20"));
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
}  // namespace caldera
