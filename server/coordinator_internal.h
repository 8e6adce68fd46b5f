// Helpers shared by the coordinator's files (coordinator*.cc); internal to
// server/.
#ifndef CALDERA_SERVER_COORDINATOR_INTERNAL_H_
#define CALDERA_SERVER_COORDINATOR_INTERNAL_H_

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>

#include "caldera/v1/jobs.pb.h"

namespace caldera::server::internal {

// Unix seconds now (the wall clock: stored times survive restarts).
inline double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline google::protobuf::Timestamp ToTimestamp(double unix_seconds) {
  google::protobuf::Timestamp t;
  const double whole = std::floor(unix_seconds);
  t.set_seconds(static_cast<int64_t>(whole));
  t.set_nanos(static_cast<int32_t>((unix_seconds - whole) * 1e9));
  return t;
}

// Elapsed and estimated remaining seconds of a job, as of now.
inline void SetTimes(double start_time, double end_time, bool terminal, int done, int total,
                     v1::JobProgress* p) {
  double elapsed = 0;
  if (start_time > 0) elapsed = (end_time > 0 ? end_time : Now()) - start_time;
  p->set_elapsed_seconds(elapsed);
  double eta = -1;
  if (terminal) {
    eta = 0;
  } else if (done > 0 && elapsed > 0) {
    eta = elapsed * (total - done) / done;
  }
  p->set_estimated_remaining_seconds(eta);
}

// "j-abc/decompose-0001-q_proj/a2-ff01" -> "j-abc".
inline std::string JobIdOfAttempt(const std::string& attempt_id) {
  return attempt_id.substr(0, attempt_id.find('/'));
}

}  // namespace caldera::server::internal

#endif  // CALDERA_SERVER_COORDINATOR_INTERNAL_H_
