#include "worker/device_memory_check.h"

#include "absl/strings/str_cat.h"
#include "job/memory_estimate.h"

namespace caldera::worker {

absl::Status CheckDeviceMemoryFits(absl::string_view task, absl::string_view device,
                                   int64_t need_bytes, int64_t free_bytes) {
  if (need_bytes <= 0 || need_bytes <= free_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      task, " needs an estimated ", job::FormatBytes(need_bytes), " (", need_bytes,
      " bytes) of device memory but ", device, " has ", job::FormatBytes(free_bytes), " (",
      free_bytes, " bytes) free; retry on a worker with more free GPU memory (or --device cpu)"));
}

}  // namespace caldera::worker
