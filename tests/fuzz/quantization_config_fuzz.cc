// Fuzz target: "quantization_config" of a compressed checkpoint's config.json.
#include "core/format/quantization_config.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text = caldera::fuzz::Text(data, size);
  (void)caldera::format::ReadQuantizationConfig(text, "config.json");
  (void)caldera::format::DenseModelConfig(text, "config.json", "bfloat16");
  return 0;
}
