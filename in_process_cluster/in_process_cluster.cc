#include "in_process_cluster/in_process_cluster.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/coordinator.h"
#include "server/coordinator_server.h"
#include "worker/worker_agent.h"

namespace caldera::in_process_cluster {
namespace {

// A fresh directory under $TMPDIR (or /tmp); "" when none can be made.
std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/calderactl-compress-XXXXXX";
  return mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
}

}  // namespace

absl::StatusOr<std::unique_ptr<InProcessCluster>> InProcessCluster::Start(
    InProcessClusterOptions options) {
  std::unique_ptr<InProcessCluster> c(new InProcessCluster());
  if (options.data_dir.empty()) {
    c->temp_dir_ = MakeTempDir();
    if (c->temp_dir_.empty()) {
      return absl::FailedPreconditionError(
          "cannot create a temporary state directory; set TMPDIR to a writable directory");
    }
    options.data_dir = c->temp_dir_;
  }
  server::CoordinatorOptions co;
  co.data_dir = options.data_dir;
  co.lease_seconds = options.lease_seconds;
  co.heartbeat_seconds = options.heartbeat_seconds;
  co.max_attempts = options.max_attempts;
  co.storage = options.storage;
  absl::StatusOr<std::unique_ptr<server::Coordinator>> coordinator =
      server::Coordinator::Open(co, nullptr);
  if (!coordinator.ok()) return coordinator.status();
  c->coordinator_ = *std::move(coordinator);
  absl::StatusOr<std::unique_ptr<server::CoordinatorServer>> srv =
      server::CoordinatorServer::Start(c->coordinator_.get(), options.listen);
  if (!srv.ok()) return srv.status();
  c->server_ = *std::move(srv);
  c->channel_ = c->server_->InProcessChannel();
  for (int i = 0; i < options.workers; ++i) {
    worker::WorkerAgentOptions wo;
    wo.hostname = absl::StrCat("embedded-", i);
    wo.storage = options.storage;
    wo.poll_seconds = options.worker_poll_seconds;
    wo.search_threads = options.search_threads;
    if (i == 0 && options.worker0_backend != nullptr) {
      wo.backend = options.worker0_backend;
      wo.device = options.worker0_backend->Name();
    }
    c->agents_.push_back(std::make_unique<worker::WorkerAgent>(c->channel_, wo));
  }
  for (auto& agent : c->agents_) {
    c->threads_.emplace_back([a = agent.get()] { (void)a->Run(); });
  }
  return c;
}

int InProcessCluster::port() const { return server_ == nullptr ? 0 : server_->port(); }

void InProcessCluster::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& agent : agents_) agent->Drain();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  if (server_ != nullptr) server_->Shutdown(1);
}

InProcessCluster::~InProcessCluster() {
  Shutdown();
  agents_.clear();
  server_.reset();
  coordinator_.reset();
  if (!temp_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir_, ec);
  }
}

}  // namespace caldera::in_process_cluster
