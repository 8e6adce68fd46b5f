// The typed task plan's vocabulary (proto caldera.v1.Task's `work` oneof):
// where each task kind reads and writes, named in one place.
//
// Scratch naming: every key a task writes is attempt-unique,
//   <out>/.caldera-scratch/<job id>/<task>/<attempt>/<file>
// so a stale or retried attempt never overwrites the attempt that won.
//
// Committed results: the coordinator stores the keys a task reported as one
// list of URIs per task (the `result_uris` column of its state database, a
// layout kept from the positional protocol so that a coordinator restarted on
// an old data directory continues its jobs):
//   calibrate: [hessians_uri, hidden_states_uri]   decompose: [artifact_uri]
//   finalize:  []
//   finetune:  [block_uri, original_states_uri, tuned artifact_uri...]
// StoredResultUris writes that layout and the Stored*Uri accessors read it;
// nothing else indexes the list.
#ifndef CALDERA_JOB_TASK_PLAN_H_
#define CALDERA_JOB_TASK_PLAN_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "caldera/v1/jobs.pb.h"
#include "caldera/v1/worker.pb.h"

namespace caldera::job {

// <out>/.caldera-scratch/<job_id>: everything a job's tasks write before
// finalize; removed by finalize.
std::string ScratchPrefix(absl::string_view out, absl::string_view job_id);

// The attempt-unique directory of attempt "<job>/<task>/<attempt>":
// <scratch_prefix>/<task>/<attempt>.
std::string AttemptDir(absl::string_view scratch_prefix, absl::string_view attempt_id);

// calibrate(layer, shard) of a model with `num_layers` blocks reading
// `input_uri` (the calibration tokens for layer 0, else calibrate(layer-1,
// shard)'s hidden states), writing under `attempt_dir`; the last layer writes
// no hidden states. Shard 0 of 1 is the unsharded task.
v1::CalibrateTask MakeCalibrateTask(int layer, int num_layers, const std::string& input_uri,
                                    absl::string_view attempt_dir, int shard = 0,
                                    int num_shards = 1);

// decompose(layer, module) reading `hessians_uri`, writing under `attempt_dir`.
v1::DecomposeTask MakeDecomposeTask(int layer, const std::string& module,
                                    const std::string& hessians_uri, absl::string_view attempt_dir);

// decompose(layer, module) of a sharded job: the Hessians files of the
// shards, in shard order (one file is the unsharded task above).
v1::DecomposeTask MakeDecomposeTask(int layer, const std::string& module,
                                    const std::vector<std::string>& hessians_shard_uris,
                                    absl::string_view attempt_dir);

// finalize over `artifact_uris`.
v1::FinalizeTask MakeFinalizeTask(std::vector<std::string> artifact_uris,
                                  double job_elapsed_seconds, const std::string& scratch_prefix);

// finetune(layer) reading the block's decompose `artifact_uris` (of
// `modules`, in the same order), the states
// entering it (`input_uris`, in shard order) and the original model's states
// entering it (`original_states_uri`, "" for layer 0), writing under
// `attempt_dir`: <dir>/<module>.safetensors per tuned module, <dir>/block.safetensors
// and, unless `last_layer`, <dir>/original_states.safetensors.
v1::FinetuneTask MakeFinetuneTask(int layer, std::vector<std::string> modules,
                                  std::vector<std::string> artifact_uris,
                                  std::vector<std::string> input_uris,
                                  const std::string& original_states_uri,
                                  absl::string_view attempt_dir, bool last_layer);
// Where finetune writes the block file / the original states / a module's tuned artifact.
std::string FinetuneBlockUri(const v1::FinetuneTask& task);
std::string FinetuneOriginalStatesUri(const v1::FinetuneTask& task);
std::string FinetuneArtifactUri(const v1::FinetuneTask& task, absl::string_view module);

// The kind of `task`'s work (TASK_KIND_UNSPECIFIED when none is set, e.g.
// from a newer coordinator with a kind this build does not know).
v1::TaskKind KindOf(const v1::Task& task);

// Sets `request`'s result to every key `task` names for writing (what a
// worker reports after running the task; the task runner does this per kind).
void SetResultOfTask(const v1::Task& task, v1::CompleteTaskRequest* request);

// The keys reported in `request` in the stored layout above.
std::vector<std::string> StoredResultUris(const v1::CompleteTaskRequest& request);

// Readers of the stored layout; "" when the entry is missing.
std::string StoredHessiansUri(const std::vector<std::string>& calibrate_results);
std::string StoredHiddenStatesUri(const std::vector<std::string>& calibrate_results);
std::string StoredArtifactUri(const std::vector<std::string>& decompose_results);
std::string StoredFinetuneBlockUri(const std::vector<std::string>& finetune_results);
std::string StoredOriginalStatesUri(const std::vector<std::string>& finetune_results);
std::vector<std::string> StoredTunedArtifactUris(const std::vector<std::string>& finetune_results);

// "decompose layer 3 q_proj" / "calibrate layer 3" / "finetune layer 3" / "finalize"; a calibrate
// task of a sharded job (num_shards > 1): "calibrate layer 3 shard 2/4"
// (1-based).
std::string DescribeTask(v1::TaskKind kind, int layer, absl::string_view module, int shard = 0,
                         int num_shards = 1);

}  // namespace caldera::job

#endif  // CALDERA_JOB_TASK_PLAN_H_
