// A real S3-compatible server process (moto, with signature checking) on a
// loopback port for the duration of a test, and a fault-injecting proxy in
// front of it. Both come from tests/tools/ and run under PythonPath().
#ifndef CALDERA_TESTS_SUPPORT_S3_SERVER_H_
#define CALDERA_TESTS_SUPPORT_S3_SERVER_H_

#include <string>

#include "absl/status/statusor.h"
#include "tests/support/subprocess.h"

namespace caldera::testing {

class S3TestServer {
 public:
  // Starts the server and waits (up to 60 s) until it has created its bucket.
  static absl::StatusOr<S3TestServer> Start();

  const std::string& endpoint() const { return endpoint_; }
  const std::string& access_key() const { return access_key_; }
  const std::string& secret_key() const { return secret_key_; }
  const std::string& bucket() const { return bucket_; }

 private:
  Subprocess process_ = Subprocess::Start({"true"}).value();
  std::string endpoint_, access_key_, secret_key_, bucket_;
};

class FaultProxy {
 public:
  static absl::StatusOr<FaultProxy> Start(const std::string& upstream);
  const std::string& endpoint() const { return endpoint_; }
  // Makes the next `count` requests fail with `status`.
  bool InjectFaults(int count, int status) const;
  // Requests seen (forwarded + failed).
  int RequestsSeen() const;

 private:
  Subprocess process_ = Subprocess::Start({"true"}).value();
  std::string endpoint_;
};

}  // namespace caldera::testing

#endif  // CALDERA_TESTS_SUPPORT_S3_SERVER_H_
