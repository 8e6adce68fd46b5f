#include "client/calderactl/job_flags.h"

namespace caldera::cli {

void AddJobFlags(CLI::App* cmd, JobFlags* f) {
  cmd->add_option("--model", f->model,
                  "Input model: Hugging Face directory URI (path, file://, s3://)")
      ->required();
  cmd->add_option("--calibration", f->calibration,
                  "Calibration tokens URI (safetensors, int32 input_ids [samples, seq_len])")
      ->required();
  cmd->add_option("--out", f->out, "Output checkpoint directory URI")->required();
  cmd->add_option("--method", f->method, "caldera | ldlq | rtn (default caldera)");
  cmd->add_option("--rank", f->rank, "rank k of L and R (default 64; caldera only)");
  cmd->add_option("--q-bits", f->q_bits, "bits of Q (default 2)");
  cmd->add_option("--lr-bits", f->lr_bits, "bits of L and R (default 4; >= 16 keeps floats)");
  cmd->add_option("--quantizer", f->quantizer, "e8p | uniform (default e8p)");
  cmd->add_option("--iters", f->iters, "outer CALDERA iterations (default 15)");
  cmd->add_option("--lplr-iters", f->lplr_iters, "inner L/R refinements (default 10)");
  cmd->add_option("--seed", f->seed, "seed of the random Hadamard signs (default 42)");
  cmd->add_option("--ttlora-rank", f->ttlora_rank, "TT-LoRA bond rank (default 0 = no adapter)");
  cmd->add_option("--ttlora-init", f->ttlora_init, "zero | residual (default zero)");
  cmd->add_option("--modules", f->modules,
                  "linears to compress, comma separated (default all: "
                  "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)")
      ->delimiter(',');
  cmd->add_option("--request-id", f->request_id,
                  "client request id: submitting the same id twice creates one job");
}

}  // namespace caldera::cli
