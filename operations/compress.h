// Compress: a whole compression job on this machine with nothing to start by
// hand — an in-process cluster (in_process_cluster/: a coordinator with its
// SQLite state in a temporary directory and `workers` workers talking real
// gRPC over an in-process channel), the same planner, scheduler, leases and
// pipeline steps as caldera-coordinator + caldera-worker, so the checkpoint
// bytes are the same as a distributed run's. `calderactl compress` and the
// Python package's compress() call it.
#ifndef CALDERA_OPERATIONS_COMPRESS_H_
#define CALDERA_OPERATIONS_COMPRESS_H_

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "caldera/v1/jobs.pb.h"
#include "core/format/checkpoint_report.h"
#include "job/job_spec.h"
#include "operations/calibration_text.h"
#include "operations/listener.h"
#include "storage/storage_options.h"

namespace caldera::backend {
class ComputeBackend;  // core/backend/backend.h
}  // namespace caldera::backend

namespace caldera::operations {

struct CompressOptions {
  job::JobSpec spec;                 // the job's settings (names already parsed)
  CalibrationText calibration_text;  // instead of spec.calibration when text is set
  int workers = 2;                   // in-process workers, >= 1
  int threads = 0;                   // BLAS threads per worker; 0 = cores / workers
  // Worker 0's compute backend (operations/device.h); null = the CPU. Not
  // owned; must outlive the call.
  backend::ComputeBackend* device = nullptr;
};

struct CompressResult {
  v1::Job job;     // the final snapshot: state SUCCEEDED, FAILED or CANCELLED, error
  double seconds;  // wall time from the cluster's start
  // report.json of the checkpoint (per-matrix errors, bits and settings,
  // totals); set when the job SUCCEEDED and the report could be read.
  std::optional<format::CheckpointReport> report;
};

// Cancels a Compress call from another thread (a signal handler's thread, a
// Python KeyboardInterrupt). Thread-safe; a Cancel() before the job exists
// cancels it as soon as it is created.
class CompressCancel {
 public:
  CompressCancel() = default;
  CompressCancel(const CompressCancel&) = delete;
  CompressCancel& operator=(const CompressCancel&) = delete;

  void Cancel();
  bool requested() const;

  // For Compress: while attached, Cancel() calls `cancel_job`.
  void Attach(std::function<void()> cancel_job);
  void Detach();

 private:
  mutable std::mutex mu_;
  bool requested_ = false;            // guarded by mu_
  std::function<void()> cancel_job_;  // guarded by mu_
};

// Runs the job and waits for it; progress goes to `listener` (task counts
// and the coordinator's event messages), notes too (the calibration token
// file). Errors before the job runs (bad options, a job the coordinator
// refuses at validation, a cluster that cannot start) are the status; a job
// that ran returns its outcome in the result, FAILED and CANCELLED included.
// A cancelled job's scratch is removed. `cancel` may be null.
absl::StatusOr<CompressResult> Compress(CompressOptions options,
                                        const storage::StorageOptions& storage,
                                        const Listener& listener, CompressCancel* cancel);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_COMPRESS_H_
