// Export format compressed-tensors (calderactl export, the Python export()): a CALDERA checkpoint
// made with --serve vllm as what transformers and vLLM load at its compressed size
// (docs/format/compressed-tensors.md):
//   OUT/base/     a Hugging Face folder in compressed-tensors' pack-quantized
//                 form: every linear whose Q is on the int grid as
//                 weight_packed / weight_scale / weight_shape, the linears kept
//                 dense by compress in `ignore`, every other tensor (embeddings,
//                 norms) in the export dtype;
//   OUT/adapter/  when some linear has L·R: a PEFT LoRA adapter of L and R
//                 (peft_adapter.h), which vLLM serves on the base with
//                 --enable-lora.
// Dequantizing OUT/base gives every Q to the last bit in float32, and base +
// adapter is the compressed model.
#ifndef CALDERA_OPERATIONS_COMPRESSED_TENSORS_EXPORT_H_
#define CALDERA_OPERATIONS_COMPRESSED_TENSORS_EXPORT_H_

#include <string>

#include "absl/status/status.h"
#include "storage/storage_options.h"

namespace caldera::operations {

// Exports `model` (a CALDERA checkpoint URI) into `out` with dense tensors and
// scales in `dtype` ("f32" | "f16"; empty: f32 for a float32 model, else f16;
// bf16 is refused because it cannot hold the fp16 scales). Everything is
// checked before anything is written: INVALID_ARGUMENT naming the module and
// the compress flag that avoids it for a matrix compressed-tensors cannot hold
// (Q on the E8P or mid-rise uniform grid, the Hadamard transform, L·R not in 16
// bits, a TT-LoRA adapter, head sharing, a group that does not divide the
// row, a row not a multiple of the int32 packing) and for a record that
// disagrees with config.json's quantization_config; FAILED_PRECONDITION when
// `out` already holds files. A write that fails removes what it wrote.
absl::Status ExportCompressedTensors(const std::string& model, const std::string& out,
                                     const std::string& dtype,
                                     const storage::StorageOptions& options);

// FAILED_PRECONDITION when `out` holds any object (the first one is named):
// exports write into a new or empty folder, so removing a failed export's
// files never removes anything else.
absl::Status RequireEmptyOutput(const std::string& out, const storage::StorageOptions& options);

// Undoes a failed export into `out` (found empty by RequireEmptyOutput):
// removes every object under it and, for a local folder, the directories the
// export made (`out` itself unless `existed` says it was there before).
void RemoveFailedExport(const std::string& out, bool existed,
                        const storage::StorageOptions& options);

// Whether the local folder `out` exists (false for object-store URIs).
bool LocalFolderExists(const std::string& out);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_COMPRESSED_TENSORS_EXPORT_H_
