// Task executors of a compression job, one function per task kind. They run on
// core + storage only (no RPC), so the caldera-worker daemon and the embedded
// mode of `calderactl compress` execute exactly the same code.
//
//   calibrate(l):    hidden states entering block l (or the calibration tokens
//                    for l = 0) -> the block's four normalised Hessians and the
//                    hidden states entering block l+1.
//   decompose(l, m): W of module m in block l and its Hessian -> one matrix
//                    artifact (the module's CALDERA record, optional TT-LoRA
//                    cores and its report; docs/format/matrix-artifact.md).
//   finalize:        artifacts + uncompressed tensors -> sharded checkpoint,
//                    config.json with quantization_config, index, report.json
//                    (written LAST), then scratch removal.
//
// All functions are thread-compatible; the checkpoint may be shared.
#ifndef CALDERA_WORKER_EXECUTORS_H_
#define CALDERA_WORKER_EXECUTORS_H_

#include <Eigen/Dense>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"
#include "core/format/module_report.h"
#include "core/model/checkpoint.h"
#include "core/model/model_config.h"
#include "core/tensor/dtype.h"
#include "job/job_spec.h"
#include "job/memory_estimate.h"
#include "storage/storage_options.h"

namespace caldera::worker {

using job::JobSpec;  // the one job spec (job/job_spec.h)

// Metrics of one decomposed matrix (one line of report.json); the format is
// owned by core/format/module_report.h.
using ModuleReport = format::ModuleReport;

// Byte counts of one task's object-storage traffic (for metrics).
struct IoCounts {
  int64_t bytes_read = 0;
  int64_t bytes_written = 0;
};

// Calibrates block `layer`: reads `input_uri` (the calibration tokens when
// layer == 0, else the hidden-states file written by calibrate(layer-1)), runs
// the block, writes the Hessians file to `hessians_uri` (F64 tensors q_proj,
// o_proj, gate_proj, down_proj, each Σ xᵀx / tokens; docs/format/hessians.md) and, unless
// `hidden_out_uri` is empty, the hidden states entering block layer+1.
//
// `sequential` (calibration_mode "sequential"): for layer > 0, `input_uri`
// holds the states entering block layer-1 and `previous_artifacts` the
// artifacts of its decompositions; block layer-1 runs with those compressed
// weights (rebuilt as eval rebuilds them; with --target-bits the candidates
// the block's allocation chooses, as FinalizeCheckpoint will) to make the states entering
// `layer`, which are the ones written to `hidden_out_uri`. Layer 0 writes the
// embedded tokens.
//
// Sharded calibration (`num_shards` > 1): layer 0 calibrates the samples of
// shard `shard` only (job::ShardSamples); later layers read that shard's
// hidden states, so nothing else changes. The Hessians file then holds the
// shard's moments normalised by its own token count.
//
// Streaming: hidden states are read (ranged reads) and written (a local
// temporary file, uploaded at the end; model_io/hidden_states_stream.h) in
// chunks of whole sequences of about kCalibrateChunkBytes, and the block runs
// one sequence at a time, so the task's memory is the block's weights, its
// Hessians and one chunk, whatever the number of tokens. `hidden_dtype` (F32
// or BF16) is how the states written to `hidden_out_uri` are stored; either
// is read back.
// (job::kCalibrateChunkBytes: job/memory_estimate.h sizes tasks with it).
// `compute`: where the block forward and its Hessians run
// (ComputeBackend::PrepareBlock; not owned; null: the CPU).
using job::kCalibrateChunkBytes;
absl::StatusOr<IoCounts> CalibrateLayer(
    const model::Checkpoint& checkpoint, int64_t layer, const std::string& input_uri,
    const std::string& hessians_uri, const std::string& hidden_out_uri,
    const storage::StorageOptions& options, const std::function<bool()>& cancelled,
    bool sequential = false, const std::vector<std::string>& previous_artifacts = {}, int shard = 0,
    int num_shards = 1, DType hidden_dtype = DType::kF32,
    backend::ComputeBackend* compute = nullptr);

// Reads the normalised Hessian named `name` ("q_proj") from a Hessians file
// (also the float32 files of older `calderactl calibrate`).
absl::StatusOr<Eigen::MatrixXd> ReadHessian(const std::string& hessians_uri,
                                            const std::string& name,
                                            const storage::StorageOptions& options);

// The Hessian named `name` of a sharded calibration: the files of shards
// 0 .. N-1 (`hessians_uris`, in shard order) combined as
//   H = (Σ_s tokens_s · H_s) / Σ_s tokens_s,
// summed in shard order (docs/format/hessians.md, "Shards"). One file is
// read exactly as ReadHessian reads it. `bytes_read` (may be null) gains the
// bytes of the matrices read.
absl::StatusOr<Eigen::MatrixXd> ReadShardedHessian(const std::vector<std::string>& hessians_uris,
                                                   const std::string& name,
                                                   const storage::StorageOptions& options,
                                                   int64_t* bytes_read = nullptr);

// The ModuleReport stored in the metadata of the artifact at `artifact_uri`.
absl::StatusOr<ModuleReport> ReadModuleReport(const std::string& artifact_uri,
                                              const storage::StorageOptions& options);

// Decomposes module `module` of block `layer`. `hessian` is the normalised
// (Σ xᵀx / tokens) n × n Hessian of the module's input. Writes the artifact to
// `artifact_uri`. With spec.target_bits > 0 it decomposes the window of
// budget candidates (job::BudgetWindow) and writes each one's artifact beside
// it (<stem>.c<i>.safetensors, same attempt directory) plus their list
// (<stem>.candidates.json); the artifact at `artifact_uri` is a copy of the
// candidate that fits B alone with the lowest weighted error. The block's
// choice among them is made later, by the readers below. `cancelled` (may be empty) is polled
// between steps; when it returns true the result is CANCELLED and nothing is written.
// `search_threads`: threads for the codeword searches (DecomposeOptions::threads).
// `backend`: where the dense kernels run (not owned; null: the CPU).
absl::StatusOr<ModuleReport> DecomposeModule(const model::Checkpoint& checkpoint, int64_t layer,
                                             const model::LinearModule& module,
                                             const Eigen::MatrixXd& hessian, const JobSpec& spec,
                                             const std::string& artifact_uri,
                                             const storage::StorageOptions& options,
                                             int search_threads, std::function<bool()> cancelled,
                                             backend::ComputeBackend* backend = nullptr);

// Writes the output checkpoint at spec.out from the artifacts of `modules`
// (with spec.target_bits > 0: per block, the candidates job::AllocateBits
// chooses from the lists beside them)
// (sorted here by layer and module, so the bytes do not depend on the order
// the decompositions finished in):
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
