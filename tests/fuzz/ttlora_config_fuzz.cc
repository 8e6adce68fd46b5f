// Fuzz target: the JSON config of a TT-LoRA adapter.
#include "core/format/ttlora_adapter.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)caldera::format::ParseTtloraConfig(caldera::fuzz::Text(data, size), "adapter");
  return 0;
}
