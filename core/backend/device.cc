#include "core/backend/device.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/backend/cpu/cpu_backend.h"
#if defined(CALDERA_HAVE_CUDA_BACKEND)
#include "core/backend/cuda/cuda_backend.h"
#endif
#if defined(CALDERA_HAVE_CUDA)
#include "core/backend/cuda/device_info.h"
#endif

namespace caldera::backend {

absl::StatusOr<DeviceChoice> ParseDevice(absl::string_view device) {
  DeviceChoice c;
  if (device == "cpu") return c;
  if (device == "auto") {
    c.kind = DeviceChoice::Kind::kAuto;
    return c;
  }
  if (device == "cuda") {
    c.kind = DeviceChoice::Kind::kCuda;
    return c;
  }
  int index = -1;
  if (absl::StartsWith(device, "cuda:") && absl::SimpleAtoi(device.substr(5), &index) &&
      index >= 0) {
    c.kind = DeviceChoice::Kind::kCuda;
    c.index = index;
    return c;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--device '", device, "' is not a device; use cpu, auto or cuda:N"));
}

std::string DeviceFlagHelp() {
  return "cpu | auto | cuda:N (default cpu; auto uses a GPU when one is visible, else the CPU; "
         "cuda is experimental: not yet run on a GPU)";
}

absl::StatusOr<ResolvedDevice> ResolveDevice(const DeviceChoice& choice) {
  if (choice.kind == DeviceChoice::Kind::kCpu) return ResolvedDevice{"cpu", ""};
#if defined(CALDERA_HAVE_CUDA)
  const cuda::DeviceProbe probe = cuda::ProbeDevices();
  if (choice.kind == DeviceChoice::Kind::kAuto) {
    if (probe.device_count > 0 && probe.error.empty()) return ResolvedDevice{"cuda:0", ""};
    return ResolvedDevice{"cpu", absl::StrCat("--device auto: no usable CUDA device (",
                                              probe.error.empty() ? "none visible" : probe.error,
                                              "); using the CPU")};
  }
  if (choice.index >= probe.device_count) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--device cuda:", choice.index, ": ", probe.device_count, " CUDA device(s) visible",
        probe.error.empty() ? "" : absl::StrCat(" (", probe.error, ")"), "; use --device cpu"));
  }
  if (!probe.error.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--device cuda:", choice.index, ": ", probe.error, "; use --device cpu"));
  }
  return ResolvedDevice{absl::StrCat("cuda:", choice.index), ""};
#else
  if (choice.kind == DeviceChoice::Kind::kAuto) {
    return ResolvedDevice{"cpu",
                          "--device auto: this build has no CUDA backend (configure with "
                          "-DCALDERA_CUDA=ON); using the CPU"};
  }
  return absl::FailedPreconditionError(
      absl::StrCat("--device cuda:", choice.index,
                   ": this build has no CUDA backend (configure with -DCALDERA_CUDA=ON); use "
                   "--device cpu"));
#endif
}

absl::StatusOr<std::unique_ptr<ComputeBackend>> CreateBackend(absl::string_view resolved_name) {
  if (resolved_name == "cpu") return std::make_unique<CpuBackend>();
  absl::StatusOr<DeviceChoice> c = ParseDevice(resolved_name);
  if (!c.ok()) return c.status();
  if (c->kind != DeviceChoice::Kind::kCuda) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CreateBackend needs a resolved device (cpu or cuda:N), not '", resolved_name, "'"));
  }
#if defined(CALDERA_HAVE_CUDA_BACKEND)
  return cuda::CreateCudaBackend(c->index);
#else
  return absl::FailedPreconditionError(
      absl::StrCat("--device ", resolved_name,
                   ": this build has no CUDA backend (configure with -DCALDERA_CUDA=ON)"));
#endif
}

}  // namespace caldera::backend
