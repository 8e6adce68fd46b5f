// Helpers shared by the fuzz targets (tests/fuzz/*_fuzz.cc): the fuzzer's bytes
// as text, or opened as a safetensors file from memory. Each target defines
// LLVMFuzzerTestOneInput; it must return 0 for every input and never crash,
// throw or abort (a parser's errors are statuses).
#ifndef CALDERA_TESTS_FUZZ_FUZZ_INPUT_H_
#define CALDERA_TESTS_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/format/safetensors.h"
#include "core/io/random_access_source.h"

namespace caldera::fuzz {

inline absl::string_view Text(const uint8_t* data, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data), size);
}

// The bytes as a safetensors file; null when the header is refused.
inline std::unique_ptr<SafetensorsReader> OpenSafetensors(const uint8_t* data, size_t size) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader = SafetensorsReader::Open(
      MakeMemorySource("fuzz.safetensors", std::vector<uint8_t>(data, data + size)));
  return reader.ok() ? *std::move(reader) : nullptr;
}

}  // namespace caldera::fuzz

#endif  // CALDERA_TESTS_FUZZ_FUZZ_INPUT_H_
