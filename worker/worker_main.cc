// caldera-worker: registers with a coordinator, leases tasks, runs them with
// the core library, reads and writes object storage, reports results.
// SIGTERM/SIGINT drain: no new task is taken, the one in progress finishes.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "core/backend/device.h"
#include "service_runtime/grpc_security.h"
#include "service_runtime/metrics_endpoint.h"
#include "service_runtime/signal_watcher.h"
#include "storage/allowed_roots.h"
#include "storage/storage_options.h"
#include "worker/memory_limit.h"
#include "worker/worker_agent.h"
#include "worker/worker_metrics.h"

extern "C" void openblas_set_num_threads(int num_threads);

int main(int argc, char** argv) {
  // Before any thread of ours starts, so that only the watcher sees the signals
  // (OpenBLAS's threads, started before main, forward them: signal_watcher.h).
  // `agent` is the running agent (null before and after), guarded by `mu`.
  std::mutex mu;
  caldera::worker::WorkerAgent* agent = nullptr;
  bool drain_requested = false;
  caldera::service_runtime::SignalWatcher signals([&](int sig) {
    std::fprintf(stderr, "caldera-worker: signal %d, draining\n", sig);
    std::lock_guard<std::mutex> lock(mu);
    drain_requested = true;
    if (agent != nullptr) agent->Drain();
  });

  CLI::App app{"caldera-worker: runs calibrate / decompose / finalize tasks for a coordinator"};
  std::string coordinator, device = "cpu", metrics_listen;
  std::vector<std::string> allow_roots;  // --allow-root (storage/allowed_roots.h)
  int threads = 0;
  double poll = 5;
  app.add_option("--coordinator", coordinator, "coordinator address host:port")->required();
  app.add_option("--device", device,
                 "where decompose tasks and calibrate's block forward run: " +
                     caldera::backend::DeviceFlagHelp() +
                     ". cuda:N with no such device exits 2; auto with none uses the CPU and "
                     "says so once. Finalize tasks run on the CPU");
  app.add_option("--threads", threads,
                 "BLAS threads, also used by the codeword searches (default: all cores)");
  app.add_option("--metrics-listen", metrics_listen,
                 "serve Prometheus metrics on host:port (/metrics); off when empty");
  app.add_option("--poll-seconds", poll, "long-poll wait for a task (default 5)");
  app.add_option("--allow-root", allow_roots,
                 "storage root tasks may read and write (local directory or s3://bucket/prefix; "
                 "repeatable); a task naming a location outside every root is refused. None: "
                 "not confined");
  // docs/security.md: a worker token and, with the coordinator's --client-ca,
  // a client certificate.
  std::string token_file;
  caldera::service_runtime::ClientSecurity security;
  app.add_option("--token-file", token_file,
                 "file holding the worker's bearer token (default: $CALDERA_TOKEN, the token "
                 "itself)");
  app.add_option("--tls-ca", security.tls_ca, "PEM CA of the coordinator's certificate: use TLS");
  app.add_option("--tls-cert", security.tls_cert,
                 "PEM client certificate (mutual TLS; required by a coordinator with --client-ca)");
  app.add_option("--tls-key", security.tls_key, "PEM private key of --tls-cert");
  int64_t max_memory = 0;
  app.add_option("--max-memory", max_memory,
                 "bytes of memory one task may use; the coordinator leases only tasks estimated "
                 "to fit (default: the cgroup limit, else physical RAM)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // --device (core/backend/device.h): cuda:N with no such device (or no
  // CUDA libraries) exits 2; auto falls back to the CPU with one line. The
  // CUDA libraries are loaded with dlopen here, before any thread of the
  // metrics endpoint exists (core/backend/cuda/cuda_libraries.h: linked, they
  // broke civetweb).
  absl::StatusOr<caldera::backend::DeviceChoice> choice = caldera::backend::ParseDevice(device);
  if (!choice.ok()) {
    std::fprintf(stderr, "caldera-worker: error: %s\n",
                 std::string(choice.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<caldera::backend::ResolvedDevice> resolved =
      caldera::backend::ResolveDevice(*choice);
  if (!resolved.ok()) {
    std::fprintf(stderr, "caldera-worker: error: %s\n",
                 std::string(resolved.status().message()).c_str());
    return 2;
  }
  if (!resolved->note.empty()) std::fprintf(stderr, "caldera-worker: %s\n", resolved->note.c_str());
  std::unique_ptr<caldera::backend::ComputeBackend> compute;  // null: the CPU
  if (resolved->name != "cpu") {
    absl::StatusOr<std::unique_ptr<caldera::backend::ComputeBackend>> be =
        caldera::backend::CreateBackend(resolved->name);
    if (!be.ok() && choice->kind != caldera::backend::DeviceChoice::Kind::kAuto) {
      std::fprintf(stderr, "caldera-worker: error: --device %s: %s\n", device.c_str(),
                   std::string(be.status().message()).c_str());
      return 2;
    }
    if (!be.ok()) {
      std::fprintf(stderr, "caldera-worker: --device auto: %s cannot be used (%s); using the CPU\n",
                   resolved->name.c_str(), std::string(be.status().message()).c_str());
      resolved->name = "cpu";
    } else {
      compute = *std::move(be);
      std::fprintf(stderr,
                   "caldera-worker: decompose tasks and calibrate's block forward run on %s "
                   "(experimental: not yet run on a GPU)\n",
                   resolved->name.c_str());
    }
  }
  device = resolved->name;
  if (threads < 0) {
    std::fprintf(stderr, "caldera-worker: error: --threads must be >= 1 (or 0 for all cores)\n");
    return 2;
  }
  if (threads > 0) openblas_set_num_threads(threads);
  if (!token_file.empty()) {
    absl::StatusOr<std::string> token =
        caldera::service_runtime::ReadTokenFile(token_file, "--token-file");
    if (!token.ok()) {
      std::fprintf(stderr, "caldera-worker: error: %s\n",
                   std::string(token.status().message()).c_str());
      return 2;
    }
    security.token = *std::move(token);
  } else if (const char* env = std::getenv("CALDERA_TOKEN"); env != nullptr) {
    security.token = std::string(absl::StripAsciiWhitespace(env));
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      caldera::service_runtime::OpenChannel(coordinator, security);
  if (!channel.ok()) {
    std::fprintf(stderr, "caldera-worker: error: %s\n",
                 std::string(channel.status().message()).c_str());
    return 2;
  }
  if (max_memory < 0) {
    std::fprintf(stderr, "caldera-worker: error: --max-memory must be > 0 bytes\n");
    return 2;
  }
  if (max_memory == 0) max_memory = caldera::worker::DefaultMaxMemoryBytes();

  auto metrics = std::make_shared<caldera::worker::WorkerMetrics>(device);
  std::unique_ptr<caldera::service_runtime::MetricsEndpoint> endpoint;
  if (!metrics_listen.empty()) {
    auto e = caldera::service_runtime::MetricsEndpoint::Start(metrics_listen, metrics->registry());
    if (!e.ok()) {
      std::fprintf(stderr, "caldera-worker: error: %s\n",
                   std::string(e.status().message()).c_str());
      return 2;
    }
    endpoint = *std::move(e);
  }
  char host[256] = "worker";
  gethostname(host, sizeof(host) - 1);
  caldera::worker::WorkerAgentOptions options;
  options.hostname = host;
  options.storage = caldera::storage::StorageOptions::FromEnvironment();
  auto roots = caldera::storage::NormalizeAllowedRoots(allow_roots);
  if (!roots.ok()) {
    std::fprintf(stderr, "caldera-worker: error: %s\n",
                 std::string(roots.status().message()).c_str());
    return 2;
  }
  options.storage.allowed_roots = *roots;
  if (roots->empty()) {
    std::fprintf(stderr,
                 "caldera-worker: warning: no --allow-root: tasks may name any location "
                 "this process can read or write (docs/security.md)\n");
  }
  options.poll_seconds = poll;
  options.max_memory_bytes = max_memory;
  options.search_threads =
      threads > 0 ? threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  options.metrics = metrics;
  options.device = device;
  options.backend = compute.get();
  options.log = [](const std::string& line) {
    std::fprintf(stderr, "caldera-worker: %s\n", line.c_str());
  };
  caldera::worker::WorkerAgent worker_agent(*channel, options);
  {
    std::lock_guard<std::mutex> lock(mu);
    agent = &worker_agent;
    if (drain_requested) worker_agent.Drain();
  }
  const absl::Status ran = worker_agent.Run();
  {
    std::lock_guard<std::mutex> lock(mu);
    agent = nullptr;
  }
  if (!ran.ok()) {
    std::fprintf(stderr, "caldera-worker: error: %s\n", std::string(ran.message()).c_str());
    return 2;
  }
  return 0;
}
