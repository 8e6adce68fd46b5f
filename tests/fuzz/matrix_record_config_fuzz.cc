// Fuzz target: the JSON config of a compressed matrix record (the record's
// "config" tensor), and the module report JSON of a task artifact.
#include "core/format/matrix_record.h"
#include "core/format/module_report.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text = caldera::fuzz::Text(data, size);
  (void)caldera::format::ParseRecordConfig(text, "fuzz record");
  (void)caldera::format::ParseModuleReport(text, "fuzz report");
  return 0;
}
