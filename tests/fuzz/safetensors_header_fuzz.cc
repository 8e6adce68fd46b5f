// Fuzz target: a safetensors file (header JSON, offsets, dtypes, shapes) and
// reading every tensor it declares.
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<caldera::SafetensorsReader> reader = caldera::fuzz::OpenSafetensors(data, size);
  if (reader == nullptr) return 0;
  for (const caldera::TensorInfo& t : reader->tensors()) {
    (void)reader->Read(t.name);
    (void)reader->ReadAs(t.name, caldera::DType::kF32);
  }
  return 0;
}
