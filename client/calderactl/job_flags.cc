#include "client/calderactl/job_flags.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/calderactl/calibration_text.h"
#include "core/model/model_config.h"

namespace caldera::cli {

void AddJobFlags(CLI::App* cmd, JobFlags* f) {
  const job::JobSpec d;  // the defaults
  job::JobSpec* s = &f->spec;
  cmd->add_option("--model", s->model,
                  "Input model: Hugging Face directory URI (path, file://, s3://)")
      ->required();
  cmd->add_option("--calibration", s->calibration,
                  "Calibration tokens URI (safetensors, int32 input_ids [samples, seq_len]); "
                  "required unless --calibration-text is given");
  AddCalibrationTextFlags(cmd, &f->calibration_text);
  cmd->add_option("--out", s->out, "Output checkpoint directory URI")->required();
  cmd->add_option("--method", f->names.method,
                  absl::StrCat("caldera | ldlq | rtn (default ", decompose::MethodName(d.method),
                               "; ldlq with --serve llamacpp)"));
  cmd->add_option("--rank", s->rank,
                  absl::StrCat("rank k of L and R (default ", d.rank,
                               ": min(m, n) / 16 per matrix, 1 to 64; caldera only)"));
  f->q_bits = cmd->add_option(
      "--q-bits", s->q_bits,
      absl::StrCat("bits of Q (default ", d.q_bits, "; 4 with --serve vllm or llamacpp)"));
  f->lr_bits = cmd->add_option("--lr-bits", s->lr_bits,
                               absl::StrCat("bits of L and R (default ", d.lr_bits,
                                            "; >= 16 keeps floats; 16 with --serve vllm)"));
  cmd->add_option(
      "--quantizer", f->names.quantizer,
      absl::StrCat("e8p | uniform | int | q4k (default ", quant::QuantizerName(d.quantizer),
                   "; int with --serve vllm or llamacpp: q·scale, the grid vLLM "
                   "and GGUF's Q4_0/Q8_0 hold; q4k: llama.cpp's Q4_K grid, rows of a "
                   "multiple of 256 columns)"));
  cmd->add_option("--serve", f->names.serve,
                  "none | vllm | llamacpp: restrict every setting (and the --target-bits "
                  "ladder) to what `export --format compressed-tensors` writes and vLLM's int "
                  "kernels run (vllm), or to what `export --format gguf` writes in llama.cpp's "
                  "exact block types Q4_0 / Q8_0 (llamacpp) (default none)");
  f->q_group_size = cmd->add_option(
      "--q-group-size", s->q_group_size,
      absl::StrCat("columns per fp16 scale of the uniform quantizer (default ", d.q_group_size,
                   "; 32 = GPTQ's g32, +0.5 bits; 32 with --serve llamacpp)"));
  cmd->add_option(
      "--incoherence", f->names.incoherence,
      absl::StrCat("auto | rht | none: randomized Hadamard transform before the "
                   "decomposition (default ",
                   job::IncoherenceName(d.incoherence), ": rht for e8p, none for uniform)"));
  cmd->add_option("--iters", s->iters,
                  absl::StrCat("outer CALDERA iterations (default ", d.iters, ")"));
  cmd->add_option("--lplr-iters", s->lplr_iters,
                  absl::StrCat("inner L/R refinements (default ", d.lplr_iters, ")"));
  cmd->add_option("--seed", s->seed,
                  absl::StrCat("seed of the random Hadamard signs (default ", d.seed, ")"));
  cmd->add_option("--ttlora-rank", s->ttlora_rank,
                  absl::StrCat("TT-LoRA bond rank (default ", d.ttlora_rank,
                               d.ttlora_rank == 0 ? " = no adapter)" : ")"));
  cmd->add_option(
      "--ttlora-init", f->names.ttlora_init,
      absl::StrCat("zero | residual (default ", ttlora::InitModeName(d.ttlora_init), ")"));
  cmd->add_option("--ttlora-alpha", s->ttlora_alpha,
                  absl::StrCat("TT-LoRA adapter scale alpha (default ", d.ttlora_alpha, ")"));
  cmd->add_option("--calibration-mode", f->names.calibration_mode,
                  absl::StrCat("original | sequential: calibrate each layer on the original "
                               "model's activations (all layers in parallel) or on the outputs "
                               "of the already compressed layers before it (default ",
                               job::CalibrationModeName(d.calibration_mode), ")"));
  cmd->add_option("--calibration-shards", s->calibration_shards,
                  absl::StrCat("split the calibration samples into N contiguous shards, one "
                               "calibrate task per layer and shard (run in parallel on different "
                               "workers; Hessians equal up to summation order; default ",
                               d.calibration_shards, ")"))
      ->check(CLI::Range(1, job::kMaxCalibrationShards));
  cmd->add_option("--finetune-steps", s->finetune_steps,
                  absl::StrCat("recovery fine-tuning: Adam steps per block on Q's scales and "
                               "rounding, L, R and the norms against the original model's states "
                               "after the block, a finetune task per block after its "
                               "decompositions (default ",
                               d.finetune_steps, " = off; 200 to 1000 is usual)"));
  cmd->add_option("--finetune-lr", s->finetune_lr,
                  absl::StrCat("fine-tuning learning rate, relative to each tensor's RMS, in (0, "
                               "1] (default ",
                               d.finetune_lr, ")"));
  cmd->add_option("--finetune-holdout", s->finetune_holdout,
                  absl::StrCat("share of the calibration sequences held out to stop early and to "
                               "report, in (0, ",
                               job::kMaxFinetuneHoldout, "] (default ", d.finetune_holdout, ")"));
  cmd->add_option("--target-bits", s->target_bits,
                  "bits per parameter each block's matrices may use on average (2 to 8; default "
                  "0 = off): picks per matrix the LDLQ/CALDERA settings with the lowest total "
                  "weighted error that fit, instead of --method/--quantizer/--q-bits/--rank/"
                  "--q-group-size");
  cmd->add_option("--hidden-dtype", f->names.hidden_dtype,
                  absl::StrCat("f32 | bf16: how calibrate tasks store the hidden states handed "
                               "between layers (bf16: half the scratch bytes; default ",
                               job::HiddenDTypeName(d.hidden_dtype), ")"));
  std::vector<std::string> all;
  for (const model::LinearModule& m : model::kLinearModules) all.push_back(m.name);
  cmd->add_option("--modules", s->modules,
                  absl::StrCat("linears to compress, comma separated (default all: ",
                               absl::StrJoin(all, ","), ")"))
      ->delimiter(',');
  cmd->add_option("--share-heads", s->share_heads,
                  absl::StrCat("DirectShare: the fraction in [0, 1] of attention KV groups that "
                               "reuse the weights of the most similar group of an earlier layer, "
                               "stored and decomposed once (default ",
                               d.share_heads, " = off)"));
  cmd->add_flag("--overwrite", s->overwrite,
                "write into an --out that holds files not written by caldera (replacing those "
                "with the same names); an --out overlapping --model or --calibration is refused "
                "even so");
  cmd->add_option("--request-id", s->request_id,
                  "client request id: submitting the same id twice creates one job");
}

absl::Status ParseJobFlagNames(JobFlags* f) {
  if (absl::Status s = job::ApplySettingNames(f->names, &f->spec); !s.ok()) return s;
  if (f->spec.serve == job::Serve::kLlamacpp) {
    // GGUF's Q4_0 from LDLQ: the served defaults (job_spec.h Serve).
    if (f->names.quantizer.empty()) f->spec.quantizer = quant::Quantizer::kInt;
    if (f->names.method.empty()) f->spec.method = decompose::Method::kLdlq;
    if (f->q_bits == nullptr || f->q_bits->count() == 0) f->spec.q_bits = 4;
    if (f->q_group_size == nullptr || f->q_group_size->count() == 0) f->spec.q_group_size = 32;
  }
  if (f->spec.serve == job::Serve::kVllm) {
    if (f->names.quantizer.empty()) f->spec.quantizer = quant::Quantizer::kInt;
    if (f->q_bits == nullptr || f->q_bits->count() == 0) f->spec.q_bits = 4;
    if (f->lr_bits == nullptr || f->lr_bits->count() == 0) f->spec.lr_bits = 16;
  }
  return absl::OkStatus();
}

}  // namespace caldera::cli
