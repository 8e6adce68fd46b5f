// A worker's Prometheus metrics (caldera_worker_*): tasks by kind and outcome,
// run time by kind, busy seconds, object-storage bytes, tasks in progress,
// and caldera_worker_info{device} = 1.
// Thread-safe.
#ifndef CALDERA_WORKER_WORKER_METRICS_H_
#define CALDERA_WORKER_WORKER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace caldera::worker {

class WorkerMetrics {
 public:
  // `device`: where tasks run ("cpu", "cuda:0"), the label of
  // caldera_worker_info (value 1).
  explicit WorkerMetrics(const std::string& device = "cpu");
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  void TaskStarted() { running_->Increment(); }
  // kind: calibrate | decompose | finalize; outcome: succeeded | failed |
  // cancelled | rejected.
  void TaskEnded(const std::string& kind, const std::string& outcome, double seconds,
                 double bytes_read, double bytes_written);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* tasks_;
  prometheus::Family<prometheus::Histogram>* duration_;
  prometheus::Gauge* running_;
  prometheus::Counter* busy_;
  prometheus::Counter* read_;
  prometheus::Counter* written_;
};

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_WORKER_METRICS_H_
