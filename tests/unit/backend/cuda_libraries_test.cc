// The dlopen loader of the CUDA libraries (core/backend/cuda/cuda_libraries.h):
// a missing library or symbol is a Status naming it and the fix, and the
// libraries loaded this way leave the civetweb metrics endpoint working in
// the same process (linked, they broke it: cuda_libraries.h says why). No GPU
// needed: loading cuBLAS does not touch a device.
#include "core/backend/cuda/cuda_libraries.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "service_runtime/metrics_endpoint.h"

namespace caldera::cuda {
namespace {

TEST(CudaLibrariesTest, MissingLibraryNamesItAndTheFix) {
  if (absl::StatusOr<std::unique_ptr<CudaLibraries>> rt = CudaLibraries::Load(false); !rt.ok()) {
    GTEST_SKIP() << "skipped: no CUDA runtime installed here: " << rt.status();
  }
  LibraryNames names = DefaultLibraryNames();
  names.cublas = "libcublas_caldera_does_not_exist.so.99";
  absl::StatusOr<std::unique_ptr<CudaLibraries>> libs = CudaLibraries::Load(true, names);
  ASSERT_FALSE(libs.ok());
  EXPECT_EQ(libs.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(libs.status().message());
  EXPECT_NE(msg.find("cuBLAS"), std::string::npos) << msg;
  EXPECT_NE(msg.find("libcublas_caldera_does_not_exist.so.99"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--device cpu"), std::string::npos) << msg;
}

TEST(CudaLibrariesTest, MissingRuntimeNamesIt) {
  LibraryNames names = DefaultLibraryNames();
  names.cudart = "libcudart_caldera_does_not_exist.so.99";
  absl::StatusOr<std::unique_ptr<CudaLibraries>> libs = CudaLibraries::Load(false, names);
  ASSERT_FALSE(libs.ok());
  EXPECT_EQ(libs.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(libs.status().message().find("libcudart_caldera_does_not_exist.so.99"),
            std::string::npos)
      << libs.status();
}

TEST(CudaLibrariesTest, MissingSymbolNamesItAndTheLibrary) {
  absl::StatusOr<SharedLibrary> libc = SharedLibrary::Open("libc.so.6", "", "the C library");
  ASSERT_TRUE(libc.ok()) << libc.status();
  absl::StatusOr<void*> p = libc->Symbol("cublasCalderaNoSuchFunction");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(p.status().message().find("cublasCalderaNoSuchFunction"), std::string::npos);
  EXPECT_NE(p.status().message().find("libc.so.6"), std::string::npos);
  EXPECT_TRUE(libc->Symbol("malloc").ok());
}

// GET /metrics on 127.0.0.1:port; the whole answer ("" when the connection
// failed or was closed without one).
std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;)
        out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

// Regression test of the civetweb problem: with the runtime, cuBLAS and
// cuSOLVER loaded (and kept loaded) through the dlopen tables, the metrics
// endpoint starts and answers. Linking libcublas into this binary again
// makes the endpoint fail to start ("null context when constructing
// CivetServer").
TEST(CudaLibrariesTest, DlopenedMathLibrariesLeaveTheMetricsEndpointWorking) {
  absl::StatusOr<std::unique_ptr<CudaLibraries>> libs = CudaLibraries::Load(true);
  if (!libs.ok())
    GTEST_SKIP() << "skipped: the CUDA libraries are not installed: " << libs.status();
  ASSERT_TRUE((*libs)->has_math());
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("caldera_test_total").Help("test").Register(*registry).Add({});
  absl::StatusOr<std::unique_ptr<service_runtime::MetricsEndpoint>> e =
      service_runtime::MetricsEndpoint::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(e.ok()) << e.status();
  for (int i = 0; i < 3; ++i) {
    const std::string answer = Scrape((*e)->port());
    EXPECT_NE(answer.find("200 OK"), std::string::npos) << "scrape " << i << ": " << answer;
    EXPECT_NE(answer.find("caldera_test_total"), std::string::npos) << answer;
  }
}

}  // namespace
}  // namespace caldera::cuda
