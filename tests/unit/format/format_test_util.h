// Helpers shared by the format owners' tests.
#ifndef CALDERA_TESTS_UNIT_FORMAT_FORMAT_TEST_UTIL_H_
#define CALDERA_TESTS_UNIT_FORMAT_FORMAT_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"
#include "core/io/random_access_source.h"

namespace caldera::format::testing {

inline absl::StatusOr<std::unique_ptr<SafetensorsReader>> OpenBytes(const std::string& bytes,
                                                                    std::string name = "f.st") {
  return SafetensorsReader::Open(
      MakeMemorySource(std::move(name), std::vector<uint8_t>(bytes.begin(), bytes.end())));
}

inline bool Contains(absl::string_view haystack, absl::string_view needle) {
  return haystack.find(needle) != absl::string_view::npos;
}

}  // namespace caldera::format::testing

#endif  // CALDERA_TESTS_UNIT_FORMAT_FORMAT_TEST_UTIL_H_
