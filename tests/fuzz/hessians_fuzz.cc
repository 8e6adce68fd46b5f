// Fuzz target: a calibrate task's Hessians file.
#include "core/format/hessians.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<caldera::SafetensorsReader> reader = caldera::fuzz::OpenSafetensors(data, size);
  if (reader == nullptr) return 0;
  (void)caldera::format::ReadHessians(*reader);
  (void)caldera::format::ReadHessiansTokens(*reader);
  (void)caldera::format::ReadHessian(*reader, "q_proj");
  return 0;
}
