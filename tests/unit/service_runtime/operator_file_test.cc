// Operator files and TLS material (issue 37, cases 1 and 2): a FIFO, a device
// or an oversized file named by a flag is refused at once, naming the flag;
// a key that does not match its certificate and a CA bundle without a
// certificate are refused before gRPC sees them, on the client side too.
#include "service_runtime/operator_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>

#include "gtest/gtest.h"
#include "service_runtime/grpc_security.h"
#include "tests/support/fixtures.h"

namespace caldera::service_runtime {
namespace {

using testing::TempDir;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

void ExpectRefused(const absl::Status& s, const std::string& flag, const std::string& problem) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(flag), std::string::npos) << s;
  EXPECT_NE(s.message().find(problem), std::string::npos) << s;
}

// Opens the FIFO for writing once: a reader blocked in open() returns, so a
// failing test still ends.
void ReleaseFifoReader(const std::string& fifo) {
  const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  if (w >= 0) ::close(w);
}

TEST(OperatorFileTest, RefusesWhatIsNotASmallRegularFile) {
  TempDir tmp;
  ASSERT_EQ(::mkfifo(tmp.Join("fifo").c_str(), 0600), 0);
  ASSERT_EQ(::symlink("/dev/zero", tmp.Join("zero").c_str()), 0);
  WriteFile(tmp.Join("big"), std::string(2048, 'x'));
  WriteFile(tmp.Join("ok"), "hello\n");
  {  // a FIFO must not block: the read runs aside and is released if it does
    auto read = std::async(std::launch::async, [&] {
      return ReadOperatorFile(tmp.Join("fifo"), "--auth-tokens").status();
    });
    const bool returned = read.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
    if (!returned) ReleaseFifoReader(tmp.Join("fifo"));
    ASSERT_TRUE(returned) << "ReadOperatorFile blocked on a FIFO";
    ExpectRefused(read.get(), "--auth-tokens", "not a regular file but a FIFO");
  }
  ExpectRefused(ReadOperatorFile(tmp.Join("zero"), "--tls-cert").status(), "--tls-cert",
                "character device");
  ExpectRefused(ReadOperatorFile(tmp.path(), "--tls-ca").status(), "--tls-ca", "but a directory");
  ExpectRefused(ReadOperatorFile(tmp.Join("missing"), "--config").status(), "--config",
                "cannot be opened");
  ExpectRefused(ReadOperatorFile(tmp.Join("big"), "--config", 1024).status(), "--config",
                "above the limit of 1024 bytes");
  absl::StatusOr<std::string> ok = ReadOperatorFile(tmp.Join("ok"), "--config");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "hello\n");
}

class TlsMaterialTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    made_ =
        std::system(absl::StrCat("bash ", MAKE_TEST_CERTS, " ", certs_->path(), " >/dev/null 2>&1")
                        .c_str()) == 0;
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(made_) << "tests/tools/make_test_certs.sh failed"; }
  static std::string Cert(const std::string& name) { return certs_->Join(name); }

  static TempDir* certs_;
  static bool made_;
};
TempDir* TlsMaterialTest::certs_ = nullptr;
bool TlsMaterialTest::made_ = false;

// OpenChannel (the worker's and calderactl's channel): a mismatched client
// key, a key that is the certificate, a directory or /dev/null as the CA are
// INVALID_ARGUMENT naming the flag (exit 2), not "empty address list" later.
TEST_F(TlsMaterialTest, ClientMaterialIsCheckedBeforeTheChannel) {
  auto open = [](const std::string& ca, const std::string& cert, const std::string& key) {
    ClientSecurity c;
    c.tls_ca = ca;
    c.tls_cert = cert;
    c.tls_key = key;
    return OpenChannel("localhost:1", c).status();
  };
  EXPECT_TRUE(open(Cert("ca.pem"), Cert("client.pem"), Cert("client.key")).ok());
  ExpectRefused(open(Cert("ca.pem"), Cert("client.pem"), Cert("wrong-client.key")), "--tls-key",
                "does not match the certificate in --tls-cert");
  ExpectRefused(open(Cert("ca.pem"), Cert("client.pem"), Cert("client.pem")), "--tls-key",
                "holds no unencrypted PEM private key");
  ExpectRefused(open(Cert("ca.pem"), Cert("client.key"), Cert("client.key")), "--tls-cert",
                "holds no PEM certificate");
  ExpectRefused(open(certs_->path(), "", ""), "--tls-ca", "but a directory");
  ExpectRefused(open("/dev/null", "", ""), "--tls-ca", "character device");
  ExpectRefused(open(Cert("ca.key"), "", ""), "--tls-ca", "holds no PEM certificate");
}

// ServerCredentialsFor: the same checks for the coordinator's own material;
// /dev/zero as the certificate is refused without reading it.
TEST_F(TlsMaterialTest, ServerMaterialIsCheckedBeforeTheServer) {
  auto creds = [](const std::string& cert, const std::string& key, const std::string& ca = "") {
    ServerTls tls;
    tls.tls_cert = cert;
    tls.tls_key = key;
    tls.client_ca = ca;
    return ServerCredentialsFor(tls).status();
  };
  EXPECT_TRUE(creds(Cert("server.pem"), Cert("server.key"), Cert("ca.pem")).ok());
  ExpectRefused(creds(Cert("server.pem"), Cert("wrong-server.key")), "--tls-key", "does not match");
  ExpectRefused(creds(Cert("server.pem"), Cert("server.pem")), "--tls-key", "private key");
  const auto start = std::chrono::steady_clock::now();
  ExpectRefused(creds("/dev/zero", Cert("server.key")), "--tls-cert", "character device");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ExpectRefused(creds(Cert("server.pem"), Cert("server.key"), "/dev/null"), "--client-ca",
                "character device");
}

// ReadTokenFile (--token-file of workers and calderactl): a FIFO does not
// block the process before it starts.
TEST(OperatorFileTest, AClientTokenFileThatIsAFifoIsRefusedAtOnce) {
  TempDir tmp;
  const std::string fifo = tmp.Join("token");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto read = std::async(std::launch::async, [&] { return ReadTokenFile(fifo, "--token-file"); });
  const bool returned = read.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
  if (!returned) ReleaseFifoReader(fifo);  // so the test ends
  ASSERT_TRUE(returned) << "ReadTokenFile blocked on a FIFO";
  ExpectRefused(read.get().status(), "--token-file", "FIFO");
}

}  // namespace
}  // namespace caldera::service_runtime
