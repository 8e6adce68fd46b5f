// Load benchmark (issue 17): a coordinator on TCP loopback (in this process,
// no workers) holding one job of ~16k tasks (a random 1024-layer model, 9
// calibration shards: 1024 x (9 + 7) + 1 = 16,385 tasks) and --jobs small
// queued jobs, watched by --watchers WatchJob streams on the big job.
// Prints:
//   - CreateJob throughput (the small jobs, one client, sequential),
//   - process CPU (cores) and RSS while the watchers idle (the bench's own
//     threads are blocked in Read, so this is the coordinator's),
//   - GetJob p50/p99 of an unrelated small job and of the big job, with the
//     watchers connected (idle, then with --changes-per-second task
//     completions on the big job),
//   - LeaseTask p50/p99 of a worker no task fits (so each queued job asks
//     whether any connected worker could hold its task), before and after
//     --stale-ids other worker ids were heard from once and went quiet
//     (issue 37: 7,500 such ids slowed every lease 34x),
//   - one owner submitting until --flood-jobs jobs: how many the default
//     queued-jobs quota accepts, how fast the rest are refused, RSS.
//
//   build/bench/load_bench [--jobs 1000] [--watchers 100] [--idle-seconds 5]
//                          [--stale-ids 20000] [--flood-jobs 5000]
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "caldera/v1/jobs.grpc.pb.h"
#include "caldera/v1/worker.grpc.pb.h"
#include "core/model/test_model.h"
#include "in_process_cluster/in_process_cluster.h"
#include "job/task_plan.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = caldera::v1;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

long RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// GetJob latencies (ms) of `name`, `n` calls in a row.
std::vector<double> GetJobLatencies(v1::JobService::Stub* stub, const std::string& name, int n) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    v1::GetJobRequest req;
    req.set_name(name);
    v1::Job job;
    grpc::ClientContext ctx;
    const auto start = Clock::now();
    grpc::Status s = stub->GetJob(&ctx, req, &job);
    ms.push_back(Seconds(start) * 1e3);
    if (!s.ok()) std::fprintf(stderr, "GetJob: %s\n", s.error_message().c_str());
  }
  return ms;
}

void PrintLatencies(const char* what, const std::vector<double>& ms) {
  std::printf("%-44s p50 %8.2f ms   p99 %8.2f ms   max %8.2f ms   (%zu calls)\n", what,
              Percentile(ms, 0.5), Percentile(ms, 0.99), Percentile(ms, 1.0), ms.size());
}

v1::CreateJobRequest Request(const std::string& model, const std::string& out, int shards) {
  v1::CreateJobRequest req;
  req.mutable_spec()->set_model(model);
  req.mutable_spec()->set_calibration(model + "/tokens.safetensors");
  req.mutable_spec()->set_out(out);
  req.mutable_spec()->mutable_decomposition()->set_rank(2);
  req.mutable_spec()->set_calibration_shards(shards);
  req.mutable_spec()->set_calibration_mode("original");
  return req;
}

// LeaseTask latencies (ms) of `worker_id` offering 1 MiB (no task fits).
std::vector<double> LeaseLatencies(v1::WorkerService::Stub* stub, const std::string& worker_id,
                                   int n) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    v1::LeaseTaskRequest req;
    req.set_worker_id(worker_id);
    req.set_wait_seconds(0);
    req.set_max_memory_bytes(1 << 20);
    v1::LeaseTaskResponse resp;
    grpc::ClientContext ctx;
    const auto start = Clock::now();
    grpc::Status s = stub->LeaseTask(&ctx, req, &resp);
    ms.push_back(Seconds(start) * 1e3);
    if (!s.ok() || resp.has_task()) std::fprintf(stderr, "LeaseTask: unexpected answer\n");
  }
  return ms;
}

// Issue 37: per-lease cost with `stale_ids` worker ids that were heard from
// once (sorting before the real one) and then went quiet.
void StaleIds(const std::shared_ptr<grpc::Channel>& channel, int stale_ids,
              double connected_seconds) {
  auto ws = v1::WorkerService::NewStub(channel);
  const std::vector<double> before = LeaseLatencies(ws.get(), "w-real", 100);
  PrintLatencies("LeaseTask, nothing fits, no stale ids:", before);
  const auto start = Clock::now();
  for (int i = 0; i < stale_ids; ++i) {  // a heartbeat is the cheapest call naming an id
    v1::HeartbeatRequest req;
    req.set_worker_id(absl::StrCat("0-stale-", i));  // sorts before "w-real"
    req.set_attempt_id("none");
    v1::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    (void)ws->Heartbeat(&ctx, req, &resp);
  }
  std::printf(
      "%d stale ids heard from once in %.1f s; waiting %.1f s until they are not "
      "connected\n",
      stale_ids, Seconds(start), connected_seconds);
  std::this_thread::sleep_for(std::chrono::duration<double>(connected_seconds + 0.5));
  const std::vector<double> after = LeaseLatencies(ws.get(), "w-real", 100);
  PrintLatencies(absl::StrCat("LeaseTask, nothing fits, ", stale_ids, " stale ids:").c_str(),
                 after);
  std::printf("stale ids: p50 ratio %.2f\n", Percentile(after, 0.5) / Percentile(before, 0.5));
}

