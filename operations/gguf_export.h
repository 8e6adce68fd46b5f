// Export format gguf (calderactl export --format gguf, docs/format/gguf.md): a
// CALDERA checkpoint as one GGUF v3 file that llama.cpp (and what is built on
// it) loads:
//   - architecture metadata in llama.cpp's keys (llama for Llama and Mistral,
//     qwen2, qwen3), tensors in its names (token_embd, blk.N.attn_q, ...,
//     output_norm, output) with q and k rows reordered for llama's RoPE
//     (llama.cpp rotates adjacent pairs, Hugging Face checkpoints the two
//     halves of each head, as convert_hf_to_gguf.py undoes);
//   - the tokenizer's metadata (the llama2.c vocabulary as llama.cpp's
//     "llama" SentencePiece model);
//   - every linear whose Q is on the int grid at group 32 (--quantizer int
//     --q-group-size 32, no Hadamard) or on Q4_K's grid (--quantizer q4k) in
//     the block type that holds it exactly (Q4_0, Q8_0, Q4_K): llama.cpp's
//     dequantized weights are our Q to the last bit; linears kept dense by
//     compress, the embeddings and lm_head in `dtype` (f16 | f32), norms and
//     biases in F32;
//   - L·R of those linears, when any has it, as a GGUF LoRA adapter beside
//     the file (`<out minus .gguf>.lora.gguf`: lora_b = L, lora_a = R in
//     `dtype`, adapter.lora.alpha 0 so llama.cpp applies B·A with scale 1 at
//     every rank), or merged into the base (Q + L·R dense in `dtype`) with
//     `merge_lr`.
// A linear that no block type holds (another grid, group size, Hadamard,
// columns not a multiple of the block) is refused, all of them named in one
// message with the fix, unless `dense_fallback`, which writes it (Q + L·R)
// dense in `dtype`.
#ifndef CALDERA_OPERATIONS_GGUF_EXPORT_H_
#define CALDERA_OPERATIONS_GGUF_EXPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "storage/storage_options.h"

namespace caldera::operations {

struct GgufExportOptions {
  std::string model;            // CALDERA checkpoint (or dense model) directory URI
  std::string out;              // the .gguf file URI
  std::string dtype;            // dense tensors: f16 | f32 ("": f32 for a float32 model, else f16)
  bool dense_fallback = false;  // unrepresentable linears dense instead of refused
  bool merge_lr = false;        // L·R merged into a dense base linear instead of the adapter
};

struct GgufExportResult {
  int64_t quantized_linears = 0;  // linears written in a block type
  int64_t dense_linears = 0;      // linears written in F16/F32
  int64_t linear_bytes = 0;       // GGUF bytes of the linears' tensors
  int64_t file_bytes = 0;
  std::string adapter;  // the LoRA adapter file written ("" when no linear has L·R)
};

// Everything is checked before the file is written: INVALID_ARGUMENT naming
// every unrepresentable linear and the flags that avoid it, an unsupported
// architecture or rope scaling, a missing tokenizer, --out not ending in
// .gguf; FAILED_PRECONDITION when --out (or the adapter file) exists. Each
// file is written in one object write; a failed adapter write removes the
// base file, so nothing is half written.
absl::StatusOr<GgufExportResult> ExportGguf(const GgufExportOptions& options,
                                            const storage::StorageOptions& storage);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_GGUF_EXPORT_H_
