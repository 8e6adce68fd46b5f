// WatchJob pushes on change (issue 17): a watcher wakes only when its job
// changes, gets the update within a second of a task's completion, sends
// nothing while its job is idle, and ends promptly when cancelled. The
// snapshot of a change is built once and shared by every reader.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "caldera/v1/jobs.grpc.pb.h"
#include "gtest/gtest.h"
#include "job/task_plan.h"
#include "server/coordinator.h"
#include "server/coordinator_server.h"
#include "tests/support/fixtures.h"
#include "tests/unit/server/job_requests.h"

namespace caldera::server {
namespace {

using Clock = std::chrono::steady_clock;
using testing::TempDir;

v1::Task Lease(Coordinator* c) {
  v1::LeaseTaskRequest req;
  req.set_worker_id("w1");
  req.set_wait_seconds(0);
  return c->LeaseTask(req).task();
}

bool Complete(Coordinator* c, const v1::Task& t) {
  v1::CompleteTaskRequest req;
  req.set_worker_id("w1");
  req.set_attempt_id(t.attempt_id());
  job::SetResultOfTask(t, &req);
  return c->CompleteTask(req).accepted();
}

// A coordinator served in plaintext on 127.0.0.1 (local single-user mode).
class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorOptions o;
    o.data_dir = tmp_.Join("state");
    absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Open(o, nullptr);
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = *std::move(c);
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> s =
        CoordinatorServer::Start(coordinator_.get(), "127.0.0.1:0", ServerSecurity());
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    stub_ = v1::JobService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                        grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    server_.reset();
    coordinator_.reset();
  }

  TempDir tmp_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

// Reads a watch stream on its own thread, recording each event's arrival.
class Watcher {
 public:
  Watcher(v1::JobService::Stub* stub, const std::string& name) {
    v1::WatchJobRequest req;
    req.set_name(name);
    reader_ = stub->WatchJob(&ctx_, req);
    thread_ = std::thread([this] {
      v1::JobEvent e;
      while (reader_->Read(&e)) {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(e);
        arrivals_.push_back(Clock::now());
      }
    });
  }
  ~Watcher() { Stop(); }
  // Cancels the stream; returns how long until the stream ended.
  double Stop() {
    if (!thread_.joinable()) return 0;
    const auto start = Clock::now();
    ctx_.TryCancel();
    thread_.join();
    reader_->Finish();
    return std::chrono::duration<double>(Clock::now() - start).count();
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.size();
  }
  // Waits up to `seconds` for at least n events.
  bool WaitFor(size_t n, double seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < deadline) {
      if (count() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return count() >= n;
  }
  v1::JobEvent event(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.at(i);
  }
  Clock::time_point arrival(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return arrivals_.at(i);
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<v1::JobEvent> events_;
  std::vector<Clock::time_point> arrivals_;
};

TEST_F(WatchTest, AWatcherGetsACompletionWithinASecond) {
  absl::StatusOr<v1::Job> job = coordinator_->CreateJob(SmallJobRequest(tmp_.Join("out")));
  ASSERT_TRUE(job.ok()) << job.status();
  Watcher w(stub_.get(), job->name());
  ASSERT_TRUE(w.WaitFor(1, 5));  // the current snapshot first
  const int64_t first = w.event(0).sequence();

  const v1::Task t = Lease(coordinator_.get());
  ASSERT_FALSE(t.task_id().empty());
  ASSERT_TRUE(w.WaitFor(2, 5));
  const auto completed = Clock::now();
  ASSERT_TRUE(Complete(coordinator_.get(), t));
  ASSERT_TRUE(w.WaitFor(3, 5));
  EXPECT_LT(std::chrono::duration<double>(w.arrival(2) - completed).count(), 1.0);
  const v1::JobEvent done = w.event(2);
  EXPECT_GT(done.sequence(), first);
  EXPECT_NE(done.message().find("done"), std::string::npos) << done.message();
  int finished = 0;
  for (const v1::TaskStatus& ts : done.job().task_status()) {
    finished += ts.state() == v1::TASK_DONE ? 1 : 0;
  }
  EXPECT_EQ(finished, 1);
  EXPECT_LT(w.Stop(), 1.0);
}

TEST_F(WatchTest, AnIdleWatchSendsNothingAndEndsPromptlyWhenCancelled) {
  absl::StatusOr<v1::Job> job = coordinator_->CreateJob(SmallJobRequest(tmp_.Join("out")));
  absl::StatusOr<v1::Job> other = coordinator_->CreateJob(SmallJobRequest(tmp_.Join("out2")));
  ASSERT_TRUE(job.ok() && other.ok());
  Watcher w(stub_.get(), job->name());
  ASSERT_TRUE(w.WaitFor(1, 5));
  // Changes of another job wake nobody watching this one.
  ASSERT_TRUE(coordinator_->CancelJob(other->name()).ok());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(w.count(), 1u);
  EXPECT_LT(w.Stop(), 1.0);
}

TEST_F(WatchTest, CancellingTheJobEndsTheWatchWithTheTerminalState) {
  absl::StatusOr<v1::Job> job = coordinator_->CreateJob(SmallJobRequest(tmp_.Join("out")));
  ASSERT_TRUE(job.ok());
  Watcher w(stub_.get(), job->name());
  ASSERT_TRUE(w.WaitFor(1, 5));
  ASSERT_TRUE(coordinator_->CancelJob(job->name()).ok());
  ASSERT_TRUE(w.WaitFor(2, 2));
  EXPECT_EQ(w.event(1).job().state(), v1::CANCELLED);
}

TEST_F(WatchTest, OneSnapshotPerChangeIsSharedAndAnUnchangedJobBuildsNone) {
  absl::StatusOr<v1::Job> job = coordinator_->CreateJob(SmallJobRequest(tmp_.Join("out")));
  ASSERT_TRUE(job.ok());
  absl::StatusOr<JobChange> a = coordinator_->WaitForChange(job->name(), -1, 0);
  absl::StatusOr<JobChange> b = coordinator_->WaitForChange(job->name(), -1, 0);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_NE(a->snapshot, nullptr);
  EXPECT_EQ(a->snapshot.get(), b->snapshot.get());  // built once
  const auto start = Clock::now();
  absl::StatusOr<JobChange> idle = coordinator_->WaitForChange(job->name(), a->version, 0.3);
  ASSERT_TRUE(idle.ok());
  EXPECT_FALSE(idle->changed);
  EXPECT_EQ(idle->snapshot, nullptr);
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - start).count(), 0.25);
  // A change makes a new snapshot; GetJob agrees with it.
  ASSERT_TRUE(Lease(coordinator_.get()).task_id().size() > 0);
  absl::StatusOr<JobChange> c = coordinator_->WaitForChange(job->name(), a->version, 1);
  ASSERT_TRUE(c.ok() && c->changed);
  EXPECT_NE(c->snapshot.get(), a->snapshot.get());
  absl::StatusOr<v1::Job> got = coordinator_->GetJob(job->name());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), v1::RUNNING);
  EXPECT_EQ(got->task_status(0).state(), v1::TASK_LEASED);
}

}  // namespace
}  // namespace caldera::server
