// Service benchmark, two figures:
//  1. Scheduling overhead per task: a coordinator on TCP loopback, jobs on the
//     stories260K fixture (41 tasks each), and W fake workers that lease and
//     report each task without running it — so the time is the service's own:
//     gRPC, planner, scheduler, SQLite commits (WAL, synchronous=FULL).
//  2. Scaling: wall time of a decomposition-dominated `calderactl compress`
//     with 1 worker against 2 workers, one BLAS thread each (target >= 1.7x on
//     2 cores).
//
//   build/bench/service_bench --model models/stories260K [--jobs 20]
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "caldera/v1/jobs.grpc.pb.h"
#include "caldera/v1/worker.grpc.pb.h"
#include "in_process_cluster/in_process_cluster.h"
#include "job/task_plan.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

int SchedulingOverhead(const std::string& model, int jobs, int workers) {
  const std::string dir = std::filesystem::temp_directory_path() / "caldera-service-bench";
  std::filesystem::remove_all(dir);
  caldera::in_process_cluster::InProcessClusterOptions o;
  o.data_dir = dir + "/state";
  o.listen = "127.0.0.1:0";
  o.workers = 0;  // the fake workers below
  auto cluster = caldera::in_process_cluster::InProcessCluster::Start(o);
  if (!cluster.ok()) {
    std::fprintf(stderr, "%s\n", std::string(cluster.status().message()).c_str());
    return 1;
  }
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*cluster)->port()),
                                     grpc::InsecureChannelCredentials());
  auto jobs_stub = caldera::v1::JobService::NewStub(channel);

  const auto submit_start = Clock::now();
  int tasks = 0;
  for (int j = 0; j < jobs; ++j) {
    caldera::v1::CreateJobRequest req;
    req.mutable_spec()->set_model(model);
    req.mutable_spec()->set_calibration(model + "/calibration.safetensors");
    req.mutable_spec()->set_out(absl::StrCat(dir, "/out", j));
    req.mutable_spec()->mutable_decomposition()->set_rank(8);
    caldera::v1::Job job;
    grpc::ClientContext ctx;
    grpc::Status s = jobs_stub->CreateJob(&ctx, req, &job);
    if (!s.ok()) {
      std::fprintf(stderr, "CreateJob: %s\n", s.error_message().c_str());
      return 1;
    }
    tasks += job.task_status_size();
  }
  const double submit_seconds = Seconds(submit_start);

  const auto run_start = Clock::now();
  std::vector<std::thread> threads;
  std::vector<double> lease_seconds(workers, 0), complete_seconds(workers, 0);
  std::vector<int> done(workers, 0);
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      auto stub = caldera::v1::WorkerService::NewStub(channel);
      int idle = 0;
      while (idle < 3) {
        caldera::v1::LeaseTaskRequest lreq;
        lreq.set_worker_id(absl::StrCat("bench-", w));
        lreq.set_wait_seconds(0.2);
        caldera::v1::LeaseTaskResponse lresp;
        auto t0 = Clock::now();
        {
          grpc::ClientContext ctx;
          if (!stub->LeaseTask(&ctx, lreq, &lresp).ok()) return;
        }
        lease_seconds[w] += Seconds(t0);
        if (!lresp.has_task()) {
          ++idle;
          continue;
        }
        idle = 0;
        caldera::v1::CompleteTaskRequest creq;
        creq.set_worker_id(lreq.worker_id());
        creq.set_attempt_id(lresp.task().attempt_id());
        caldera::job::SetResultOfTask(lresp.task(), &creq);
        caldera::v1::CompleteTaskResponse cresp;
        t0 = Clock::now();
        grpc::ClientContext ctx;
        if (!stub->CompleteTask(&ctx, creq, &cresp).ok()) return;
        complete_seconds[w] += Seconds(t0);
        ++done[w];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double run_seconds = Seconds(run_start) - 3 * 0.2;  // minus the final idle polls
  int total_done = 0;
  double lease = 0, complete = 0;
  for (int w = 0; w < workers; ++w) {
    total_done += done[w];
    lease += lease_seconds[w];
    complete += complete_seconds[w];
  }
  std::printf(
      "scheduling: %d jobs (%d tasks) submitted in %.3f s (%.1f ms per job, validation "
      "included)\n",
      jobs, tasks, submit_seconds, 1e3 * submit_seconds / jobs);
  std::printf(
      "scheduling: %d tasks leased+committed by %d fake workers in %.3f s: %.0f tasks/s, "
      "%.2f ms per task wall; per RPC: lease %.2f ms, complete %.2f ms\n",
      total_done, workers, run_seconds, total_done / run_seconds, 1e3 * run_seconds / total_done,
      1e3 * lease / total_done, 1e3 * complete / total_done);
  cluster->reset();
  std::filesystem::remove_all(dir);
  return total_done == tasks ? 0 : 1;
}

double CompressSeconds(const std::string& ctl, const std::string& model, int workers,
                       const std::string& flags) {
  const std::string out =
      (std::filesystem::temp_directory_path() / absl::StrCat("caldera-bench-", workers)).string();
  std::filesystem::remove_all(out);
  const std::string cmd = absl::StrCat(ctl, " compress --model ", model, " --calibration ", model,
                                       "/calibration.safetensors --out ", out, " --workers ",
                                       workers, " --threads 1 ", flags, " > /dev/null 2>&1");
  const auto t0 = Clock::now();
  const int rc = std::system(cmd.c_str());
  const double s = Seconds(t0);
  std::filesystem::remove_all(out);
  return rc == 0 ? s : -1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"service_bench: scheduling overhead per task and 1-vs-2 worker scaling"};
  std::string model, ctl = "build/bin/calderactl", flags = "--rank 16 --iters 10 --lplr-iters 5";
  int jobs = 20, fake_workers = 2;
  bool skip_scaling = false;
  app.add_option("--model", model, "fixture model directory (with calibration.safetensors)")
      ->required();
  app.add_option("--jobs", jobs, "jobs for the scheduling figure (default 20)");
  app.add_option("--fake-workers", fake_workers, "fake workers (default 2)");
  app.add_option("--calderactl", ctl, "calderactl binary for the scaling figure");
  app.add_option("--compress-flags", flags, "job flags of the scaling figure");
  app.add_flag("--skip-scaling", skip_scaling, "only the scheduling figure");
  CLI11_PARSE(app, argc, argv);
  if (int rc = SchedulingOverhead(model, jobs, fake_workers); rc != 0) return rc;
  if (skip_scaling) return 0;
  const double one = CompressSeconds(ctl, model, 1, flags);
  const double two = CompressSeconds(ctl, model, 2, flags);
  if (one < 0 || two < 0) {
    std::fprintf(stderr, "calderactl compress failed; run it by hand to see why\n");
    return 1;
  }
  std::printf(
      "scaling: compress (%s) 1 worker %.2f s, 2 workers %.2f s: speedup %.2fx "
      "(target >= 1.7x)\n",
      flags.c_str(), one, two, one / two);
  return 0;
}
