// caldera-coordinator: the public gRPC API, the worker protocol, the planner
// and the scheduler, with state in SQLite under --data-dir. SIGTERM/SIGINT:
// health turns NOT_SERVING, RPCs in flight get a few seconds, then exit 0.
// Security flags (--tls-cert/--tls-key, --client-ca, --auth-tokens,
// --insecure, --reflection): docs/security.md.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/format/json_fields.h"
#include "server/coordinator.h"
#include "server/coordinator_metrics.h"
#include "server/coordinator_server.h"
#include "service_runtime/grpc_security.h"
#include "service_runtime/metrics_endpoint.h"
#include "service_runtime/operator_file.h"
#include "service_runtime/signal_watcher.h"
#include "storage/allowed_roots.h"
#include "storage/storage_options.h"

namespace {

struct Flags {
  std::string listen = "127.0.0.1:50051";
  std::string data_dir;
  std::string metrics_listen;
  std::string config;
  double lease_seconds = 30;
  double heartbeat_seconds = 5;
  int max_attempts = 3;
  double retry_delay_seconds = 5;
  std::vector<std::string> allow_roots;  // --allow-root (storage/allowed_roots.h)
  caldera::server::ServerSecurity security;
  int64_t max_task_memory = 0;  // bytes; 0 = no limit
};

// Values from --config (JSON) for flags not given on the command line.
bool ApplyConfig(const CLI::App& app, Flags* f) {
  if (f->config.empty()) return true;
  // A regular file of at most 1 MiB (a FIFO or /dev/zero is refused, not read).
  absl::StatusOr<std::string> text =
      caldera::service_runtime::ReadOperatorFile(f->config, "--config");
  if (!text.ok()) {
    std::fprintf(stderr, "caldera-coordinator: error: %s\n",
                 std::string(text.status().message()).c_str());
    return false;
  }
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    std::fprintf(stderr,
                 "caldera-coordinator: error: --config %s is missing or not a JSON object "
                 "(keys: listen, data_dir, metrics_listen, lease_seconds, heartbeat_seconds, "
                 "max_attempts, retry_delay_seconds, auth_tokens, tls_cert, tls_key, client_ca, "
                 "health_listen)\n",
                 f->config.c_str());
    return false;
  }
  // Checked reading (no exceptions): a wrong type names the key.
  caldera::format::JsonFields fields(j, "--config " + f->config);
  auto unset = [&](const char* flag) { return app.count(flag) == 0; };
  if (unset("--listen")) fields.OptionalString("listen", &f->listen);
  if (unset("--data-dir")) fields.OptionalString("data_dir", &f->data_dir);
  if (unset("--metrics-listen")) fields.OptionalString("metrics_listen", &f->metrics_listen);
  if (unset("--lease-seconds")) fields.OptionalDouble("lease_seconds", &f->lease_seconds);
  if (unset("--heartbeat-seconds")) {
    fields.OptionalDouble("heartbeat_seconds", &f->heartbeat_seconds);
  }
  if (unset("--max-attempts")) fields.OptionalInt("max_attempts", &f->max_attempts);
  if (unset("--retry-delay")) {
    fields.OptionalDouble("retry_delay_seconds", &f->retry_delay_seconds);
  }
  if (unset("--auth-tokens")) fields.OptionalString("auth_tokens", &f->security.auth.token_file);
  if (unset("--tls-cert")) fields.OptionalString("tls_cert", &f->security.tls.tls_cert);
  if (unset("--tls-key")) fields.OptionalString("tls_key", &f->security.tls.tls_key);
  if (unset("--client-ca")) fields.OptionalString("client_ca", &f->security.tls.client_ca);
  if (unset("--health-listen")) {
    fields.OptionalString("health_listen", &f->security.health_listen);
  }
  if (!fields.ok()) {
    std::fprintf(stderr, "caldera-coordinator: error: %s\n",
                 std::string(fields.status().message()).c_str());
    return false;
  }
  return true;
}

