#include "worker/worker_metrics.h"

namespace caldera::worker {

WorkerMetrics::WorkerMetrics(const std::string& device)
    : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("caldera_worker_info")
      .Help("This worker's settings as labels (device: cpu or cuda:N); always 1")
      .Register(*registry_)
      .Add({{"device", device}})
      .Set(1);
  tasks_ = &prometheus::BuildCounter()
                .Name("caldera_worker_tasks_total")
                .Help("Tasks this worker ran, by kind and outcome")
                .Register(*registry_);
  duration_ = &prometheus::BuildHistogram()
                   .Name("caldera_worker_task_duration_seconds")
                   .Help("Run time of this worker's tasks, by kind")
                   .Register(*registry_);
  running_ = &prometheus::BuildGauge()
                  .Name("caldera_worker_tasks_running")
                  .Help("Tasks this worker is running now")
                  .Register(*registry_)
                  .Add({});
  busy_ = &prometheus::BuildCounter()
               .Name("caldera_worker_busy_seconds_total")
               .Help("Seconds this worker spent running tasks")
               .Register(*registry_)
               .Add({});
  auto& bytes = prometheus::BuildCounter()
                    .Name("caldera_worker_storage_bytes_total")
                    .Help("Object-storage bytes this worker's tasks moved, by direction")
                    .Register(*registry_);
  read_ = &bytes.Add({{"direction", "read"}});
  written_ = &bytes.Add({{"direction", "written"}});
  for (const char* kind : {"calibrate", "decompose", "finalize"}) {
    for (const char* outcome : {"succeeded", "failed", "cancelled", "rejected"}) {
      tasks_->Add({{"kind", kind}, {"outcome", outcome}});
    }
    duration_->Add({{"kind", kind}}, prometheus::Histogram::BucketBoundaries{
                                         0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800});
  }
}

void WorkerMetrics::TaskEnded(const std::string& kind, const std::string& outcome, double seconds,
                              double bytes_read, double bytes_written) {
  running_->Decrement();
  tasks_->Add({{"kind", kind}, {"outcome", outcome}}).Increment();
  duration_
      ->Add({{"kind", kind}}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.5, 1, 2, 5,
                                                                      10, 30, 60, 300, 1800})
      .Observe(seconds);
  busy_->Increment(seconds);
  read_->Increment(bytes_read);
  written_->Increment(bytes_written);
}

}  // namespace caldera::worker
