// Whether a task fits in a GPU's free memory, decided before the task
// starts on a device backend: a task that does not fit fails at once with a
// retryable error (RESOURCE_EXHAUSTED: the coordinator leases it again,
// possibly to a worker with a larger or emptier device) instead of failing
// half-way with an out-of-memory error from cudaMalloc.
// Pure function; no CUDA needed (unit-tested on the host).
#ifndef CALDERA_WORKER_DEVICE_MEMORY_CHECK_H_
#define CALDERA_WORKER_DEVICE_MEMORY_CHECK_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace caldera::worker {

// OK when `need_bytes` <= `free_bytes`; otherwise RESOURCE_EXHAUSTED naming
// the task, the device and both figures (bytes and GiB/MiB). A need of 0 or
// less (unknown) always fits.
absl::Status CheckDeviceMemoryFits(absl::string_view task, absl::string_view device,
                                   int64_t need_bytes, int64_t free_bytes);

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_DEVICE_MEMORY_CHECK_H_
