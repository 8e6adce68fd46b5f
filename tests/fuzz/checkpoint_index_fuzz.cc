// Fuzz target: model.safetensors.index.json of a sharded checkpoint.
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)caldera::ParseCheckpointIndex(caldera::fuzz::Text(data, size),
                                      "model.safetensors.index.json");
  return 0;
}