// Issue 37: one owner submits until `total` jobs exist; the default quota of
// queued jobs refuses the rest (RESOURCE_EXHAUSTED) without validating them.
void Flood(v1::JobService::Stub* stub, const std::string& dir, int already, int total) {
  int accepted = 0, refused = 0;
  std::vector<double> refused_ms;
  const long rss_before = RssKiB();
  const auto start = Clock::now();
  for (int j = already; j < total; ++j) {
    v1::Job job;
    grpc::ClientContext ctx;
    const auto call = Clock::now();
    grpc::Status s =
        stub->CreateJob(&ctx, Request(dir + "/small", absl::StrCat(dir, "/flood", j), 1), &job);
    if (s.ok()) {
      ++accepted;
    } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      refused_ms.push_back(Seconds(call) * 1e3);
      if (refused == 1) std::printf("first refusal: %s\n", s.error_message().c_str());
    } else {
      std::fprintf(stderr, "CreateJob: %s\n", s.error_message().c_str());
      return;
    }
  }
  std::printf(
      "flood to %d jobs from one owner: %d more accepted, %d refused in %.1f s, RSS "
      "%.1f -> %.1f MiB\n",
      total, accepted, refused, Seconds(start), rss_before / 1024.0, RssKiB() / 1024.0);
  PrintLatencies("CreateJob refused by the quota:", refused_ms);
}