int Run(const Flags& f) {
  if (f.data_dir.empty()) {
    std::fprintf(stderr, "caldera-coordinator: error: --data-dir is required (flag or config)\n");
    return 2;
  }
  auto metrics = std::make_shared<caldera::server::CoordinatorMetrics>();
  std::unique_ptr<caldera::service_runtime::MetricsEndpoint> endpoint;
  if (!f.metrics_listen.empty()) {
    auto e =
        caldera::service_runtime::MetricsEndpoint::Start(f.metrics_listen, metrics->registry());
    if (!e.ok()) {
      std::fprintf(stderr, "caldera-coordinator: error: %s\n",
                   std::string(e.status().message()).c_str());
      return 2;
    }
    endpoint = *std::move(e);
  }
  caldera::server::CoordinatorOptions options;
  options.data_dir = f.data_dir;
  options.lease_seconds = f.lease_seconds;
  options.heartbeat_seconds = f.heartbeat_seconds;
  options.max_attempts = f.max_attempts;
  options.retry_delay_seconds = f.retry_delay_seconds;
  options.max_task_memory = f.max_task_memory;
  options.storage = caldera::storage::StorageOptions::FromEnvironment();
  auto roots = caldera::storage::NormalizeAllowedRoots(f.allow_roots);
  if (!roots.ok()) {
    std::fprintf(stderr, "caldera-coordinator: error: %s\n",
                 std::string(roots.status().message()).c_str());
    return 2;
  }
  options.storage.allowed_roots = *roots;
  if (roots->empty()) {
    std::fprintf(stderr,
                 "caldera-coordinator: warning: no --allow-root: jobs may name any "
                 "location this process can read or write (docs/security.md)\n");
  }
  auto coordinator = caldera::server::Coordinator::Open(options, metrics);
  if (!coordinator.ok()) {
    std::fprintf(stderr, "caldera-coordinator: error: %s\n",
                 std::string(coordinator.status().message()).c_str());
    return 2;
  }
  auto server = caldera::server::CoordinatorServer::Start(coordinator->get(), f.listen, f.security);
  if (!server.ok()) {
    std::fprintf(stderr, "caldera-coordinator: error: %s\n",
                 std::string(server.status().message()).c_str());
    return 2;
  }
  const bool loopback = caldera::service_runtime::IsLoopbackAddress(f.listen);
  const bool tls = !f.security.tls.tls_cert.empty();
  const bool tokens = !f.security.auth.token_file.empty();
  if (!loopback && !tls) {
    std::fprintf(stderr,
                 "caldera-coordinator: WARNING: --insecure: serving plaintext on %s; tokens and "
                 "job specs cross the network unencrypted\n",
                 f.listen.c_str());
  }
  if (!loopback && !tokens) {
    std::fprintf(stderr,
                 "caldera-coordinator: WARNING: --insecure: no --auth-tokens on %s; anyone who "
                 "reaches the port may submit, cancel and act as a worker\n",
                 f.listen.c_str());
  }
  if (!f.metrics_listen.empty() && !caldera::service_runtime::IsLoopbackAddress(f.metrics_listen)) {
    std::fprintf(stderr,
                 "caldera-coordinator: note: metrics on %s are plaintext and unauthenticated "
                 "(docs/security.md)\n",
                 f.metrics_listen.c_str());
  }
  std::fprintf(stderr, "caldera-coordinator: serving on port %d (%s, %s), state in %s",
               (*server)->port(),
               tls ? (f.security.tls.client_ca.empty() ? "TLS" : "TLS, mTLS workers") : "plaintext",
               tokens ? "bearer tokens" : "local mode, no auth", f.data_dir.c_str());
  if (endpoint) std::fprintf(stderr, ", metrics on port %d", endpoint->port());
  if ((*server)->health_port() != 0) {
    std::fprintf(stderr, ", health on port %d", (*server)->health_port());
  }
  std::fprintf(stderr, "\n");

  const int sig = caldera::service_runtime::WaitForStopSignal();
  std::fprintf(stderr, "caldera-coordinator: signal %d, shutting down\n", sig);
  (*server)->Shutdown(5);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals in every thread; main waits for them.
  caldera::service_runtime::BlockStopSignals();

  CLI::App app{"caldera-coordinator: plans compression jobs and schedules their tasks"};
  Flags f;
  app.add_option("--listen", f.listen,
                 "gRPC address host:port (default 127.0.0.1:50051); a non-loopback address "
                 "needs TLS and --auth-tokens, or --insecure");
  app.add_option("--data-dir", f.data_dir, "directory of the SQLite state (created if missing)");
  app.add_option("--metrics-listen", f.metrics_listen,
                 "serve Prometheus metrics on host:port (/metrics); off when empty");
  app.add_option("--config", f.config, "JSON file with any of the settings (flags win)");
  app.add_option("--lease-seconds", f.lease_seconds,
                 "a task's lease without heartbeats before it is re-queued (default 30)");
  app.add_option("--heartbeat-seconds", f.heartbeat_seconds,
                 "heartbeat interval told to workers (default 5)");
  app.add_option("--max-attempts", f.max_attempts,
                 "attempts of one task before its job fails (default 3)");
  app.add_option("--retry-delay", f.retry_delay_seconds,
                 "seconds a task a worker failed retryably (full disk, unreachable store) waits "
                 "before its next attempt, doubled per attempt, at most 300 (default 5; 0 = at "
                 "once)");
  app.add_option("--allow-root", f.allow_roots,
                 "storage root jobs may use (local directory or s3://bucket/prefix; repeatable); "
                 "a job naming a location outside every root is refused. None: not confined");
  app.add_option("--auth-tokens", f.security.auth.token_file,
                 "file of hashed bearer tokens: `<sha256 hex> <viewer|submitter|admin|worker> "
                 "<name>` per line, re-read when it changes; none = single-user local mode "
                 "(loopback only)");
  app.add_option("--tls-cert", f.security.tls.tls_cert, "PEM certificate chain: serve TLS");
  app.add_option("--tls-key", f.security.tls.tls_key, "PEM private key of --tls-cert");
  app.add_option("--client-ca", f.security.tls.client_ca,
                 "PEM CA of client certificates: workers must connect with mutual TLS");
  app.add_flag("--insecure", f.security.insecure,
               "allow a non-loopback --listen without TLS or without --auth-tokens (warns)");
  app.add_flag("--reflection", f.security.reflection, "serve gRPC server reflection");
  app.add_option("--health-listen", f.security.health_listen,
                 "also serve only grpc.health.v1, plaintext, on host:port (Kubernetes gRPC "
                 "probes cannot use TLS); off when empty");
  app.add_option("--max-task-memory", f.max_task_memory,
                 "refuse at submit a job with a task estimated above this many bytes, saying "
                 "how many calibration shards would fit (default 0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!ApplyConfig(app, &f)) return 2;
  return Run(f);
}
