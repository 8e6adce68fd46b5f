// Submit-time validation of a job: everything that can be checked before any
// worker time is spent, reading only config.json, safetensors headers and the
// calibration token ids, plus a probe write under the output URI. The
// settings alone are checked by ValidateJobSpec (job_spec.h), first.
#ifndef CALDERA_JOB_JOB_VALIDATION_H_
#define CALDERA_JOB_JOB_VALIDATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model_config.h"
#include "job/job_spec.h"
#include "storage/storage_options.h"

namespace caldera::job {

// Plan-size limits: a config.json claiming more layers, or a plan with more
// tasks, is refused at submit with a message naming the limit.
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxPlanTasks = 100000;

// What the planner needs to know about a valid job.
struct JobShape {
  int num_layers = 0;
  std::vector<std::string> modules;  // selected linears, kLinearModules order
  int64_t samples = 0;               // calibration sequences
  int64_t seq_len = 0;               // tokens per sequence
  model::ModelConfig config;         // the model's config.json (for memory estimates)
};

// INVALID_ARGUMENT (the message names the problem and the fix) for a bad
// setting, a missing or unreadable model, an unsupported architecture, a
// corrupt or truncated safetensors header, a missing weight or one whose shape
// differs from what config.json implies (every tensor the plan reads: the
// embedding, norms, linears and biases; the first bad one is named), a config
// beyond kMaxLayers or a plan beyond kMaxPlanTasks, a rank larger than a matrix, calibration tokens
// that do not fit the model, an output that cannot be written or that overlaps an input
// (job/output_safety.h). PERMISSION_DENIED when options.allowed_roots is set and a URI
// lies outside every root (storage/allowed_roots.h). FAILED_PRECONDITION when the
// output holds files not written by caldera and the spec lacks overwrite. UNAVAILABLE
// (retryable) when storage is down.
absl::StatusOr<JobShape> ValidateJob(const JobSpec& spec, const storage::StorageOptions& options);

}  // namespace caldera::job

#endif  // CALDERA_JOB_JOB_VALIDATION_H_
