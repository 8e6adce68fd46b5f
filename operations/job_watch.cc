#include "operations/job_watch.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "job/job_state.h"
#include "service_runtime/grpc_status.h"
#include "storage/retry.h"

namespace caldera::operations {

absl::StatusOr<v1::Job> WaitForJob(v1::JobService::Stub* stub, const std::string& name,
                                   const std::function<void(const v1::JobEvent&)>& on_event,
                                   double reconnect_seconds) {
  auto unavailable_since = std::chrono::steady_clock::time_point::min();
  storage::RetryPolicy policy;
  policy.base_delay = std::chrono::milliseconds(250);
  policy.max_delay = std::chrono::milliseconds(2000);
  storage::Backoff backoff(policy);
  int failures = 0;
  for (;;) {
    grpc::ClientContext ctx;
    v1::WatchJobRequest req;
    req.set_name(name);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = stub->WatchJob(&ctx, req);
    v1::JobEvent event;
    v1::Job last;
    bool have = false;
    while (reader->Read(&event)) {
      unavailable_since = std::chrono::steady_clock::time_point::min();
      failures = 0;
      if (on_event) on_event(event);
      last = event.job();
      have = true;
    }
    grpc::Status s = reader->Finish();
    if (have && job::IsTerminal(last.state())) return last;
    if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return service_runtime::FromGrpcStatus(s);
    }
    // The coordinator went away (restart?): watch again for a while.
    const auto now = std::chrono::steady_clock::now();
    if (unavailable_since == std::chrono::steady_clock::time_point::min()) unavailable_since = now;
    if (std::chrono::duration<double>(now - unavailable_since).count() > reconnect_seconds) {
      return absl::UnavailableError(
          absl::StrCat("lost the coordinator while watching ", name, " (", s.error_message(),
                       "); the job may still be running: `calderactl watch ", name, "`"));
    }
    std::this_thread::sleep_for(backoff.DelayFor(failures++));
  }
}

std::pair<int64_t, int64_t> TaskTotals(const v1::Job& job) {
  int64_t done = 0, total = 0;
  for (const v1::TaskCounts& c : job.progress().tasks()) {
    done += c.done();
    total += c.total();
  }
  return {done, total};
}

}  // namespace caldera::operations
