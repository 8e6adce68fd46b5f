// Test support for the service integration tests: a coordinator and workers
// started as real processes on loopback (Cluster), calderactl as the client,
// and small helpers to read job JSON and Prometheus scrapes. Header-only; the
// test binary defines CALDERACTL_PATH, COORDINATOR_PATH and WORKER_PATH.
#ifndef CALDERA_TESTS_INTEGRATION_SERVICE_CLUSTER_H_
#define CALDERA_TESTS_INTEGRATION_SERVICE_CLUSTER_H_

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

namespace caldera::service_test {

using testing::FixturePath;
using testing::RunCommand;
using testing::StoriesModelDir;
using testing::Subprocess;
using testing::TempDir;
using namespace std::chrono_literals;

inline std::string Ctl() { return CALDERACTL_PATH; }

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using testing::FreePort;

// Job flags small enough that a whole job takes seconds on the fixture.
// `extra` flags replace the defaults of the same name.
inline std::string JobFlags(const std::string& model, const std::string& calibration,
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

inline bool Terminal(const nlohmann::json& j) {
  const std::string s = j.value("state", "");
  return s == "SUCCEEDED" || s == "FAILED" || s == "CANCELLED";
}

// Tasks in `state` (and of `kind`, if given).
inline std::vector<nlohmann::json> TasksIn(const nlohmann::json& job, const std::string& state,
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
inline double MetricSum(const std::string& scrape, const std::string& prefix) {
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (line.empty() || line[0] == '#' || !absl::StartsWith(line, prefix)) continue;
    const size_t space = line.rfind(' ');
    sum += std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr);
  }
  return sum;
}

inline std::string Scrape(int port) {
  std::string out;
  RunCommand(absl::StrCat("curl -sf http://127.0.0.1:", port, "/metrics"), &out);
  return out;
}

}  // namespace caldera::service_test

#endif  // CALDERA_TESTS_INTEGRATION_SERVICE_CLUSTER_H_
