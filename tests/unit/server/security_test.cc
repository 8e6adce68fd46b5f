// The coordinator's security (issue 18, parts 1-2): bearer tokens and roles,
// job owners, worker identities, the token file's reload, the loopback rule,
// TLS and mutual TLS with certificates made by tests/tools/make_test_certs.sh.
// Each test names the check it guards; removing that check fails it.
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "caldera/v1/jobs.grpc.pb.h"
#include "caldera/v1/worker.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "server/coordinator_server.h"
#include "server/state_store.h"
#include "server/token_file.h"
#include "service_runtime/grpc_security.h"
#include "storage/sha256.h"
#include "tests/support/fixtures.h"
#include "tests/unit/server/job_requests.h"

namespace caldera::server {
namespace {

using testing::TempDir;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string Line(const std::string& token, const std::string& role, const std::string& name) {
  return storage::Sha256Hex(token) + "  " + role + "  " + name + "\n";
}

// The tokens of the tests: one per role, two submitters, two workers.
std::string StandardTokens() {
  return "# test tokens\n" + Line("viewer-token", "viewer", "vera") +
         Line("alice-token", "submitter", "alice") + Line("bob-token", "submitter", "bob") +
         Line("admin-token", "admin", "root") + Line("worker-token", "worker", "w-pool-a") +
         Line("worker2-token", "worker", "w-pool-b");
}

// A coordinator with its gRPC server on 127.0.0.1 (port picked), secured per `security`.
class Served {
 public:
  explicit Served(ServerSecurity security, std::string listen = "127.0.0.1:0") {
    CoordinatorOptions o;
    o.data_dir = tmp_.Join("state");
    absl::StatusOr<std::unique_ptr<Coordinator>> c = Coordinator::Open(o, nullptr);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return;
    coordinator_ = *std::move(c);
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> s =
        CoordinatorServer::Start(coordinator_.get(), listen, security);
    status_ = s.status();
    if (s.ok()) server_ = *std::move(s);
  }
  const absl::Status& status() const { return status_; }
  std::string target() const { return absl::StrCat("localhost:", server_->port()); }
  std::string Out(const std::string& name) const { return tmp_.Join(name); }

  std::shared_ptr<grpc::Channel> Channel(service_runtime::ClientSecurity security) const {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> ch =
        service_runtime::OpenChannel(target(), security);
    EXPECT_TRUE(ch.ok()) << ch.status();
    return *ch;
  }
  std::unique_ptr<v1::JobService::Stub> Jobs(const std::string& token) const {
    service_runtime::ClientSecurity s;
    s.token = token;
    return v1::JobService::NewStub(Channel(s));
  }
  std::unique_ptr<v1::WorkerService::Stub> Workers(const std::string& token) const {
    service_runtime::ClientSecurity s;
    s.token = token;
    return v1::WorkerService::NewStub(Channel(s));
  }

