// --device: which compute backend runs a task. "cpu", "auto" (a CUDA device
// when this build has the CUDA backend and one is visible, else the CPU) or
// "cuda:N" (the N-th visible CUDA device; "cuda" means cuda:0).
//
// The CUDA backend is experimental: it is compiled and its kernel bodies are
// tested on the host, but it has not yet run on a GPU.
#ifndef CALDERA_CORE_BACKEND_DEVICE_H_
#define CALDERA_CORE_BACKEND_DEVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/backend/backend.h"

namespace caldera::backend {

struct DeviceChoice {
  enum class Kind { kCpu, kAuto, kCuda };
  Kind kind = Kind::kCpu;
  int index = 0;  // for kCuda
};

// INVALID_ARGUMENT naming the accepted forms for anything else.
absl::StatusOr<DeviceChoice> ParseDevice(absl::string_view device);

// The help text every --device flag shows (one line).
std::string DeviceFlagHelp();

// The device a choice resolves to on this machine: "cpu" or "cuda:N".
// kAuto never fails (it falls back to the CPU and says why in *note, which
// callers log once); kCuda fails with FAILED_PRECONDITION when this build has
// no CUDA backend or no such device is visible (callers exit with code 2).
struct ResolvedDevice {
  std::string name;  // "cpu" | "cuda:N"
  std::string note;  // why auto chose the CPU; empty otherwise
};
absl::StatusOr<ResolvedDevice> ResolveDevice(const DeviceChoice& choice);

// A backend for a resolved device name ("cpu" or "cuda:N"). The CUDA backend
// owns its stream and handles for its lifetime.
absl::StatusOr<std::unique_ptr<ComputeBackend>> CreateBackend(absl::string_view resolved_name);

}  // namespace caldera::backend

#endif  // CALDERA_CORE_BACKEND_DEVICE_H_
