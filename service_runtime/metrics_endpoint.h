// MetricsEndpoint: serves a prometheus-cpp registry as Prometheus text on
// http://ADDR/metrics (--metrics-listen of caldera-coordinator and
// caldera-worker). Wraps prometheus::Exposer, whose constructor throws, so
// callers get a Status instead.
#ifndef CALDERA_SERVICE_RUNTIME_METRICS_ENDPOINT_H_
#define CALDERA_SERVICE_RUNTIME_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace caldera::service_runtime {

class MetricsEndpoint {
 public:
  // `address` is host:port ("127.0.0.1:9100"; port 0 picks a free one).
  // INVALID_ARGUMENT naming the address when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const { return port_; }

 private:
  MetricsEndpoint() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace caldera::service_runtime

#endif  // CALDERA_SERVICE_RUNTIME_METRICS_ENDPOINT_H_
