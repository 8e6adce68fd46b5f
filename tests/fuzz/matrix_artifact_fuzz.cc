// Fuzz target: a decompose task's artifact (safetensors with a matrix record
// and report metadata), read as the finalize task and the worker read it.
#include "core/format/matrix_artifact.h"
#include "core/format/matrix_record.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<caldera::SafetensorsReader> reader = caldera::fuzz::OpenSafetensors(data, size);
  if (reader == nullptr) return 0;
  (void)caldera::format::ReadMatrixArtifact(*reader);
  (void)caldera::format::ReadArtifactReport(*reader);
  return 0;
}
