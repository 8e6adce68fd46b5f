// Hardening, round 3 (issue 37), on the coordinator: operator files (a token
// file replaced by a FIFO or /dev/zero, TLS material that does not match),
// bounded worker ids and hostnames, and per-owner quotas. Each test names
// the case it guards.
#include <fcntl.h>
#include <prometheus/registry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>

#include "caldera/v1/jobs.grpc.pb.h"
#include "caldera/v1/worker.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "server/coordinator_server.h"
#include "server/token_file.h"
#include "server/worker_table.h"
#include "service_runtime/grpc_security.h"
#include "storage/sha256.h"
#include "tests/support/fixtures.h"
#include "tests/unit/server/job_requests.h"

namespace caldera::server {
namespace {

using testing::TempDir;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

std::string Line(const std::string& token, const std::string& role, const std::string& name,
                 const std::string& quotas = "") {
  return storage::Sha256Hex(token) + "  " + role + "  " + name + " " + quotas + "\n";
}

// The value of a counter of `registry` (-1 when it has none of that name).
double CounterValue(const prometheus::Registry& registry, const std::string& name) {
  for (const prometheus::MetricFamily& f : registry.Collect()) {
    if (f.name == name && !f.metric.empty()) return f.metric[0].counter.value;
  }
  return -1;
}

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 10) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

// Opens the FIFO for writing once: a reader blocked in open() (the code
// before issue 37) returns, so a failing test still ends.
void ReleaseFifoReader(const std::string& fifo) {
  const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  if (w >= 0) ::close(w);
}

// A coordinator (with metrics) served on loopback with `security`.
class Served {
 public:
  explicit Served(ServerSecurity security) {
    metrics_ = std::make_shared<CoordinatorMetrics>();
    CoordinatorOptions o;
    o.data_dir = tmp_.Join("state");
    o.max_long_poll_seconds = 0;
    absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Open(o, metrics_);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return;
    coordinator_ = *std::move(c);
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> s =
        CoordinatorServer::Start(coordinator_.get(), "127.0.0.1:0", security);
    status_ = s.status();
    if (s.ok()) server_ = *std::move(s);
  }
  const absl::Status& status() const { return status_; }
  const prometheus::Registry& registry() const { return *metrics_->registry(); }
  std::string Out(const std::string& name) const { return tmp_.Join(name); }
  std::shared_ptr<grpc::Channel> Channel(const std::string& token) const {
    service_runtime::ClientSecurity s;
    s.token = token;
    return *service_runtime::OpenChannel(absl::StrCat("localhost:", server_->port()), s);
  }
  grpc::Status List(const std::string& token, int deadline_seconds = 10) const {
    v1::ListJobsResponse out;
    return v1::JobService::NewStub(Channel(token))
        ->ListJobs(Ctx(deadline_seconds).get(), v1::ListJobsRequest(), &out);
  }
  grpc::Status Create(const std::string& token, const std::string& out, v1::Job* job) const {
    return v1::JobService::NewStub(Channel(token))
        ->CreateJob(Ctx().get(), SmallJobRequest(Out(out)), job);
  }

 private:
  TempDir tmp_;
  std::shared_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServer> server_;
  absl::Status status_;
};

ServerSecurity WithTokens(const std::string& path) {
  ServerSecurity s;
  s.auth.token_file = path;
  return s;
}

// Case 1: a FIFO as --auth-tokens at start-up fails fast naming the file
// (it blocked for ever in open()).
TEST(OperatorFilesTest, ATokenFileThatIsAFifoFailsStartUpAtOnce) {
  TempDir tmp;
  const std::string fifo = tmp.Join("tokens");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto open = std::async(std::launch::async, [&] { return TokenFile::Open(fifo).status(); });
  const bool returned = open.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
  if (!returned) ReleaseFifoReader(fifo);
  ASSERT_TRUE(returned) << "TokenFile::Open blocked on a FIFO";
  const absl::Status s = open.get();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--auth-tokens " + fifo + " is not a regular file but a FIFO"),
            std::string::npos)
      << s;
}

