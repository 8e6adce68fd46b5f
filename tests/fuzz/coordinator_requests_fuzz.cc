// Fuzz target: the coordinator's request handlers in-process (issue 17) -- the
// code behind every JobService and WorkerService RPC, without the network.
//
// One coordinator (SQLite state in a temporary directory, long polls off)
// lives across inputs, as a real one lives across requests. An input is a
// sequence of calls: [op byte][length: 2 bytes, little endian][payload], the
// payload a serialized request proto (or a job name). So that mutations reach
// past "not found", a few placeholders are filled in from the harness' own
// state: an empty spec.model / spec.calibration become a small generated
// model and its tokens (the job then plans and leases real tasks), a job name
// "#k" the k-th job, a worker_id "#" the last registered worker and an
// attempt_id "#" the last leased attempt. So that worker ids and hostnames of
// any size are tried (issue 37: 3 MB ids, 1 MB hostnames), a worker_id or
// hostname "*<k>[c]" becomes 2^(k mod 23) bytes (up to 4 MiB) of the byte c
// ('w' when absent; any byte, control characters included). Every call must
// return (a status or a response) -- no crash, abort, hang or sanitizer
// report -- and a worker id the coordinator hands out is bounded.
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/test_model.h"
#include "server/coordinator.h"
#include "server/worker_table.h"
#include "tests/fuzz/fuzz_input.h"

