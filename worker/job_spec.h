// JobSpec: the settings of one compression job (the "job flags" of calderactl
// submit / compress), with validation that names the bad flag and the fix.
#ifndef CALDERA_WORKER_JOB_SPEC_H_
#define CALDERA_WORKER_JOB_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/decompose/caldera.h"

namespace caldera::worker {

struct JobSpec {
  std::string model;               // Hugging Face directory URI (path, file://, s3://)
  std::string calibration;         // safetensors URI with int32 input_ids [samples, seq_len]
  std::string out;                 // output checkpoint directory URI
  std::string method = "caldera";  // caldera | ldlq | rtn
  int64_t rank = 64;
  int q_bits = 2;
  int lr_bits = 4;
  std::string quantizer = "e8p";  // e8p | uniform
  int iters = 15;
  int lplr_iters = 10;
  uint64_t seed = 42;
  int64_t ttlora_rank = 0;           // 0 = no adapter
  std::string ttlora_init = "zero";  // zero | residual
  std::vector<std::string> modules;  // empty = all seven linears of every block
  std::string request_id;
};

// Checks the settings that do not need the model (methods, bits, counts,
// module names). INVALID_ARGUMENT names the flag.
absl::Status ValidateJobSpec(const JobSpec& spec);

// True when `module` ("q_proj") is compressed by `spec`.
bool CompressesModule(const JobSpec& spec, const std::string& module);

// The core decomposition options for `spec`.
decompose::DecomposeOptions DecomposeOptionsFor(const JobSpec& spec);

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_JOB_SPEC_H_