int Run(int jobs, int watchers, double idle_seconds, double changes_per_second, int stale_ids,
        int flood_jobs) {
  const std::string dir = std::filesystem::temp_directory_path() / "caldera-load-bench";
  std::filesystem::remove_all(dir);
  caldera::model::TestModelOptions big;
  big.hidden_size = 8;
  big.intermediate_size = 16;
  big.num_layers = 1024;
  big.num_heads = 2;
  big.num_kv_heads = 1;
  big.vocab_size = 16;
  caldera::model::TestModelOptions small = big;
  small.num_layers = 2;
  for (const auto& [options, name] : {std::pair{&big, "big"}, std::pair{&small, "small"}}) {
    const std::string m = absl::StrCat(dir, "/", name);
    absl::Status s = caldera::model::WriteTestModel(*options, m);
    if (s.ok()) s = caldera::model::WriteTestTokens(18, 8, 16, 7, m + "/tokens.safetensors");
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  caldera::in_process_cluster::InProcessClusterOptions o;
  o.data_dir = dir + "/state";
  o.listen = "127.0.0.1:0";
  o.workers = 0;
  // Short heartbeats: a quiet worker id stops counting as connected after
  // 3 heartbeats + the 10 s long poll (the StaleIds phase waits that long).
  o.heartbeat_seconds = 0.2;
  auto cluster = caldera::in_process_cluster::InProcessCluster::Start(o);
  if (!cluster.ok()) {
    std::fprintf(stderr, "%s\n", std::string(cluster.status().message()).c_str());
    return 1;
  }
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*cluster)->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::JobService::NewStub(channel);

  v1::Job big_job;
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub->CreateJob(&ctx, Request(dir + "/big", dir + "/out-big", 9), &big_job);
    if (!s.ok()) {
      std::fprintf(stderr, "CreateJob (big): %s\n", s.error_message().c_str());
      return 1;
    }
  }
  std::printf("big job: %d tasks\n", big_job.task_status_size());

  const auto create_start = Clock::now();
  std::string small_name;
  for (int j = 0; j < jobs; ++j) {
    v1::Job job;
    grpc::ClientContext ctx;
    grpc::Status s =
        stub->CreateJob(&ctx, Request(dir + "/small", absl::StrCat(dir, "/out", j), 1), &job);
    if (!s.ok()) {
      std::fprintf(stderr, "CreateJob: %s\n", s.error_message().c_str());
      return 1;
    }
    small_name = job.name();
  }
  const double create_seconds = Seconds(create_start);
  std::printf("CreateJob: %d jobs in %.2f s = %.1f jobs/s\n", jobs, create_seconds,
              jobs / create_seconds);

  std::atomic<long> events{0};
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> threads;
  for (int w = 0; w < watchers; ++w) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    threads.emplace_back([&, ctx = contexts.back().get()] {
      auto watch_stub = v1::JobService::NewStub(channel);
      v1::WatchJobRequest req;
      req.set_name(big_job.name());
      auto reader = watch_stub->WatchJob(ctx, req);
      v1::JobEvent e;
      while (reader->Read(&e)) ++events;
      reader->Finish();
    });
  }
  const auto connect_deadline = Clock::now() + std::chrono::seconds(60);
  while (events.load() < watchers && Clock::now() < connect_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::printf("%d watchers connected (%ld first events)\n", watchers, events.load());

  const long events_before = events.load();
  const double cpu_before = CpuSeconds();
  const auto idle_start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(idle_seconds));
  const double idle_cpu = (CpuSeconds() - cpu_before) / Seconds(idle_start);
  std::printf("idle watchers: CPU %.1f %% of a core, %ld events in %.1f s, RSS %.1f MiB\n",
              100 * idle_cpu, events.load() - events_before, idle_seconds, RssKiB() / 1024.0);

  PrintLatencies("GetJob small job, idle watchers:", GetJobLatencies(stub.get(), small_name, 500));
  PrintLatencies("GetJob 16k-task job, idle watchers:",
                 GetJobLatencies(stub.get(), big_job.name(), 50));

  if (changes_per_second > 0) {
    // A fake worker completes calibrate tasks of the big job at the given rate.
    std::atomic<bool> stop{false};
    std::atomic<int> completed{0};
    std::thread worker([&] {
      auto ws = v1::WorkerService::NewStub(channel);
      const auto period = std::chrono::duration<double>(1.0 / changes_per_second);
      auto next = Clock::now();
      while (!stop.load()) {
        v1::LeaseTaskRequest lreq;
        lreq.set_worker_id("bench");
        lreq.set_wait_seconds(0);
        v1::LeaseTaskResponse lresp;
        grpc::ClientContext lctx;
        if (!ws->LeaseTask(&lctx, lreq, &lresp).ok() || lresp.task().task_id().empty()) break;
        v1::CompleteTaskRequest creq;
        creq.set_worker_id("bench");
        creq.set_attempt_id(lresp.task().attempt_id());
        caldera::job::SetResultOfTask(lresp.task(), &creq);
        v1::CompleteTaskResponse cresp;
        grpc::ClientContext cctx;
        if (ws->CompleteTask(&cctx, creq, &cresp).ok()) ++completed;
        next += std::chrono::duration_cast<Clock::duration>(period);
        std::this_thread::sleep_until(next);
      }
    });
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const long busy_events = events.load();
    const double busy_cpu = CpuSeconds();
    const auto busy_start = Clock::now();
    const std::vector<double> small_ms = GetJobLatencies(stub.get(), small_name, 500);
    const double busy_elapsed = Seconds(busy_start);
    std::printf(
        "with %.1f changes/s on the big job: CPU %.1f %% of a core, %.0f events/s to watchers\n",
        changes_per_second, 100 * (CpuSeconds() - busy_cpu) / busy_elapsed,
        (events.load() - busy_events) / busy_elapsed);
    PrintLatencies("GetJob small job, big job changing:", small_ms);
    stop = true;
    worker.join();
  }

  for (auto& ctx : contexts) ctx->TryCancel();
  const auto cancel_start = Clock::now();
  for (std::thread& t : threads) t.join();
  std::printf("%d watches cancelled in %.2f s\n", watchers, Seconds(cancel_start));
  if (stale_ids > 0) StaleIds(channel, stale_ids, 3 * o.heartbeat_seconds + 10);
  if (flood_jobs > 0) Flood(stub.get(), dir, jobs + 1, flood_jobs);
  (*cluster)->Shutdown();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"load_bench: GetJob latency, CreateJob throughput and CPU with 100 watchers"};
  int jobs = 1000, watchers = 100;
  double idle_seconds = 5, changes = 2;
  app.add_option("--jobs", jobs, "small queued jobs to create (default 1000)");
  app.add_option("--watchers", watchers, "WatchJob streams on the big job (default 100)");
  app.add_option("--idle-seconds", idle_seconds, "idle window for the CPU figure (default 5)");
  app.add_option("--changes-per-second", changes,
                 "task completions per second on the big job in the last phase (default 2; 0 "
                 "skips it)");
  int stale_ids = 20000, flood_jobs = 5000;
  app.add_option("--stale-ids", stale_ids,
                 "quiet worker ids before the last LeaseTask figure (default 20000; 0 skips it)");
  app.add_option("--flood-jobs", flood_jobs,
                 "one owner submits until this many jobs exist (default 5000; 0 skips it)");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures appear as they are measured
  return Run(jobs, watchers, idle_seconds, changes, stale_ids, flood_jobs);
}