// Case 1: replacing the token file of a running coordinator with a FIFO, then
// with a link to /dev/zero, wedged every call (the reload blocked in open()
// under the token lock) or made each read ~1 GB. Now each changed version is
// refused without blocking, counted, and the previous tokens stay in force;
// a regular file again is picked up.
TEST(OperatorFilesTest, AReloadThatFailsKeepsThePreviousTokens) {
  TempDir tmp;
  const std::string path = tmp.Join("tokens");
  WriteFile(path, Line("viewer-token", "viewer", "vera"));
  Served s(WithTokens(path));
  ASSERT_TRUE(s.status().ok()) << s.status();
  ASSERT_TRUE(s.List("viewer-token").ok());
  EXPECT_EQ(CounterValue(s.registry(), "caldera_token_file_reload_failures_total"), 0);

  ASSERT_EQ(std::rename(path.c_str(), tmp.Join("tokens.old").c_str()), 0);
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  const grpc::Status during_fifo = s.List("viewer-token", 3);
  if (!during_fifo.ok()) ReleaseFifoReader(path);
  ASSERT_TRUE(during_fifo.ok()) << during_fifo.error_message();
  EXPECT_EQ(CounterValue(s.registry(), "caldera_token_file_reload_failures_total"), 1);

  ASSERT_EQ(std::remove(path.c_str()), 0);
  ASSERT_EQ(::symlink("/dev/zero", path.c_str()), 0);
  EXPECT_TRUE(s.List("viewer-token", 3).ok());
  EXPECT_TRUE(s.List("viewer-token", 3).ok());  // reported once per version
  EXPECT_EQ(CounterValue(s.registry(), "caldera_token_file_reload_failures_total"), 2);

  ASSERT_EQ(std::remove(path.c_str()), 0);
  WriteFile(path, Line("carol-token", "viewer", "carol"));
  EXPECT_TRUE(s.List("carol-token").ok());
  EXPECT_EQ(s.List("viewer-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// Case 2: a key that does not match --tls-cert ended in SIGSEGV after gRPC's
// "Unable to create secure server"; now Start refuses it naming the files.
TEST(OperatorFilesTest, AMismatchedTlsKeyIsRefusedBeforeTheServerIsBuilt) {
  TempDir certs;
  ASSERT_EQ(
      std::system(
          absl::StrCat("bash ", MAKE_TEST_CERTS, " ", certs.path(), " >/dev/null 2>&1").c_str()),
      0);
  TempDir tmp;
  WriteFile(tmp.Join("tokens"), Line("viewer-token", "viewer", "vera"));
  for (const char* key : {"wrong-server.key", "server.pem"}) {
    ServerSecurity security = WithTokens(tmp.Join("tokens"));
    security.tls.tls_cert = certs.Join("server.pem");
    security.tls.tls_key = certs.Join(key);
    Served s(security);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_NE(s.status().message().find("--tls-key " + certs.Join(key)), std::string::npos)
        << s.status();
  }
}

// Case 3: a 3 MB worker id was accepted by LeaseTask and Heartbeat and landed
// in job messages; a 1 MB hostname came back as a 1 MB id.
TEST(WorkerIdsTest, IdsAndHostnamesAreBounded) {
  TempDir tmp;
  CoordinatorOptions o;
  o.data_dir = tmp.Join("state");
  o.max_long_poll_seconds = 0;
  absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Open(o, nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->CreateJob(SmallJobRequest(tmp.Join("out"))).ok());

  v1::LeaseTaskRequest lease;
  lease.set_worker_id(std::string(3 << 20, 'w'));
  absl::Status status;
  EXPECT_FALSE((*c)->LeaseTask(lease, &status).has_task());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  lease.set_worker_id("w\n1");  // control characters would reach messages and logs
  status = absl::OkStatus();
  EXPECT_FALSE((*c)->LeaseTask(lease, &status).has_task());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  v1::HeartbeatRequest hb;
  hb.set_worker_id(std::string(3 << 20, 'w'));
  EXPECT_TRUE((*c)->Heartbeat(hb).lease_lost());

  v1::RegisterWorkerRequest reg;
  reg.set_hostname(std::string(1 << 20, 'h') + "\n\x01");
  const std::string id = (*c)->RegisterWorker(reg).worker_id();
  EXPECT_LE(id.size(), kMaxWorkerIdBytes);
  EXPECT_TRUE(IsValidWorkerId(id)) << id.substr(0, 200);
  reg.set_hostname("bad host\n");
  EXPECT_EQ((*c)->RegisterWorker(reg).worker_id().substr(0, 9), "bad_host_");
  lease.set_worker_id(id);
  status = absl::OkStatus();
  EXPECT_TRUE((*c)->LeaseTask(lease, &status).has_task()) << status;
  absl::StatusOr<v1::ListJobsResponse> list = (*c)->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  EXPECT_LT(list->ByteSizeLong(), 4096u);
}

// Case 3, over gRPC: the worker service refuses oversized ids and hostnames.
TEST(WorkerIdsTest, TheWorkerServiceRefusesOversizedIdsAndHostnames) {
  TempDir tmp;
  WriteFile(tmp.Join("tokens"), Line("worker-token", "worker", "w-pool"));
  Served s(WithTokens(tmp.Join("tokens")));
  ASSERT_TRUE(s.status().ok()) << s.status();
  auto stub = v1::WorkerService::NewStub(s.Channel("worker-token"));
  v1::RegisterWorkerRequest reg;
  reg.set_hostname(std::string(1 << 20, 'h'));
  v1::RegisterWorkerResponse reg_resp;
  EXPECT_EQ(stub->RegisterWorker(Ctx().get(), reg, &reg_resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::LeaseTaskRequest lease;
  lease.set_worker_id(std::string(3 << 20, 'w'));
  v1::LeaseTaskResponse lease_resp;
  EXPECT_EQ(stub->LeaseTask(Ctx().get(), lease, &lease_resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::HeartbeatRequest hb;
  hb.set_worker_id(std::string(600, 'w'));  // above the bound, below the old 512-byte skip
  v1::HeartbeatResponse hb_resp;
  EXPECT_EQ(stub->Heartbeat(Ctx().get(), hb, &hb_resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// Case 3: ids not heard from for the forget period are dropped; queries about
// connected workers see only the recent ones.
TEST(WorkerIdsTest, StaleIdsAreForgotten) {
  WorkerTable table(/*connected_seconds=*/15, /*forget_seconds=*/60, /*max_workers=*/1000);
  for (int i = 0; i < 500; ++i) table.Touch(absl::StrCat("stale-", i), 1000.0 + i * 0.01);
  EXPECT_EQ(table.size(), 500u);
  table.Touch("live", 1070.0, int64_t{1} << 30, /*gpu=*/true);
  EXPECT_EQ(table.size(), 1u);  // the 500 were last heard from over 60 s before
  EXPECT_EQ(table.MemoryOf("live"), int64_t{1} << 30);
  EXPECT_TRUE(table.IsGpu("live"));
  EXPECT_EQ(table.Connected(1080.0), 1);
  EXPECT_EQ(table.Connected(1090.0), 0);
  EXPECT_TRUE(table.AnyConnected(1080.0, [](int64_t m) { return m >= (int64_t{1} << 30); }));
  for (int i = 0; i < 1500; ++i) table.Touch(absl::StrCat("w-", i), 1080.0);
  EXPECT_EQ(table.size(), 1000u);  // at most max_workers, the oldest dropped first
  EXPECT_EQ(table.MemoryOf("live"), 0);
  table.Touch(std::string(kMaxWorkerIdBytes + 1, 'x'), 1080.0);
  table.Touch("has space", 1080.0);
  EXPECT_EQ(table.size(), 1000u);
  EXPECT_EQ(WorkerIdPrefix(""), "worker");
  EXPECT_EQ(WorkerIdPrefix(std::string(100, 'a')).size(), kMaxHostnameBytes);
}

// The retry time of a backed-off task is stored: a restarted coordinator
// does not lease the task before it (it did at once).
TEST(RetryTimeTest, ABackedOffTaskWaitsAcrossARestart) {
  TempDir tmp;
  CoordinatorOptions o;
  o.data_dir = tmp.Join("state");
  o.max_long_poll_seconds = 0;
  o.retry_delay_seconds = 60;
  v1::LeaseTaskRequest lease;
  lease.set_worker_id("w1");
  std::string task_id;
  {
    absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Open(o, nullptr);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE((*c)->CreateJob(SmallJobRequest(tmp.Join("out"))).ok());
    const v1::Task t = (*c)->LeaseTask(lease).task();
    ASSERT_FALSE(t.task_id().empty());
    task_id = t.task_id();
    v1::FailTaskRequest fail;
    fail.set_worker_id("w1");
    fail.set_attempt_id(t.attempt_id());
    fail.set_error("write out/x: No space left on device");
    fail.set_retryable(true);
    absl::Status s;
    (*c)->FailTask(fail, &s);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_FALSE((*c)->LeaseTask(lease).has_task());
  }
  absl::StatusOr<std::unique_ptr<Coordinator>> restarted = Coordinator::Open(o, nullptr);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_FALSE((*restarted)->LeaseTask(lease).has_task()) << "leased before its retry time";
}

// Case 5: an adapter rank above a matrix's min(m, n) is refused at submit,
// naming the matrix (the spec alone bounds it only by kMaxRank).
TEST(SpecBoundsTest, ATtloraRankAboveTheMatrixIsRefusedAtSubmit) {
  TempDir tmp;
  CoordinatorOptions o;
  o.data_dir = tmp.Join("state");
  absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Open(o, nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  v1::CreateJobRequest r = SmallJobRequest(tmp.Join("out"));
  r.mutable_spec()->mutable_ttlora()->set_rank(1000);
  absl::StatusOr<v1::Job> job = (*c)->CreateJob(r);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(job.status().message().find("--ttlora-rank 1000 is larger than q_proj"),
            std::string::npos)
      << job.status();
}

// Case 6: per-owner quotas from the token file. A third queued job of an
// owner with queued=2 is RESOURCE_EXHAUSTED naming the limit (others are not
// affected); with running=1 a second job of that owner waits to start while
// another owner's job runs.
TEST(QuotaTest, OwnersQuotasComeFromTheTokenFile) {
  TempDir tmp;
  WriteFile(tmp.Join("tokens"), Line("alice-token", "submitter", "alice", "queued=2 running=1") +
                                    Line("bob-token", "submitter", "bob") +
                                    Line("worker-token", "worker", "w-pool"));
  Served s(WithTokens(tmp.Join("tokens")));
  ASSERT_TRUE(s.status().ok()) << s.status();
  v1::Job a1, a2, a3, b1;
  ASSERT_TRUE(s.Create("alice-token", "a1", &a1).ok());
  ASSERT_TRUE(s.Create("alice-token", "a2", &a2).ok());
  const grpc::Status refused = s.Create("alice-token", "a3", &a3);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("queued=2"), std::string::npos) << refused.error_message();
  EXPECT_EQ(CounterValue(s.registry(), "caldera_quota_refusals_total"), 1);
  ASSERT_TRUE(s.Create("bob-token", "b1", &b1).ok());

  auto workers = v1::WorkerService::NewStub(s.Channel("worker-token"));
  v1::RegisterWorkerRequest reg;
  reg.set_hostname("w");
  v1::RegisterWorkerResponse id;
  ASSERT_TRUE(workers->RegisterWorker(Ctx().get(), reg, &id).ok());
  auto lease = [&] {
    v1::LeaseTaskRequest req;
    req.set_worker_id(id.worker_id());
    v1::LeaseTaskResponse resp;
    EXPECT_TRUE(workers->LeaseTask(Ctx().get(), req, &resp).ok());
    return resp.task().attempt_id();
  };
  EXPECT_EQ(lease().substr(0, a1.name().size() - 5), a1.name().substr(5));  // a1 starts
  // a1 waits for its calibration; a2 waits for alice's running quota; b1 runs.
  EXPECT_EQ(lease().substr(0, b1.name().size() - 5), b1.name().substr(5));
  v1::GetJobRequest get;
  get.set_name(a2.name());
  v1::Job now;
  ASSERT_TRUE(
      v1::JobService::NewStub(s.Channel("alice-token"))->GetJob(Ctx().get(), get, &now).ok());
  EXPECT_EQ(now.state(), v1::QUEUED);
  EXPECT_NE(now.message().find("running=1"), std::string::npos) << now.message();
  // a1 left the queue when it started: the quota counts QUEUED jobs only.
  EXPECT_TRUE(s.Create("alice-token", "a3", &a3).ok());
  EXPECT_EQ(s.Create("alice-token", "a4", &a3).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(QuotaTest, QuotaFieldsAreCheckedAndConsistentPerName) {
  absl::StatusOr<std::map<std::string, Principal>> ok = ParseTokenFile(
      Line("t1", "submitter", "a", "queued=5") + Line("t2", "viewer", "a", "queued=5"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->at(storage::Sha256Hex("t1")).quota.max_queued, 5);
  EXPECT_EQ(ok->at(storage::Sha256Hex("t1")).quota.max_running, kDefaultMaxRunningJobs);
  for (const std::string& bad :
       {Line("t", "submitter", "a", "queued=0"), Line("t", "submitter", "a", "queued=x"),
        Line("t", "submitter", "a", "jobs=3"), Line("t", "submitter", "a", "running=2000000"),
        Line("t1", "submitter", "a", "queued=5") + Line("t2", "viewer", "a", "queued=6")}) {
    EXPECT_EQ(ParseTokenFile(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace caldera::server
