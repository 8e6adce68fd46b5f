// InProcessCluster: a coordinator and N workers in this process, talking real
// gRPC — the same planner, scheduler, leases and pipeline steps as
// caldera-coordinator + caldera-worker, so a job's output bytes are the same
// as a distributed run's. Used by `calderactl compress` (a whole job on one
// machine with nothing to start) and by bench/service_bench (a coordinator
// with fake workers on loopback). Clients reach it through channel() with the
// public protos only; they include neither server/ nor worker/.
//
// The state lives in a temporary SQLite directory unless data_dir is given.
// Destruction drains the workers (the task in progress finishes or is
// cancelled with its job) and stops the server. Not copyable; Shutdown() and
// the destructor must be called from one thread.
#ifndef CALDERA_IN_PROCESS_CLUSTER_IN_PROCESS_CLUSTER_H_
#define CALDERA_IN_PROCESS_CLUSTER_IN_PROCESS_CLUSTER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/storage_options.h"

namespace caldera::backend {
class ComputeBackend;  // core/backend/backend.h
}  // namespace caldera::backend

namespace caldera::server {
class Coordinator;
class CoordinatorServer;
}  // namespace caldera::server

namespace caldera::worker {
class WorkerAgent;
}  // namespace caldera::worker

namespace caldera::in_process_cluster {

struct InProcessClusterOptions {
  // Coordinator state directory; empty = a temporary directory removed at the end.
  std::string data_dir;
  // Also serve on this host:port (port 0 picks one); empty = in-process channel only.
  std::string listen;
  double lease_seconds = 30;
  double heartbeat_seconds = 5;
  int max_attempts = 3;
  storage::StorageOptions storage;  // for validation and the workers' I/O
  int workers = 2;                  // in-process workers (0: bring your own)
  double worker_poll_seconds = 0.5;
  int search_threads = 1;  // per worker: threads of a decompose task's codeword searches
  // When set (not owned; must outlive the cluster), worker 0 runs its tasks'
  // dense work on this compute backend (a GPU); a backend serves one thread
  // at a time, so the other workers stay on the CPU.
  backend::ComputeBackend* worker0_backend = nullptr;
};

class InProcessCluster {
 public:
  // Opens the coordinator, starts its server and the workers. FAILED_PRECONDITION
  // when no temporary state directory can be made; errors of the coordinator
  // (bad options, unusable data_dir) or the listen address as they come.
  static absl::StatusOr<std::unique_ptr<InProcessCluster>> Start(InProcessClusterOptions options);
  ~InProcessCluster();
  InProcessCluster(const InProcessCluster&) = delete;
  InProcessCluster& operator=(const InProcessCluster&) = delete;

  // A channel to the coordinator's JobService and WorkerService.
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // The TCP port when options.listen was given, else 0.
  int port() const;

  // Drains the workers (waits for the task in progress of each) and stops the
  // server. Idempotent; the destructor calls it.
  void Shutdown();

 private:
  InProcessCluster() = default;

  std::string temp_dir_;  // removed on destruction when non-empty
  std::unique_ptr<server::Coordinator> coordinator_;
  std::unique_ptr<server::CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::vector<std::unique_ptr<worker::WorkerAgent>> agents_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

}  // namespace caldera::in_process_cluster

#endif  // CALDERA_IN_PROCESS_CLUSTER_IN_PROCESS_CLUSTER_H_
