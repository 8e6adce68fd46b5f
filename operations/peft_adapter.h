// PEFT LoRA export of a CALDERA checkpoint's factors (docs/format/peft-export.md):
// for every compressed linear W ≈ Q + L·R, the first K columns of L and rows
// of R become the adapter (lora_B = L[:, :K] [out, K], lora_A = R[:K, :]
// [K, in], lora_alpha = K so PEFT's scaling is 1), and the base weight is the
// module's compressed weight minus that product (Q plus the rest of L·R, plus
// any TT-LoRA delta), so base + B·A equals the compressed model's weight.
#ifndef CALDERA_OPERATIONS_PEFT_ADAPTER_H_
#define CALDERA_OPERATIONS_PEFT_ADAPTER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"
#include "core/model/checkpoint.h"
#include "core/tensor/tensor.h"

namespace caldera::operations {

// base_model_name_or_path for an adapter: the absolute path of `base` for
// local output, the URI otherwise.
std::string BaseModelName(const std::string& base);

class PeftAdapterBuilder {
 public:
  // `ft_rank` <= 0 keeps each module's full rank; adapter tensors get `dtype`.
  PeftAdapterBuilder(int64_t ft_rank, DType dtype) : ft_rank_(ft_rank), dtype_(dtype) {}

  // Splits the compressed weight `w` (F32 [out, in], as the checkpoint reads
  // it) of `module` ("model.layers.0.self_attn.q_proj", short name `name`):
  // returns the base weight and keeps the adapter pair. Modules without a
  // CALDERA record, or whose record has no factors (ldlq / rtn, as a
  // --target-bits checkpoint mixes them), pass through unchanged: all in the
  // base, no adapter pair.
  absl::StatusOr<Tensor> Split(const model::Checkpoint& ckpt, const std::string& module,
                               const std::string& name, Tensor w);

  // The adapter: adapter_config.json (text) and adapter_model.safetensors.
  // FAILED_PRECONDITION ("--format peft needs L and R ...") when no module had
  // factors.
  absl::StatusOr<std::string> ConfigJson(const std::string& base_model) const;
  absl::StatusOr<std::string> SafetensorsBytes() const;

 private:
  int64_t ft_rank_;
  DType dtype_;
  SafetensorsWriter writer_;
  std::map<std::string, int64_t> rank_of_;                           // module -> adapter rank
  std::map<std::string, std::vector<std::string>> modules_of_name_;  // q_proj -> modules
  std::map<std::string, int> count_of_name_;  // q_proj -> linears seen (with or without records)
};

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_PEFT_ADAPTER_H_
