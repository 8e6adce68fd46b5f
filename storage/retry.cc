#include "storage/retry.h"

#include <algorithm>

namespace caldera::storage {

Backoff::Backoff(RetryPolicy policy) : policy_(policy), rng_(std::random_device{}()) {}

std::chrono::milliseconds Backoff::DelayFor(int attempt) {
  const int64_t base = std::max<int64_t>(policy_.base_delay.count(), 0);
  const int64_t cap = std::max<int64_t>(policy_.max_delay.count(), 0);
  int64_t d = base;
  for (int i = 0; i < attempt && d < cap; ++i) d *= 2;
  d = std::min(d, cap);
  if (d <= 1) return std::chrono::milliseconds(d);
  std::lock_guard<std::mutex> lock(mu_);
  std::uniform_int_distribution<int64_t> dist(d / 2, d);
  return std::chrono::milliseconds(dist(rng_));
}

}  // namespace caldera::storage
