// --device for calderactl's compute commands (decompose, calibrate,
// compress): cpu | auto | cuda:N (core/backend/device.h). cuda:N without
// such a device is an error (exit 2); auto falls back to the CPU with one
// line on stderr. The CUDA backend is experimental: not yet run on a GPU.
#ifndef CALDERA_CLIENT_CALDERACTL_DEVICE_FLAG_H_
#define CALDERA_CLIENT_CALDERACTL_DEVICE_FLAG_H_

#include <memory>
#include <string>

#include "core/backend/backend.h"

namespace caldera::cli {

// Resolves `device` for `command`. Returns kExitOk with *backend set (null
// for the CPU), or prints "calderactl <command>: error: ..." and returns
// kExitInvalidInput.
int OpenDevice(const char* command, const std::string& device,
               std::unique_ptr<backend::ComputeBackend>* backend);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_DEVICE_FLAG_H_
