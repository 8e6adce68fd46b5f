#include "worker/task_runner.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/format/checkpoint_report.h"
#include "core/model/model_config.h"
#include "job/job_spec_proto.h"
#include "job/memory_estimate.h"
#include "job/task_plan.h"
#include "model_io/model_inputs.h"
#include "pipeline/budget_candidates.h"
#include "pipeline/calibrate_step.h"
#include "pipeline/decompose_step.h"
#include "pipeline/finalize_step.h"
#include "pipeline/finetune_block_step.h"
#include "storage/storage.h"
#include "worker/device_memory_check.h"
#include "worker/task_confinement.h"

namespace caldera::worker {

absl::StatusOr<TaskResult> TaskRunner::Run(const v1::Task& task,
                                           const std::function<bool()>& cancelled) {
  if (task.work_case() == v1::Task::WORK_NOT_SET) {
    return absl::InvalidArgumentError(
        absl::StrCat("task ", task.task_id(), " has a kind this worker does not know; upgrade it"));
  }
  absl::StatusOr<job::JobSpec> parsed = job::JobSpecFromProto(task.spec(), "");
  if (!parsed.ok()) return parsed.status();
  const job::JobSpec spec = *std::move(parsed);
  // Before anything is read or written (worker/task_confinement.h).
  if (absl::Status s = CheckTaskConfined(task, spec, options_); !s.ok()) return s;
  absl::StatusOr<const model::Checkpoint*> ckpt = models_.Get(spec.model, spec.share_heads);
  if (!ckpt.ok()) return ckpt.status();
  // A decompose task that runs on a GPU must fit in its free memory
  // (calibrate's block runner fails on its first allocation that does not
  // fit, RESOURCE_EXHAUSTED too; finalize runs on the CPU).
  if (task.work_case() == v1::Task::kDecompose && backend_ != nullptr) {
    absl::StatusOr<backend::DeviceMemoryInfo> mem = backend_->DeviceMemory();
    if (mem.ok()) {
      const int64_t need =
          job::EstimateDecomposeBytes((*ckpt)->config(), task.decompose().module());
      if (absl::Status s =
              CheckDeviceMemoryFits(task.task_id(), backend_->Name(), need, mem->free_bytes);
          !s.ok())
        return s;
    } else if (!absl::IsUnimplemented(mem.status())) {  // UNIMPLEMENTED: host memory
      return mem.status();
    }
  }
  switch (task.work_case()) {
    case v1::Task::kCalibrate:
      return RunCalibrate(**ckpt, spec, task.calibrate(), cancelled);
    case v1::Task::kDecompose:
      return RunDecompose(**ckpt, spec, task.decompose(), cancelled);
    case v1::Task::kFinetune:
      return RunFinetune(**ckpt, spec, task.finetune(), cancelled);
    case v1::Task::kFinalize:
      if (task.attempt_number() > 1 && EarlierFinalizeFinished(spec, task.finalize())) {
        // Its checkpoint is complete; only the scratch removal it began is left.
        (void)storage::RemovePrefix(task.finalize().scratch_prefix(), options_);
        TaskResult done;
        done.report.mutable_finalize();
        return done;
      }
      return RunFinalize(**ckpt, spec, task.finalize(), cancelled);
    default:
      return absl::InvalidArgumentError("unreachable: task without work");
  }
}

bool TaskRunner::EarlierFinalizeFinished(const job::JobSpec& spec,
                                         const v1::FinalizeTask& task) const {
  absl::StatusOr<std::string> text =
      storage::ReadObject(storage::JoinKey(spec.out, "report.json"), options_);
  if (!text.ok()) return false;
  absl::StatusOr<format::CheckpointReport> report =
      format::ParseCheckpointReport(*text, "report.json");
  if (!report.ok() || report->request_id != spec.request_id ||
      report->matrices.size() != static_cast<size_t>(task.artifact_uris_size())) {
    return false;
  }
  for (const std::string& uri : task.artifact_uris()) {
    absl::StatusOr<storage::StoreAndKey> sk = storage::OpenUri(uri, options_);
    if (!sk.ok()) return false;
    absl::StatusOr<storage::ObjectInfo> head = sk->store->Head(sk->key);
    if (!head.ok() && absl::IsNotFound(head.status())) return true;  // removed by that attempt
  }
  return false;  // every input is still there: finalizing again is safe and exact
}

pipeline::StepEnvironment TaskRunner::Environment(const std::function<bool()>& cancelled) const {
  pipeline::StepEnvironment env;
  env.storage = options_;
  env.cancelled = cancelled;
  env.compute = backend_;
  env.search_threads = search_threads_;
  return env;
}

absl::StatusOr<TaskResult> TaskRunner::RunCalibrate(const model::Checkpoint& ckpt,
                                                    const job::JobSpec& spec,
                                                    const v1::CalibrateTask& task,
                                                    const std::function<bool()>& cancelled) {
  pipeline::CalibrateRequest request;
  request.layer = task.layer();
  request.input_uri = task.input_uri();
  request.hessians_uri = task.hessians_uri();
  request.hidden_out_uri = task.hidden_states_uri();
  request.sequential = task.sequential();
  request.previous_artifacts.assign(task.previous_artifact_uris().begin(),
                                    task.previous_artifact_uris().end());
  request.previous_tuned_artifacts.assign(task.previous_tuned_artifact_uris().begin(),
                                          task.previous_tuned_artifact_uris().end());
  request.previous_block_uri = task.previous_block_uri();
  request.shard = task.shard();
  request.num_shards = task.num_shards() < 1 ? 1 : task.num_shards();
  request.hidden_dtype = spec.hidden_dtype;
  absl::StatusOr<pipeline::CalibrateResult> done =
      pipeline::Calibrate(ckpt, request, Environment(cancelled));
  if (!done.ok()) return done.status();
  TaskResult result;
  result.io = done->io;
  v1::CalibrateResult* out = result.report.mutable_calibrate();
  out->set_hessians_uri(task.hessians_uri());
  out->set_hidden_states_uri(task.hidden_states_uri());
  return result;
}

absl::StatusOr<TaskResult> TaskRunner::RunDecompose(const model::Checkpoint& ckpt,
                                                    const job::JobSpec& spec,
                                                    const v1::DecomposeTask& task,
                                                    const std::function<bool()>& cancelled) {
  pipeline::DecomposeRequest request;
  request.layer = task.layer();
  request.module = task.module();
  if (task.hessians_shard_uris().empty()) {
    request.hessians_uris = {task.hessians_uri()};
  } else {
    request.hessians_uris.assign(task.hessians_shard_uris().begin(),
                                 task.hessians_shard_uris().end());
  }
  request.spec = spec;
  request.artifact_uri = task.artifact_uri();
  absl::StatusOr<pipeline::DecomposeResult> done =
      pipeline::Decompose(ckpt, request, Environment(cancelled));
  if (!done.ok()) return done.status();
  TaskResult result;
  result.io = done->io;
  v1::MatrixError* e = result.report.add_matrix_errors();
  e->set_layer(task.layer());
  e->set_module(task.module());
  e->set_weighted_relative_error(done->report.weighted_relative_error);
  result.report.mutable_decompose()->set_artifact_uri(task.artifact_uri());
  return result;
}

absl::StatusOr<TaskResult> TaskRunner::RunFinetune(const model::Checkpoint& ckpt,
                                                   const job::JobSpec& spec,
                                                   const v1::FinetuneTask& task,
                                                   const std::function<bool()>& cancelled) {
  if (task.modules_size() != task.artifact_uris_size()) {
    return absl::InvalidArgumentError("finetune task: one module name per artifact is needed");
  }
  pipeline::FinetuneBlockRequest request;
  request.spec = spec;
  request.layer = task.layer();
  request.artifact_uris.assign(task.artifact_uris().begin(), task.artifact_uris().end());
  request.input_uris.assign(task.input_uris().begin(), task.input_uris().end());
  request.original_states_uri = task.original_states_uri();
  for (const std::string& m : task.modules()) {
    request.tuned_artifact_uris.push_back(job::FinetuneArtifactUri(task, m));
  }
  request.block_uri = job::FinetuneBlockUri(task);
  request.original_states_out_uri = job::FinetuneOriginalStatesUri(task);
  absl::StatusOr<pipeline::FinetuneBlockResult> done =
      pipeline::FinetuneBlock(ckpt, request, Environment(cancelled));
  if (!done.ok()) return done.status();
  TaskResult result;
  result.io = done->io;
  v1::FinetuneResult* out = result.report.mutable_finetune();
  out->set_block_uri(request.block_uri);
  out->set_original_states_uri(request.original_states_out_uri);
  for (const std::string& u : request.tuned_artifact_uris) out->add_artifact_uris(u);
  out->set_holdout_before(done->report.holdout_before);
  out->set_holdout_after(done->report.holdout_after);
  out->set_steps(static_cast<int32_t>(done->report.steps));
  return result;
}

absl::StatusOr<TaskResult> TaskRunner::RunFinalize(const model::Checkpoint& ckpt,
                                                   const job::JobSpec& spec,
                                                   const v1::FinalizeTask& task,
                                                   const std::function<bool()>& cancelled) {
  TaskResult result;
  pipeline::FinalizeRequest request;
  request.spec = spec;
  request.seconds = task.job_elapsed_seconds();
  request.tuned_artifacts.assign(task.tuned_artifact_uris().begin(),
                                 task.tuned_artifact_uris().end());
  request.finetune_blocks.assign(task.finetune_block_uris().begin(),
                                 task.finetune_block_uris().end());
  for (const std::string& uri : task.artifact_uris()) {
    if (cancelled && cancelled()) return absl::CancelledError("the job was cancelled");
    absl::StatusOr<format::ModuleReport> r = pipeline::ReadModuleReport(uri, options_);
    if (!r.ok()) return r.status();
    result.io.bytes_read += r->storage_bits / 8;
    request.modules.push_back(*std::move(r));
  }
  if (absl::Status s = pipeline::Finalize(ckpt, request, Environment(cancelled)); !s.ok()) {
    return s;
  }
  // Scratch data is no longer needed once report.json is written.
  (void)storage::RemovePrefix(task.scratch_prefix(), options_);
  result.report.mutable_finalize();
  return result;
}

}  // namespace caldera::worker
