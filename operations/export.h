// Export: rebuilds a plain dense checkpoint (every linear as <prefix>.weight)
// from a CALDERA checkpoint (docs/format/checkpoint.md).
//   format dense: float32 linears (the reference for comparisons);
//   format hf:    a Hugging Face checkpoint for transformers / vLLM / lm-eval:
//                 linears in dtype (default: the model's torch_dtype),
//                 config.json without quantization_config and with that
//                 torch_dtype, every other tensor as in the input.
//   format peft:  out/base, an hf checkpoint of Q plus the part of L·R not
//                 kept in the adapter, and out/adapter, a PEFT LoRA adapter
//                 of the first ft_rank columns of L / rows of R, so that
//                 base + B·A is the compressed model (peft_adapter.h;
//                 float32 unless dtype); out must be new or empty, and a
//                 failed export removes what it wrote.
//   format compressed-tensors: out/base in compressed-tensors' pack-quantized
//                 form and out/adapter, L·R as a PEFT LoRA adapter, for a
//                 checkpoint made with --serve vllm
//                 (compressed_tensors_export.h).
//   format gguf:  one GGUF file (out names it) for llama.cpp, int-grid Q at
//                 group 32 as Q4_0 / Q8_0 (gguf_export.h).
// All copy the tokenizer, generation and chat-template files through. One
// shard for the non-layer tensors plus one per decoder layer, so at most one
// layer is held in memory. `calderactl export` and the Python package's
// export() call it.
#ifndef CALDERA_OPERATIONS_EXPORT_H_
#define CALDERA_OPERATIONS_EXPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "operations/listener.h"
#include "storage/storage_options.h"

namespace caldera::operations {

struct ExportOptions {
  std::string format = "dense";  // dense | hf | peft | compressed-tensors | gguf
  std::string model;             // CALDERA checkpoint directory URI
  std::string out;               // output directory URI (gguf: the .gguf file)
  std::string
      dtype;  // hf, peft: bf16 | f16 | f32; compressed-tensors, gguf: f16 | f32; "" = default
  int64_t ft_rank = 0;          // peft: adapter rank per module (0: the full rank)
  bool dense_fallback = false;  // gguf: linears no block type holds go dense instead of refused
  bool merge_lr = false;        // gguf: L·R merged into dense base linears, no LoRA adapter
};

struct ExportResult {
  std::string model;    // out (dense, hf) or out/base (peft, compressed-tensors)
  std::string adapter;  // peft, compressed-tensors with L·R: out/adapter; "" otherwise
};

// Progress: one step per decoder layer written. INVALID_ARGUMENT for an
// unknown format or dtype; the checkpoint's and storage's errors as they come.
absl::StatusOr<ExportResult> Export(const ExportOptions& options,
                                    const storage::StorageOptions& storage,
                                    const Listener& listener);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_EXPORT_H_
