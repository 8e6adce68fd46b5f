#include "client/calderactl/device_flag.h"

#include <cstdio>

#include "client/calderactl/exit_codes.h"
#include "core/backend/device.h"

namespace caldera::cli {

int OpenDevice(const char* command, const std::string& device,
               std::unique_ptr<backend::ComputeBackend>* out) {
  out->reset();
  absl::StatusOr<backend::DeviceChoice> choice = backend::ParseDevice(device);
  absl::StatusOr<backend::ResolvedDevice> resolved =
      choice.ok() ? backend::ResolveDevice(*choice)
                  : absl::StatusOr<backend::ResolvedDevice>(choice.status());
  if (resolved.ok() && resolved->name != "cpu") {
    absl::StatusOr<std::unique_ptr<backend::ComputeBackend>> be =
        backend::CreateBackend(resolved->name);
    if (!be.ok()) {
      resolved = be.status();
    } else {
      *out = *std::move(be);
    }
  }
  if (!resolved.ok()) {
    std::fprintf(stderr, "calderactl %s: error: %s\n", command,
                 std::string(resolved.status().message()).c_str());
    return kExitInvalidInput;
  }
  if (!resolved->note.empty()) {
    std::fprintf(stderr, "calderactl %s: %s\n", command, resolved->note.c_str());
  }
  return kExitOk;
}

}  // namespace caldera::cli
