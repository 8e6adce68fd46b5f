// Fuzz target: config.json of a Hugging Face model.
#include "core/model/model_config.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)caldera::model::ParseModelConfig(caldera::fuzz::Text(data, size), "config.json");
  return 0;
}
