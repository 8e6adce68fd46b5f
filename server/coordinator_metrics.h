// The coordinator's Prometheus metrics (names in base units, no job ids as
// labels). Gauges of jobs/tasks by state are recomputed by the coordinator
// after each change; counters and histograms are bumped where events happen.
// Thread-safe (prometheus-cpp metrics are).
#ifndef CALDERA_SERVER_COORDINATOR_METRICS_H_
#define CALDERA_SERVER_COORDINATOR_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>

#include "caldera/v1/jobs.pb.h"

namespace caldera::server {

class CoordinatorMetrics {
 public:
  CoordinatorMetrics();
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Gauges: set every label combination (zeros included).
  void SetJobs(v1::JobState state, double n);
  void SetTasks(v1::TaskKind kind, v1::TaskState state, double n);
  void SetQueueDepth(double n) { queue_depth_->Set(n); }
  void SetWorkersConnected(double n) { workers_->Set(n); }

  void TaskCommitted(v1::TaskKind kind, double seconds);
  void TaskRetried() { retries_->Increment(); }
  void LeaseExpired() { lease_expiries_->Increment(); }
  void StaleResultRejected() { stale_->Increment(); }
  void MatrixError(double weighted_relative_error) {
    matrix_error_->Observe(weighted_relative_error);
  }
  void WorkerIo(double read, double written, double busy_seconds);
  void TokenFileReloadFailed() { reload_failures_->Increment(); }
  void QuotaRefused() { quota_refusals_->Increment(); }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::map<int, prometheus::Gauge*> jobs_;
  std::map<std::pair<int, int>, prometheus::Gauge*> tasks_;
  std::map<int, prometheus::Histogram*> duration_;
  std::map<int, prometheus::Counter*> commits_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* workers_;
  prometheus::Counter* retries_;
  prometheus::Counter* lease_expiries_;
  prometheus::Counter* stale_;
  prometheus::Histogram* matrix_error_;
  prometheus::Counter* bytes_read_;
  prometheus::Counter* bytes_written_;
  prometheus::Counter* busy_;
  prometheus::Counter* reload_failures_;
  prometheus::Counter* quota_refusals_;
};

// Lower-case label values: "queued", "decompose", "leased".
std::string JobStateLabel(v1::JobState state);
std::string TaskKindLabel(v1::TaskKind kind);
std::string TaskStateLabel(v1::TaskState state);

}  // namespace caldera::server

#endif  // CALDERA_SERVER_COORDINATOR_METRICS_H_
