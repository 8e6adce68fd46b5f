#include "operations/compress.h"

#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "caldera/v1/jobs.grpc.pb.h"
#include "in_process_cluster/in_process_cluster.h"
#include "job/job_spec_proto.h"
#include "job/task_plan.h"
#include "operations/embedded_cluster.h"
#include "operations/job_watch.h"
#include "service_runtime/grpc_status.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::operations {

void CompressCancel::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  requested_ = true;
  if (cancel_job_) cancel_job_();
}

bool CompressCancel::requested() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requested_;
}

void CompressCancel::Attach(std::function<void()> cancel_job) {
  std::lock_guard<std::mutex> lock(mu_);
  cancel_job_ = std::move(cancel_job);
  if (requested_) cancel_job_();  // the cancel came while the job was being created
}

void CompressCancel::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  cancel_job_ = nullptr;
}

namespace {

// report.json of `out`, when it can be read.
std::optional<format::CheckpointReport> ReadReport(const std::string& out,
                                                   const storage::StorageOptions& options) {
  const std::string key = storage::JoinKey(out, "report.json");
  absl::StatusOr<std::string> text = storage::ReadObject(key, options);
  if (!text.ok()) return std::nullopt;
  absl::StatusOr<format::CheckpointReport> report = format::ParseCheckpointReport(*text, key);
  if (!report.ok()) return std::nullopt;
  return *std::move(report);
}

// Creates the job and follows it to its end.
absl::StatusOr<v1::Job> RunJob(v1::JobService::Stub* stub, const job::JobSpec& spec,
                               const Listener& listener, CompressCancel* cancel) {
  v1::CreateJobRequest request;
  *request.mutable_spec() = job::JobSpecToProto(spec);
  request.set_request_id(spec.request_id);
  v1::Job created;
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub->CreateJob(&ctx, request, &created);
    if (!s.ok()) return service_runtime::FromGrpcStatus(s);
  }
  if (cancel != nullptr) {
    cancel->Attach([stub, name = created.name()] {
      grpc::ClientContext ctx;
      v1::CancelJobRequest req;
      req.set_name(name);
      v1::Job ignored;
      (void)stub->CancelJob(&ctx, req, &ignored);
    });
  }
  absl::StatusOr<v1::Job> job = WaitForJob(stub, created.name(), [&](const v1::JobEvent& e) {
    const auto [done, total] = TaskTotals(e.job());
    listener.Progress(done, total, e.message());
  });
  if (cancel != nullptr) cancel->Detach();
  return job;
}

}  // namespace

absl::StatusOr<CompressResult> Compress(CompressOptions options,
                                        const storage::StorageOptions& storage,
                                        const Listener& listener, CompressCancel* cancel) {
  if (options.workers < 1) return absl::InvalidArgumentError("--workers must be >= 1");
  if (options.threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  if (absl::Status s =
          ResolveCalibrationText(options.calibration_text, &options.spec, storage, listener);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::unique_ptr<in_process_cluster::InProcessCluster>> cluster =
      StartEmbeddedCluster(storage, options.workers, options.threads, options.device);
  if (!cluster.ok()) return cluster.status();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<v1::Job> job;
  {
    auto stub = v1::JobService::NewStub((*cluster)->channel());
    job = RunJob(stub.get(), options.spec, listener, cancel);
  }
  (*cluster)->Shutdown();
  if (!job.ok()) return job.status();
  CompressResult result;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (job->state() == v1::CANCELLED) {
    // The workers are stopped: nothing writes the job's scratch any more, and
    // a cancelled job's scratch is of no use to anyone (a failed job keeps it).
    const std::string id = job->name().substr(job->name().rfind('/') + 1);
    if (absl::Status s = storage::RemovePrefix(job::ScratchPrefix(job->spec().out(), id), storage);
        !s.ok()) {
      listener.Note(absl::StrCat("warning: scratch of the cancelled job left: ", s.message()));
    }
  }
  if (job->state() == v1::SUCCEEDED) result.report = ReadReport(job->spec().out(), storage);
  result.job = *std::move(job);
  return result;
}

}  // namespace caldera::operations
