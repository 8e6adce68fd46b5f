// Exponential backoff with full jitter for retrying transient failures.
#ifndef CALDERA_STORAGE_RETRY_H_
#define CALDERA_STORAGE_RETRY_H_

#include <chrono>
#include <mutex>
#include <random>

#include "storage/storage_options.h"

namespace caldera::storage {

// Computes backoff delays: attempt k (0-based) waits a uniform random time in
// [d/2, d] with d = min(max_delay, base_delay * 2^k). Thread-safe.
class Backoff {
 public:
  explicit Backoff(RetryPolicy policy);
  std::chrono::milliseconds DelayFor(int attempt);
  const RetryPolicy& policy() const { return policy_; }

 private:
  RetryPolicy policy_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_RETRY_H_
