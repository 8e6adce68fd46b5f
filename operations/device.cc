#include "operations/device.h"

#include "core/backend/device.h"

namespace caldera::operations {

absl::StatusOr<std::unique_ptr<backend::ComputeBackend>> OpenComputeDevice(
    const std::string& device, std::string* note) {
  if (note != nullptr) note->clear();
  absl::StatusOr<backend::DeviceChoice> choice = backend::ParseDevice(device);
  if (!choice.ok()) return choice.status();
  absl::StatusOr<backend::ResolvedDevice> resolved = backend::ResolveDevice(*choice);
  if (!resolved.ok()) return resolved.status();
  if (note != nullptr) *note = resolved->note;
  if (resolved->name == "cpu") return std::unique_ptr<backend::ComputeBackend>();
  return backend::CreateBackend(resolved->name);
}

}  // namespace caldera::operations