namespace caldera::fuzz {
namespace {

enum Op : uint8_t {
  kCreateJob,
  kGetJob,
  kListJobs,
  kCancelJob,
  kWaitForChange,
  kRegisterWorker,
  kLeaseTask,
  kHeartbeat,
  kCompleteTask,
  kFailTask,
  kNumOps,
};

struct Harness {
  std::filesystem::path dir;
  std::string model, tokens;
  std::unique_ptr<server::Coordinator> coordinator;
  std::string worker_id, attempt_id;
  int outputs = 0;
};

void RemoveHarness();

Harness& TheHarness() {
  // One per process, alive until exit (RemoveHarness closes it and deletes
  // its directory).
  static Harness& h = *[] {
    // Deliberately never deleted: it must outlive every input, and its
    // coordinator is closed by RemoveHarness at exit.
    auto* made = new Harness;
    std::string templ = (std::filesystem::temp_directory_path() / "coordinator-fuzz-XXXXXX");
    if (mkdtemp(templ.data()) == nullptr) std::abort();
    made->dir = templ;
    made->model = (made->dir / "model").string();
    made->tokens = (made->dir / "tokens.safetensors").string();
    model::TestModelOptions o;
    o.num_layers = 2;
    if (!model::WriteTestModel(o, made->model).ok() ||
        !model::WriteTestTokens(4, 16, o.vocab_size, 1, made->tokens).ok()) {
      std::abort();
    }
    server::CoordinatorOptions co;
    co.data_dir = (made->dir / "state").string();
    co.lease_seconds = 2;
    co.heartbeat_seconds = 1;
    co.max_long_poll_seconds = 0;
    co.retry_delay_seconds = 0.01;  // backed-off tasks, ready again soon
    absl::StatusOr<std::unique_ptr<server::Coordinator>> c = server::Coordinator::Open(co, nullptr);
    if (!c.ok()) std::abort();
    made->coordinator = *std::move(c);
    std::atexit(RemoveHarness);
    return made;
  }();
  return h;
}

void RemoveHarness() {
  Harness& h = TheHarness();
  h.coordinator.reset();
  std::error_code ec;
  std::filesystem::remove_all(h.dir, ec);
}

// "#k" -> the name of the k-th job listed (newest first); else the text.
std::string JobName(Harness& h, const std::string& text) {
  if (text.empty() || text[0] != '#') return text;
  v1::ListJobsRequest req;
  req.set_page_size(50);
  absl::StatusOr<v1::ListJobsResponse> jobs = h.coordinator->ListJobs(req);
  if (!jobs.ok() || jobs->jobs().empty()) return text;
  const size_t k = text.size() > 1 ? static_cast<uint8_t>(text[1]) : 0;
  return jobs->jobs(static_cast<int>(k % jobs->jobs().size())).name();
}

// "*<k>[c]" -> 2^(k mod 23) copies of c; else the text.
std::string Sized(const std::string& text) {
  if (text.size() < 2 || text[0] != '*') return text;
  return std::string(size_t{1} << (static_cast<uint8_t>(text[1]) % 23),
                     text.size() > 2 ? text[2] : 'w');
}

// The worker id of a request: "#" the last registered one, "*k[c]" sized.
std::string WorkerId(const Harness& h, const std::string& id) {
  return id == "#" ? h.worker_id : Sized(id);
}

template <typename Request>
bool Parse(absl::string_view payload, Request* r) {
  return r->ParseFromArray(payload.data(), static_cast<int>(payload.size()));
}

void Call(Harness& h, uint8_t op, absl::string_view payload) {
  server::Coordinator& c = *h.coordinator;
  switch (op % kNumOps) {
    case kCreateJob: {
      v1::CreateJobRequest r;
      if (!Parse(payload, &r)) return;
      if (r.spec().model().empty()) r.mutable_spec()->set_model(h.model);
      if (r.spec().calibration().empty()) r.mutable_spec()->set_calibration(h.tokens);
      if (r.spec().out().empty()) {
        r.mutable_spec()->set_out((h.dir / absl::StrCat("out-", h.outputs++ % 8)).string());
      }
      (void)c.CreateJob(r);
      return;
    }
    case kGetJob:
      (void)c.GetJob(JobName(h, std::string(payload)));
      return;
    case kListJobs: {
      v1::ListJobsRequest r;
      if (Parse(payload, &r)) (void)c.ListJobs(r);
      return;
    }
    case kCancelJob:
      (void)c.CancelJob(JobName(h, std::string(payload)));
      return;
    case kWaitForChange: {
      const int64_t after = payload.empty() ? -1 : static_cast<int8_t>(payload[0]);
      (void)c.WaitForChange(JobName(h, std::string(payload.substr(payload.empty() ? 0 : 1))), after,
                            0);
      return;
    }
    case kRegisterWorker: {
      v1::RegisterWorkerRequest r;
      if (!Parse(payload, &r)) return;
      r.set_hostname(Sized(r.hostname()));
      h.worker_id = c.RegisterWorker(r).worker_id();
      if (!server::IsValidWorkerId(h.worker_id)) std::abort();  // ids handed out are bounded
      return;
    }
    case kLeaseTask: {
      v1::LeaseTaskRequest r;
      if (!Parse(payload, &r)) return;
      r.set_worker_id(WorkerId(h, r.worker_id()));
      // The harness allows no long poll (max_long_poll_seconds 0): any
      // asked wait, NaN and infinities included, must return at once.
      v1::LeaseTaskResponse resp = c.LeaseTask(r);
      if (resp.has_task()) h.attempt_id = resp.task().attempt_id();
      return;
    }
    case kHeartbeat: {
      v1::HeartbeatRequest r;
      if (!Parse(payload, &r)) return;
      r.set_worker_id(WorkerId(h, r.worker_id()));
      if (r.attempt_id() == "#") r.set_attempt_id(h.attempt_id);
      (void)c.Heartbeat(r);
      return;
    }
    case kCompleteTask: {
      v1::CompleteTaskRequest r;
      if (!Parse(payload, &r)) return;
      r.set_worker_id(WorkerId(h, r.worker_id()));
      if (r.attempt_id() == "#") r.set_attempt_id(h.attempt_id);
      (void)c.CompleteTask(r);
      return;
    }
    case kFailTask: {
      v1::FailTaskRequest r;
      if (!Parse(payload, &r)) return;
      r.set_worker_id(WorkerId(h, r.worker_id()));
      if (r.attempt_id() == "#") r.set_attempt_id(h.attempt_id);
      c.FailTask(r);
      return;
    }
    default:
      return;
  }
}

}  // namespace
}  // namespace caldera::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  caldera::fuzz::Harness& h = caldera::fuzz::TheHarness();
  size_t i = 0;
  for (int calls = 0; i + 3 <= size && calls < 32; ++calls) {
    const uint8_t op = data[i];
    size_t len = data[i + 1] | (static_cast<size_t>(data[i + 2]) << 8);
    i += 3;
    len = std::min(len, size - i);
    caldera::fuzz::Call(h, op, caldera::fuzz::Text(data + i, len));
    i += len;
  }
  return 0;
}
