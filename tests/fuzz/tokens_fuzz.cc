// Fuzz target: a calibration token file (input_ids).
#include "core/format/tokens.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<caldera::SafetensorsReader> reader = caldera::fuzz::OpenSafetensors(data, size);
  if (reader == nullptr) return 0;
  (void)caldera::format::ReadTokenFile(*reader, 32000, 4096);
  return 0;
}
