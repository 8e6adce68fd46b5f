#include "client/calderactl/device_flag.h"

#include <cstdio>

#include "client/calderactl/exit_codes.h"
#include "operations/device.h"

namespace caldera::cli {

int OpenDevice(const char* command, const std::string& device,
               std::unique_ptr<backend::ComputeBackend>* out) {
  out->reset();
  std::string note;
  absl::StatusOr<std::unique_ptr<backend::ComputeBackend>> be =
      operations::OpenComputeDevice(device, &note);
  if (!be.ok()) {
    std::fprintf(stderr, "calderactl %s: error: %s\n", command,
                 std::string(be.status().message()).c_str());
    return kExitInvalidInput;
  }
  if (!note.empty()) std::fprintf(stderr, "calderactl %s: %s\n", command, note.c_str());
  *out = *std::move(be);
  return kExitOk;
}

}  // namespace caldera::cli
