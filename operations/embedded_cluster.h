// The in-process service that `compress` and `sweep` run their jobs on when no
// coordinator is given (the README's first command: no server to start).
#ifndef CALDERA_OPERATIONS_EMBEDDED_CLUSTER_H_
#define CALDERA_OPERATIONS_EMBEDDED_CLUSTER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "in_process_cluster/in_process_cluster.h"
#include "storage/storage.h"

namespace caldera::backend {
class ComputeBackend;  // core/backend/backend.h
}  // namespace caldera::backend

namespace caldera::operations {

// Starts a coordinator and `workers` (>= 1) workers in this process, with
// short leases and polls suited to one machine. The machine's cores are split
// between the workers: `threads_per_worker` BLAS/search threads each, or
// cores / workers (at least 1) when it is 0. Sets OpenBLAS's thread count for
// the whole process. `device` (may be null; must outlive the cluster): worker
// 0's compute backend.
absl::StatusOr<std::unique_ptr<in_process_cluster::InProcessCluster>> StartEmbeddedCluster(
    const storage::StorageOptions& storage, int workers, int threads_per_worker,
    backend::ComputeBackend* device = nullptr);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_EMBEDDED_CLUSTER_H_
