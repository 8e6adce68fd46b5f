// Queries about the CUDA devices visible to this process. Plain C++ (no CUDA
// headers) so that any translation unit can include it.
#ifndef CALDERA_CORE_BACKEND_CUDA_DEVICE_INFO_H_
#define CALDERA_CORE_BACKEND_CUDA_DEVICE_INFO_H_

#include <string>

namespace caldera::cuda {

struct DeviceProbe {
  int device_count = 0;    // 0 when no device or no driver
  std::string error;       // why the count is 0, if the runtime said so
  std::string first_name;  // name of device 0 when present
};

// Never fails: loads the CUDA runtime (dlopen, cuda_libraries.h), asks it how
// many devices are visible and, when there is at least one, loads cuBLAS and
// cuSOLVER and creates and destroys a handle of each on device 0 to prove
// they work. Safe to call on a machine with no GPU or no CUDA libraries
// (error then says which library is missing). Everything it loaded is
// unloaded before it returns.
DeviceProbe ProbeDevices();

}  // namespace caldera::cuda

#endif  // CALDERA_CORE_BACKEND_CUDA_DEVICE_INFO_H_