 private:
  TempDir tmp_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServer> server_;
  absl::Status status_;
};

ServerSecurity WithTokens(const std::string& token_file) {
  ServerSecurity s;
  s.auth.token_file = token_file;
  return s;
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return ctx;
}

grpc::Status Create(v1::JobService::Stub* stub, const v1::CreateJobRequest& req, v1::Job* job) {
  return stub->CreateJob(Ctx().get(), req, job);
}
grpc::Status Get(v1::JobService::Stub* stub, const std::string& name, v1::Job* job = nullptr) {
  v1::GetJobRequest req;
  req.set_name(name);
  v1::Job ignored;
  return stub->GetJob(Ctx().get(), req, job != nullptr ? job : &ignored);
}
grpc::Status Cancel(v1::JobService::Stub* stub, const std::string& name) {
  v1::CancelJobRequest req;
  req.set_name(name);
  v1::Job ignored;
  return stub->CancelJob(Ctx().get(), req, &ignored);
}
grpc::Status List(v1::JobService::Stub* stub, v1::ListJobsResponse* out) {
  return stub->ListJobs(Ctx().get(), v1::ListJobsRequest(), out);
}
// The first event of a watch (or the error that ended it).
grpc::Status WatchFirst(v1::JobService::Stub* stub, const std::string& name) {
  auto ctx = Ctx();
  v1::WatchJobRequest req;
  req.set_name(name);
  auto reader = stub->WatchJob(ctx.get(), req);
  v1::JobEvent event;
  if (reader->Read(&event)) {
    ctx->TryCancel();
    return grpc::Status::OK;
  }
  return reader->Finish();
}
grpc::Status Register(v1::WorkerService::Stub* stub, std::string* worker_id = nullptr) {
  v1::RegisterWorkerRequest req;
  req.set_hostname("test");
  req.set_slots(1);
  v1::RegisterWorkerResponse resp;
  grpc::Status s = stub->RegisterWorker(Ctx().get(), req, &resp);
  if (worker_id != nullptr) *worker_id = resp.worker_id();
  return s;
}
grpc::Status Lease(v1::WorkerService::Stub* stub, const std::string& worker_id,
                   v1::LeaseTaskResponse* out = nullptr) {
  v1::LeaseTaskRequest req;
  req.set_worker_id(worker_id);
  req.set_wait_seconds(0);
  v1::LeaseTaskResponse ignored;
  return stub->LeaseTask(Ctx().get(), req, out != nullptr ? out : &ignored);
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteFile(tokens_.Join("tokens"), StandardTokens()); }
  std::string TokenPath() const { return tokens_.Join("tokens"); }
  TempDir tokens_;
};

// Authorizer::Authenticate: no token or an unknown one is UNAUTHENTICATED.
TEST_F(SecurityTest, CallsWithoutAKnownTokenAreUnauthenticated) {
  Served s(WithTokens(TokenPath()));
  ASSERT_TRUE(s.status().ok()) << s.status();
  for (const std::string& token : {std::string(), std::string("not-a-token")}) {
    v1::ListJobsResponse list;
    EXPECT_EQ(List(s.Jobs(token).get(), &list).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Get(s.Jobs(token).get(), "jobs/j-000000000000").error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    v1::Job job;
    EXPECT_EQ(Create(s.Jobs(token).get(), SmallJobRequest(s.Out("o")), &job).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Register(s.Workers(token).get()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Lease(s.Workers(token).get(), "w").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
}

// Authorizer::ForJobs: a viewer reads every job but neither creates nor cancels.
TEST_F(SecurityTest, ViewerReadsButMayNotCreateOrCancel) {
  Served s(WithTokens(TokenPath()));
  ASSERT_TRUE(s.status().ok()) << s.status();
  v1::Job job;
  ASSERT_TRUE(Create(s.Jobs("alice-token").get(), SmallJobRequest(s.Out("a")), &job).ok());
  auto viewer = s.Jobs("viewer-token");
  EXPECT_TRUE(Get(viewer.get(), job.name()).ok());
  EXPECT_TRUE(WatchFirst(viewer.get(), job.name()).ok());
  v1::ListJobsResponse list;
  ASSERT_TRUE(List(viewer.get(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 1);
  EXPECT_EQ(Cancel(viewer.get(), job.name()).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::Job other;
  EXPECT_EQ(Create(viewer.get(), SmallJobRequest(s.Out("v")), &other).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(job.owner(), "alice");
}

// JobServiceImpl::VisibleJob and ListJobs' owner filter: a submitter sees and
// cancels only its own jobs; another's job is NOT_FOUND, as a missing one.
TEST_F(SecurityTest, SubmitterSeesAndCancelsOnlyItsOwnJobs) {
  Served s(WithTokens(TokenPath()));
  ASSERT_TRUE(s.status().ok()) << s.status();
  auto alice = s.Jobs("alice-token");
  auto bob = s.Jobs("bob-token");
  v1::Job a, b;
  ASSERT_TRUE(Create(alice.get(), SmallJobRequest(s.Out("a")), &a).ok());
  ASSERT_TRUE(Create(bob.get(), SmallJobRequest(s.Out("b")), &b).ok());
  EXPECT_EQ(Get(bob.get(), a.name()).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(WatchFirst(bob.get(), a.name()).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Cancel(bob.get(), a.name()).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListJobsResponse list;
  ASSERT_TRUE(List(bob.get(), &list).ok());
  ASSERT_EQ(list.jobs_size(), 1);
  EXPECT_EQ(list.jobs(0).name(), b.name());
  // Alice's job is still running; she may cancel it, and the admin sees both.
  v1::Job after;
  ASSERT_TRUE(Get(alice.get(), a.name(), &after).ok());
  EXPECT_NE(after.state(), v1::CANCELLED);
  EXPECT_TRUE(Cancel(alice.get(), a.name()).ok());
  auto admin = s.Jobs("admin-token");
  ASSERT_TRUE(List(admin.get(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 2);
  EXPECT_TRUE(Cancel(admin.get(), b.name()).ok());
}

// Coordinator::CreateJob matches request ids per owner.
TEST_F(SecurityTest, RequestIdsAreScopedToTheOwner) {
  Served s(WithTokens(TokenPath()));
  ASSERT_TRUE(s.status().ok()) << s.status();
  v1::Job a, a2, b;
  ASSERT_TRUE(Create(s.Jobs("alice-token").get(), SmallJobRequest(s.Out("a"), "run-1"), &a).ok());
  ASSERT_TRUE(Create(s.Jobs("alice-token").get(), SmallJobRequest(s.Out("a"), "run-1"), &a2).ok());
  EXPECT_EQ(a.name(), a2.name());
  // Bob's "run-1" is another job, even with another spec (not ALREADY_EXISTS).
  ASSERT_TRUE(Create(s.Jobs("bob-token").get(), SmallJobRequest(s.Out("b"), "run-1"), &b).ok());
  EXPECT_NE(b.name(), a.name());
  EXPECT_EQ(b.owner(), "bob");
}

// Authorizer::ForWorkerProtocol and ForJobs: only workers (and admins) use the
// worker protocol; workers may not use the job API.
TEST_F(SecurityTest, OnlyWorkersUseTheWorkerProtocol) {
  Served s(WithTokens(TokenPath()));
  ASSERT_TRUE(s.status().ok()) << s.status();
  v1::Job job;
  ASSERT_TRUE(Create(s.Jobs("alice-token").get(), SmallJobRequest(s.Out("a")), &job).ok());
  for (const char* token : {"viewer-token", "alice-token"}) {
    EXPECT_EQ(Register(s.Workers(token).get()).error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << token;
    v1::LeaseTaskResponse lease;
    EXPECT_EQ(Lease(s.Workers(token).get(), "w-1", &lease).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << token;
    EXPECT_FALSE(lease.has_task());
  }
  auto jobs_as_worker = s.Jobs("worker-token");
  v1::Job other;
  EXPECT_EQ(Create(jobs_as_worker.get(), SmallJobRequest(s.Out("w")), &other).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Get(jobs_as_worker.get(), job.name()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A worker registers and leases.
  std::string id;
  auto worker = s.Workers("worker-token");
  ASSERT_TRUE(Register(worker.get(), &id).ok());
  v1::LeaseTaskResponse lease;
  ASSERT_TRUE(Lease(worker.get(), id, &lease).ok());
  EXPECT_TRUE(lease.has_task());
}

// WorkerServiceImpl::CheckCaller: a worker id belongs to the identity that
// registered it; another worker token cannot lease, heartbeat, complete or
// fail under it.
TEST_F(SecurityTest, AWorkerCannotActUnderAnotherWorkersId) {
  Served s(WithTokens(TokenPath()));
  ASSERT_TRUE(s.status().ok()) << s.status();
  v1::Job job;
  ASSERT_TRUE(Create(s.Jobs("alice-token").get(), SmallJobRequest(s.Out("a")), &job).ok());
  std::string id;
  auto owner = s.Workers("worker-token");
  ASSERT_TRUE(Register(owner.get(), &id).ok());
  v1::LeaseTaskResponse lease;
  ASSERT_TRUE(Lease(owner.get(), id, &lease).ok());
  ASSERT_TRUE(lease.has_task());
  auto thief = s.Workers("worker2-token");
  EXPECT_EQ(Lease(thief.get(), id).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::FailTaskRequest fail;
  fail.set_worker_id(id);
  fail.set_attempt_id(lease.task().attempt_id());
  fail.set_retryable(false);
  v1::FailTaskResponse fail_resp;
  EXPECT_EQ(thief->FailTask(Ctx().get(), fail, &fail_resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Under its own id the thief does not hold the lease: the coordinator ignores it.
  std::string thief_id;
  ASSERT_TRUE(Register(thief.get(), &thief_id).ok());
  fail.set_worker_id(thief_id);
  EXPECT_TRUE(thief->FailTask(Ctx().get(), fail, &fail_resp).ok());
  v1::HeartbeatRequest hb;
  hb.set_worker_id(thief_id);
  hb.set_attempt_id(lease.task().attempt_id());
  v1::HeartbeatResponse hb_resp;
  ASSERT_TRUE(thief->Heartbeat(Ctx().get(), hb, &hb_resp).ok());
  EXPECT_TRUE(hb_resp.lease_lost());
  v1::Job now;
  ASSERT_TRUE(Get(s.Jobs("admin-token").get(), job.name(), &now).ok());
  EXPECT_EQ(now.state(), v1::RUNNING) << now.error();
  // The holder's heartbeat still counts.
  hb.set_worker_id(id);
  ASSERT_TRUE(owner->Heartbeat(Ctx().get(), hb, &hb_resp).ok());
  EXPECT_FALSE(hb_resp.lease_lost());
}

// TokenFile::Lookup re-reads a changed file: a new token works and a removed
// one stops working, without a restart; a broken edit keeps the last tokens.
TEST_F(SecurityTest, TheTokenFileIsReloadedWhenItChanges) {
  Served s(WithTokens(TokenPath()));
  ASSERT_TRUE(s.status().ok()) << s.status();
  v1::ListJobsResponse list;
  EXPECT_EQ(List(s.Jobs("carol-token").get(), &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  WriteFile(TokenPath(), Line("carol-token", "viewer", "carol"));  // vera's token is gone
  EXPECT_TRUE(List(s.Jobs("carol-token").get(), &list).ok());
  EXPECT_EQ(List(s.Jobs("viewer-token").get(), &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  WriteFile(TokenPath(), "not a token line at all\n");
  EXPECT_TRUE(List(s.Jobs("carol-token").get(), &list).ok());
}

TEST(TokenFileTest, ParsesLinesAndNamesTheBrokenOne) {
  absl::StatusOr<std::map<std::string, Principal>> ok =
      ParseTokenFile("# comment\n\n" + Line("t1", "admin", "a@b.c") + Line("t2", "worker", "w"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ(ok->at(storage::Sha256Hex("t1")).role, Role::kAdmin);
  EXPECT_EQ(ok->at(storage::Sha256Hex("t2")).name, "w");
  for (const std::string& bad :
       {std::string("secret-token admin a\n"), Line("t", "root", "a"), Line("t", "admin", "a b"),
        Line("t", "admin", "a") + Line("t", "viewer", "b"), Line("t", "admin", "a/b")}) {
    absl::StatusOr<std::map<std::string, Principal>> r = ParseTokenFile("\n" + bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(bad.size() > 100 ? "line 3" : "line 2"), std::string::npos)
        << r.status();
    EXPECT_EQ(r.status().message().find("secret-token"), std::string::npos) << r.status();
  }
}

TEST(LoopbackTest, OnlyLocalAddressesAreLoopback) {
  for (const char* yes : {"127.0.0.1:50051", "localhost:1", "[::1]:50051", "127.1.2.3:0",
                          "unix:/tmp/sock", "LOCALHOST:5"}) {
    EXPECT_TRUE(service_runtime::IsLoopbackAddress(yes)) << yes;
  }
  for (const char* no : {"0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.1:50051",
                         "coordinator:50051", "127.0.0.1.example.com:1", "[::ffff:1]:1"}) {
    EXPECT_FALSE(service_runtime::IsLoopbackAddress(no)) << no;
  }
}

// CoordinatorServer::Start: plaintext or no tokens off loopback needs --insecure.
TEST_F(SecurityTest, NonLoopbackWithoutTlsOrTokensNeedsInsecure) {
  {
    Served s(ServerSecurity(), "0.0.0.0:0");
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find("--insecure"), std::string::npos) << s.status();
  }
  {
    Served s(WithTokens(TokenPath()), "0.0.0.0:0");  // tokens but plaintext
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  }
  {
    ServerSecurity insecure;
    insecure.insecure = true;
    Served s(insecure, "0.0.0.0:0");
    EXPECT_TRUE(s.status().ok()) << s.status();
  }
  {
    Served s(ServerSecurity(), "127.0.0.1:0");  // local mode on loopback
    ASSERT_TRUE(s.status().ok()) << s.status();
    v1::ListJobsResponse list;
    EXPECT_TRUE(List(s.Jobs("").get(), &list).ok());
  }
}

// A database from before jobs had owners opens (StateStore::MigrateJobOwner).
TEST(StateStoreMigrationTest, OldDatabasesGainTheOwnerColumn) {
  TempDir tmp;
  const std::string db_path = tmp.Join("coordinator.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE jobs(id TEXT PRIMARY KEY, seq INTEGER NOT NULL, request_id "
                         "TEXT NOT NULL, spec BLOB NOT NULL, state INTEGER NOT NULL, error TEXT "
                         "NOT NULL, create_time REAL NOT NULL, update_time REAL NOT NULL, "
                         "start_time REAL NOT NULL, end_time REAL NOT NULL);"
                         "INSERT INTO jobs VALUES ('j-old', 1, 'r', x'', 3, '', 1, 2, 1, 2);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open(tmp.path());
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<JobRecord> jobs;
  ASSERT_TRUE((*store)->LoadJobs(&jobs).ok());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].owner, "");
  JobRecord j = jobs[0];
  j.id = "j-new";
  j.owner = "alice";
  ASSERT_TRUE((*store)->PutJob(j).ok());
  jobs.clear();
  ASSERT_TRUE((*store)->LoadJobs(&jobs).ok());
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[1].owner, "alice");
}

// ---- TLS -------------------------------------------------------------------

class TlsTest : public SecurityTest {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    const std::string cmd =
        absl::StrCat("bash ", MAKE_TEST_CERTS, " ", certs_->path(), " >/dev/null 2>&1");
    made_ = std::system(cmd.c_str()) == 0;
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  void SetUp() override {
    SecurityTest::SetUp();
    ASSERT_TRUE(made_) << "tests/tools/make_test_certs.sh failed (is `openssl` installed?)";
  }
  static std::string Cert(const std::string& name) { return certs_->Join(name); }
  ServerSecurity Tls(const std::string& server = "server", bool mtls = false) const {
    ServerSecurity s = WithTokens(TokenPath());
    s.tls.tls_cert = Cert(server + ".pem");
    s.tls.tls_key = Cert(server + ".key");
    if (mtls) s.tls.client_ca = Cert("ca.pem");
    return s;
  }
  static grpc::Status ListOver(const Served& s, service_runtime::ClientSecurity c) {
    c.token = "viewer-token";
    auto stub = v1::JobService::NewStub(s.Channel(c));
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListJobsResponse list;
    return stub->ListJobs(ctx.get(), v1::ListJobsRequest(), &list);
  }

  static TempDir* certs_;
  static bool made_;
};
TempDir* TlsTest::certs_ = nullptr;
bool TlsTest::made_ = false;

TEST_F(TlsTest, AGoodCertificateWorksAndPlaintextDoesNot) {
  Served s(Tls());
  ASSERT_TRUE(s.status().ok()) << s.status();
  service_runtime::ClientSecurity c;
  c.tls_ca = Cert("ca.pem");
  EXPECT_TRUE(ListOver(s, c).ok());
  EXPECT_EQ(ListOver(s, service_runtime::ClientSecurity()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ACertificateFromAnotherCaIsRefused) {
  Served s(Tls("wrong-server"));
  ASSERT_TRUE(s.status().ok()) << s.status();
  service_runtime::ClientSecurity c;
  c.tls_ca = Cert("ca.pem");
  EXPECT_EQ(ListOver(s, c).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, AnExpiredCertificateIsRefused) {
  Served s(Tls("expired-server"));
  ASSERT_TRUE(s.status().ok()) << s.status();
  service_runtime::ClientSecurity c;
  c.tls_ca = Cert("ca.pem");
  EXPECT_EQ(ListOver(s, c).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Authorizer::ForWorkerProtocol with --client-ca: workers need a client
// certificate from the CA; clients of the job API do not.
TEST_F(TlsTest, MutualTlsWorkersNeedAClientCertificate) {
  Served s(Tls("server", /*mtls=*/true));
  ASSERT_TRUE(s.status().ok()) << s.status();
  service_runtime::ClientSecurity plain;
  plain.tls_ca = Cert("ca.pem");
  EXPECT_TRUE(ListOver(s, plain).ok());
  plain.token = "worker-token";
  EXPECT_EQ(Register(v1::WorkerService::NewStub(s.Channel(plain)).get()).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  service_runtime::ClientSecurity mtls = plain;
  mtls.tls_cert = Cert("client.pem");
  mtls.tls_key = Cert("client.key");
  EXPECT_TRUE(Register(v1::WorkerService::NewStub(s.Channel(mtls)).get()).ok());
  service_runtime::ClientSecurity wrong = plain;
  wrong.tls_cert = Cert("wrong-client.pem");
  wrong.tls_key = Cert("wrong-client.key");
  EXPECT_EQ(Register(v1::WorkerService::NewStub(s.Channel(wrong)).get()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace caldera::server
