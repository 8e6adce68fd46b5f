// WorkerService: the worker protocol (proto/caldera/v1/worker.proto) over a
// Coordinator. Translation, the Authorizer's verdict (only workers and
// admins) and the binding of worker ids to identities: a worker id belongs to
// the identity that registered it (or first used it, after a coordinator
// restart), and calls naming it from another identity are PERMISSION_DENIED.
// The coordinator checks that a lease belongs to the worker id. The logic
// lives in coordinator.h. Worker ids must be IsValidWorkerId (worker_table.h)
// and hostnames at most kMaxRegisteredHostnameBytes (INVALID_ARGUMENT
// otherwise); a binding not used for the coordinator's forget period
// (WorkerTable) is dropped, so the map holds only ids in use.
#ifndef CALDERA_SERVER_WORKER_SERVICE_H_
#define CALDERA_SERVER_WORKER_SERVICE_H_

#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "caldera/v1/worker.grpc.pb.h"
#include "server/authorizer.h"
#include "server/coordinator.h"

namespace caldera::server {

// The longest hostname RegisterWorker accepts (a DNS name is at most 253).
inline constexpr size_t kMaxRegisteredHostnameBytes = 255;

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  // Neither is owned; both must outlive the service.
  WorkerServiceImpl(Coordinator* coordinator, Authorizer* authorizer)
      : coordinator_(coordinator), authorizer_(authorizer) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status LeaseTask(grpc::ServerContext* context, const v1::LeaseTaskRequest* request,
                         v1::LeaseTaskResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status CompleteTask(grpc::ServerContext* context, const v1::CompleteTaskRequest* request,
                            v1::CompleteTaskResponse* response) override;
  grpc::Status FailTask(grpc::ServerContext* context, const v1::FailTaskRequest* request,
                        v1::FailTaskResponse* response) override;

 private:
  // OK when the caller may act as `worker_id` (binding it on first use).
  grpc::Status CheckCaller(const grpc::ServerContext& context, const std::string& worker_id);
  // Binds `worker_id` to `name` (mu_ held) and drops the bindings not used
  // for the forget period once the map has doubled since the last sweep.
  void Bind(const std::string& worker_id, const std::string& name);

  using Clock = std::chrono::steady_clock;
  struct Binding {
    std::string name;  // the principal the id belongs to
    Clock::time_point used;
  };
  Coordinator* coordinator_;  // not owned
  Authorizer* authorizer_;    // not owned
  std::mutex mu_;
  std::map<std::string, Binding> worker_identity_;  // worker id -> principal
  size_t sweep_at_ = 1024;                          // sweep when the map reaches this size
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_WORKER_SERVICE_H_
