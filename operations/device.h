// The compute device of an operation (calderactl --device, the Python
// package's device=): cpu | auto | cuda:N (core/backend/device.h). cuda:N
// without such a device is INVALID_ARGUMENT; auto falls back to the CPU with
// a note. The CUDA backend is experimental.
#ifndef CALDERA_OPERATIONS_DEVICE_H_
#define CALDERA_OPERATIONS_DEVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"

namespace caldera::operations {

// The backend for `device`: null for the CPU. `*note` (may be null) gets the
// resolution's note ("no CUDA device; using the CPU"), or is cleared.
absl::StatusOr<std::unique_ptr<backend::ComputeBackend>> OpenComputeDevice(
    const std::string& device, std::string* note);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_DEVICE_H_
