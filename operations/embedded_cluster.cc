#include "operations/embedded_cluster.h"

#include <algorithm>
#include <thread>

extern "C" void openblas_set_num_threads(int num_threads);

namespace caldera::operations {

absl::StatusOr<std::unique_ptr<in_process_cluster::InProcessCluster>> StartEmbeddedCluster(
    const storage::StorageOptions& storage, int workers, int threads_per_worker,
    backend::ComputeBackend* device) {
  workers = std::max(1, workers);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int per_worker = threads_per_worker > 0 ? threads_per_worker : std::max(1, cores / workers);
  openblas_set_num_threads(per_worker);
  in_process_cluster::InProcessClusterOptions co;
  co.lease_seconds = 120;
  co.heartbeat_seconds = 2;
  co.max_attempts = 2;
  co.storage = storage;
  co.workers = workers;
  co.worker_poll_seconds = 0.5;
  co.search_threads = per_worker;
  co.worker0_backend = device;
  return in_process_cluster::InProcessCluster::Start(co);
}

}  // namespace caldera::operations
