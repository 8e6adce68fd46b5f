// calderactl export: rebuilds a plain dense checkpoint (dense, hf) or an hf
// base plus a PEFT LoRA adapter (peft) from a CALDERA checkpoint
// (operations/export.h says what each format holds).
#include <cstdio>

#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "operations/export.h"
#include "storage/storage.h"

namespace caldera::cli {

void AddExportCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<operations::ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Rebuild a dense checkpoint from a CALDERA checkpoint: dense (float32 linears) or hf "
      "(a Hugging Face checkpoint that transformers, vLLM and lm-eval load) or peft (an hf base "
      "plus a PEFT LoRA adapter of L and R)");
  cmd->add_option(
      "--format", f->format,
      "output format: dense (default) | hf | peft | compressed-tensors (a checkpoint "
      "made with --serve vllm at its compressed size, for transformers and vLLM, L·R "
      "as a LoRA adapter) | gguf (one .gguf file for llama.cpp; --out names the file; int Q at "
      "group 32 as Q4_0 / Q8_0, exactly)");
  cmd->add_option("--ft-rank", f->ft_rank,
                  "peft: adapter rank (the first K columns of L / rows of R; default: full rank)");
  cmd->add_option("--dtype", f->dtype,
                  "hf, peft: dtype of the linears (and adapter), bf16 | f16 | f32 (default: the "
                  "model's torch_dtype for hf, f32 for peft); compressed-tensors: f16 | f32 of "
                  "the scales, dense tensors and adapter (default f32 for a float32 model, else "
                  "f16); gguf: f16 | f32 of the embeddings, lm_head and dense linears (same "
                  "default)");
  cmd->add_flag("--dense-fallback", f->dense_fallback,
                "gguf: write the linears no GGUF block type holds exactly (another grid, group "
                "size or column count, Hadamard, L·R) dense in --dtype (Q + L·R merged) instead of "
                "refusing them");
  cmd->add_flag("--merge-lr", f->merge_lr,
                "gguf: write linears with L·R dense in --dtype (Q + L·R merged) instead of Q in "
                "its block type plus L·R in the LoRA adapter OUT.lora.gguf");
  cmd->add_option("--model", f->model, "CALDERA checkpoint directory URI")->required();
  cmd->add_option("--out", f->out, "output directory URI")->required();
  cmd->callback([f, exit_code] {
    const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
    absl::StatusOr<operations::ExportResult> r = operations::Export(*f, options, {});
    *exit_code = r.ok() ? kExitOk : ReportError("export", r.status());
    if (r.ok()) {
      std::printf("export: %s checkpoint written to %s\n", f->format.c_str(), f->out.c_str());
      if (!r->adapter.empty())
        std::printf("export: LoRA adapter written to %s\n", r->adapter.c_str());
    }
  });
}

}  // namespace caldera::cli
