#include "tests/support/s3_server.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/support/fixtures.h"

namespace caldera::testing {

absl::StatusOr<S3TestServer> S3TestServer::Start() {
  absl::StatusOr<Subprocess> p =
      Subprocess::Start({PythonPath(), SourcePath("tests/tools/s3_server.py")});
  if (!p.ok()) return p.status();
  absl::StatusOr<std::string> line = p->ReadLine(std::chrono::seconds(60));
  if (!line.ok()) {
    return absl::UnavailableError(
        absl::StrCat("S3 test server did not start (", line.status().message(),
                     "); run scripts/setup.sh to create .venv with moto"));
  }
  nlohmann::json j = nlohmann::json::parse(*line, nullptr, false);
  if (j.is_discarded()) return absl::InternalError("S3 test server printed: " + *line);
  S3TestServer s;
  s.process_ = *std::move(p);
  s.endpoint_ = j["endpoint"];
  s.access_key_ = j["access_key"];
  s.secret_key_ = j["secret_key"];
  s.bucket_ = j["bucket"];
  return s;
}

absl::StatusOr<FaultProxy> FaultProxy::Start(const std::string& upstream) {
  absl::StatusOr<Subprocess> p = Subprocess::Start(
      {PythonPath(), SourcePath("tests/tools/fault_proxy.py"), "--upstream", upstream});
  if (!p.ok()) return p.status();
  absl::StatusOr<std::string> line = p->ReadLine(std::chrono::seconds(30));
  if (!line.ok()) return line.status();
  nlohmann::json j = nlohmann::json::parse(*line, nullptr, false);
  if (j.is_discarded()) return absl::InternalError("fault proxy printed: " + *line);
  FaultProxy f;
  f.process_ = *std::move(p);
  f.endpoint_ = j["endpoint"];
  return f;
}

bool FaultProxy::InjectFaults(int count, int status) const {
  return RunCommand(absl::StrCat("curl -sf -X POST '", endpoint_, "/__fault?count=", count,
                                 "&status=", status, "' >/dev/null")) == 0;
}

int FaultProxy::RequestsSeen() const {
  std::string out;
  if (RunCommand(absl::StrCat("curl -sf '", endpoint_, "/__stats'"), &out) != 0) return -1;
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  return j.is_discarded() ? -1 : j["requests"].get<int>();
}

}  // namespace caldera::testing
