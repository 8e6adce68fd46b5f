// Task executors of a compression job, one function per task kind. They run on
// core + storage only (no RPC), so the caldera-worker daemon and the embedded
// mode of `calderactl compress` execute exactly the same code.
//
//   decompose(l, m): W of module m in block l and its Hessian -> one artifact
//                    (a safetensors file holding the module's CALDERA record and
//                    optional TT-LoRA cores) + metrics.
//   finalize:        artifacts + uncompressed tensors -> sharded checkpoint,
//                    config.json with quantization_config, index, report.json
//                    (written LAST), then scratch removal.
// Calibration (Hessians of block l) is model::CalibrateLayers in core.
//
// All functions are thread-compatible; the checkpoint may be shared.
#ifndef CALDERA_WORKER_EXECUTORS_H_
#define CALDERA_WORKER_EXECUTORS_H_

#include <Eigen/Dense>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/model_config.h"
#include "storage/storage_options.h"
#include "worker/job_spec.h"

namespace caldera::worker {

// Format version written into quantization_config (docs/format/checkpoint.md).
inline constexpr int kCheckpointFormatVersion = 1;

// Metrics of one decomposed matrix (one line of report.json).
struct ModuleReport {
  std::string name;      // "model.layers.0.self_attn.q_proj"
  std::string artifact;  // URI of the artifact file
  int64_t layer = 0;
  std::string module;  // "q_proj"
  int64_t rows = 0, cols = 0, rank = 0;
  double relative_error = 0;
  double weighted_relative_error = 0;
  double bits_per_param = 0;
  int64_t storage_bits = 0;
  double seconds = 0;
  int64_t ttlora_params = 0;
  double ttlora_weighted_error_before = 0, ttlora_weighted_error_after = 0;
};

// Decomposes module `module` of block `layer`. `hessian` is the normalised
// (Σ xᵀx / tokens) n × n Hessian of the module's input. Writes the artifact to
// `artifact_uri`. `cancelled` (may be empty) is polled between steps; when it
// returns true the result is CANCELLED and nothing is written.
absl::StatusOr<ModuleReport> DecomposeModule(const model::Checkpoint& checkpoint, int64_t layer,
                                             const model::LinearModule& module,
                                             const Eigen::MatrixXd& hessian, const JobSpec& spec,
                                             const std::string& artifact_uri,
                                             const storage::StorageOptions& options,
                                             std::function<bool()> cancelled);

// Writes the output checkpoint at spec.out from the artifacts of `modules`:
// one shard of uncompressed tensors (copied unchanged) and one shard per
// layer of records, config.json with quantization_config, the index, and
// report.json last. `seconds` is the job's wall time so far.
absl::Status FinalizeCheckpoint(const model::Checkpoint& checkpoint, const JobSpec& spec,
                                const std::vector<ModuleReport>& modules, double seconds,
                                const storage::StorageOptions& options);

// Removes every object under `prefix_uri` (scratch data). Missing is fine.
absl::Status RemovePrefix(const std::string& prefix_uri, const storage::StorageOptions& options);

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_EXECUTORS_H_
