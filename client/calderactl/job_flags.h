// The job flags shared by `calderactl submit` and `calderactl compress`
// (the same names, defaults and help text for both).
#ifndef CALDERA_CLIENT_CALDERACTL_JOB_FLAGS_H_
#define CALDERA_CLIENT_CALDERACTL_JOB_FLAGS_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace caldera::cli {

struct JobFlags {
  std::string model, calibration, out;
  std::string method = "caldera";
  int64_t rank = 64;
  int q_bits = 2;
  int lr_bits = 4;
  std::string quantizer = "e8p";
  int iters = 15;
  int lplr_iters = 10;
  uint64_t seed = 42;
  int64_t ttlora_rank = 0;
  std::string ttlora_init = "zero";
  std::vector<std::string> modules;  // empty = all seven linears
  std::string request_id;
};

// Registers the job flags on `cmd`; values land in `*flags` (must outlive cmd).
void AddJobFlags(CLI::App* cmd, JobFlags* flags);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_JOB_FLAGS_H_
