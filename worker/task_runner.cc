#include "worker/task_runner.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/format/checkpoint_report.h"
#include "core/model/model_config.h"
#include "job/job_spec_proto.h"
#include "job/memory_estimate.h"
#include "model_io/model_inputs.h"
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
  const job::JobSpec spec = job::JobSpecFromProto(task.spec(), "");
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
    case v1::Task::kFinalize:
      if (task.attempt_number() > 1 && EarlierFinalizeFinished(spec, task.finalize())) {
        // Its checkpoint is complete; only the scratch removal it began is left.
        (void)RemovePrefix(task.finalize().scratch_prefix(), options_);
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

absl::StatusOr<TaskResult> TaskRunner::RunCalibrate(const model::Checkpoint& ckpt,
                                                    const job::JobSpec& spec,
                                                    const v1::CalibrateTask& task,
                                                    const std::function<bool()>& cancelled) {
  const std::vector<std::string> previous(task.previous_artifact_uris().begin(),
                                          task.previous_artifact_uris().end());
  absl::StatusOr<IoCounts> io =
      CalibrateLayer(ckpt, task.layer(), task.input_uri(), task.hessians_uri(),
                     task.hidden_states_uri(), options_, cancelled, task.sequential(), previous,
                     task.shard(), task.num_shards() < 1 ? 1 : task.num_shards(),
                     spec.hidden_dtype == "bf16" ? DType::kBF16 : DType::kF32, backend_);
  if (!io.ok()) return io.status();
  TaskResult result;
  result.io = *io;
  v1::CalibrateResult* out = result.report.mutable_calibrate();
  out->set_hessians_uri(task.hessians_uri());
  out->set_hidden_states_uri(task.hidden_states_uri());
  return result;
}

absl::StatusOr<TaskResult> TaskRunner::RunDecompose(const model::Checkpoint& ckpt,
                                                    const job::JobSpec& spec,
                                                    const v1::DecomposeTask& task,
                                                    const std::function<bool()>& cancelled) {
  const model::LinearModule* module = nullptr;
  for (const model::LinearModule& m : model::kLinearModules) {
    if (task.module() == m.name) module = &m;
  }
  if (module == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown module ", task.module()));
  }
  TaskResult result;
  const std::vector<std::string> hessians =
      task.hessians_shard_uris().empty()
          ? std::vector<std::string>{task.hessians_uri()}
          : std::vector<std::string>(task.hessians_shard_uris().begin(),
                                     task.hessians_shard_uris().end());
  absl::StatusOr<Eigen::MatrixXd> h =
      ReadShardedHessian(hessians, module->hessian, options_, &result.io.bytes_read);
  if (!h.ok()) return h.status();
  absl::StatusOr<ModuleReport> rep =
      DecomposeModule(ckpt, task.layer(), *module, *h, spec, task.artifact_uri(), options_,
                      search_threads_, cancelled, backend_);
  if (!rep.ok()) return rep.status();
  result.io.bytes_read += rep->rows * rep->cols * 4;
  result.io.bytes_written += rep->storage_bits / 8;
  v1::MatrixError* e = result.report.add_matrix_errors();
  e->set_layer(task.layer());
  e->set_module(task.module());
  e->set_weighted_relative_error(rep->weighted_relative_error);
  result.report.mutable_decompose()->set_artifact_uri(task.artifact_uri());
  return result;
}

absl::StatusOr<TaskResult> TaskRunner::RunFinalize(const model::Checkpoint& ckpt,
                                                   const job::JobSpec& spec,
                                                   const v1::FinalizeTask& task,
                                                   const std::function<bool()>& cancelled) {
  TaskResult result;
  std::vector<ModuleReport> reports;
  for (const std::string& uri : task.artifact_uris()) {
    if (cancelled && cancelled()) return absl::CancelledError("the job was cancelled");
    absl::StatusOr<ModuleReport> r = ReadModuleReport(uri, options_);
    if (!r.ok()) return r.status();
    result.io.bytes_read += r->storage_bits / 8;
    reports.push_back(*std::move(r));
  }
  if (absl::Status s =
          FinalizeCheckpoint(ckpt, spec, reports, task.job_elapsed_seconds(), options_);
      !s.ok()) {
    return s;
  }
  // Scratch data is no longer needed once report.json is written.
  (void)RemovePrefix(task.scratch_prefix(), options_);
  result.report.mutable_finalize();
  return result;
}

}  // namespace caldera::worker
