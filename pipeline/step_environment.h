// What every pipeline step shares: where its objects live, how it is stopped,
// where its dense kernels run, and the byte counts it reports.
#ifndef CALDERA_PIPELINE_STEP_ENVIRONMENT_H_
#define CALDERA_PIPELINE_STEP_ENVIRONMENT_H_

#include <cstdint>
#include <functional>
#include <utility>

#include "core/backend/backend.h"
#include "storage/storage_options.h"

namespace caldera::pipeline {

// How a step reaches storage and the machine. Copyable; `compute` is not
// owned and must outlive the step.
struct StepEnvironment {
  StepEnvironment() = default;
  // On the CPU, not cancellable, one search thread: tools and tests.
  explicit StepEnvironment(storage::StorageOptions options) : storage(std::move(options)) {}

  // Credentials, endpoints and allowed roots for every URI the step opens.
  storage::StorageOptions storage;
  // Polled between phases (may be empty). When it returns true the step ends
  // CANCELLED; what it wrote so far is attempt-unique scratch.
  std::function<bool()> cancelled;
  // Where the dense kernels run (block forward, decomposition). Null: the CPU.
  backend::ComputeBackend* compute = nullptr;
  // Threads for the codeword searches of a decomposition.
  int search_threads = 1;

  bool IsCancelled() const { return cancelled && cancelled(); }
};

// Byte counts of one step's object-storage traffic (for metrics).
struct IoCounts {
  int64_t bytes_read = 0;
  int64_t bytes_written = 0;
};

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_STEP_ENVIRONMENT_H_
