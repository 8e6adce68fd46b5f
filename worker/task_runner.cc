#include "worker/task_runner.h"

#include "absl/strings/str_cat.h"
#include "core/model/model_config.h"
#include "storage/model_inputs.h"
#include "worker/job_spec_proto.h"

namespace caldera::worker {

absl::StatusOr<const model::Checkpoint*> TaskRunner::Model(const std::string& uri) {
  if (model_ == nullptr || model_uri_ != uri) {
    model_.reset();
    absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
        storage::OpenCheckpointAt(uri, options_);
    if (!ckpt.ok()) return ckpt.status();
    model_ = *std::move(ckpt);
    model_uri_ = uri;
  }
  return model_.get();
}

absl::StatusOr<TaskResult> TaskRunner::Run(const v1::Task& task,
                                           const std::function<bool()>& cancelled) {
  const JobSpec spec = JobSpecFromProto(task.spec(), "");
  absl::StatusOr<const model::Checkpoint*> ckpt = Model(spec.model);
  if (!ckpt.ok()) return ckpt.status();
  TaskResult result;
  switch (task.kind()) {
    case v1::CALIBRATE: {
      if (task.input_uris_size() != 1 || task.output_uris_size() != 2) {
        return absl::InvalidArgumentError("calibrate task needs 1 input and 2 output URIs");
      }
      absl::StatusOr<IoCounts> io =
          CalibrateLayer(**ckpt, task.layer(), task.input_uris(0), task.output_uris(0),
                         task.output_uris(1), options_, cancelled);
      if (!io.ok()) return io.status();
      result.io = *io;
      result.result_uris.assign(task.output_uris().begin(), task.output_uris().end());
      return result;
    }
    case v1::DECOMPOSE: {
      if (task.input_uris_size() != 1 || task.output_uris_size() != 1) {
        return absl::InvalidArgumentError("decompose task needs 1 input and 1 output URI");
      }
      const model::LinearModule* module = nullptr;
      for (const model::LinearModule& m : model::kLinearModules) {
        if (task.module() == m.name) module = &m;
      }
      if (module == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unknown module ", task.module()));
      }
      absl::StatusOr<Eigen::MatrixXd> h =
          ReadHessian(task.input_uris(0), module->hessian, options_);
      if (!h.ok()) return h.status();
      result.io.bytes_read += h->size() * static_cast<int64_t>(sizeof(double));
      absl::StatusOr<ModuleReport> rep =
          DecomposeModule(**ckpt, task.layer(), *module, *h, spec, task.output_uris(0), options_,
                          search_threads_, cancelled);
      if (!rep.ok()) return rep.status();
      result.io.bytes_read += rep->rows * rep->cols * 4;
      result.io.bytes_written += rep->storage_bits / 8;
      v1::MatrixError e;
      e.set_layer(task.layer());
      e.set_module(task.module());
      e.set_weighted_error(rep->weighted_relative_error);
      result.matrix_errors.push_back(e);
      result.result_uris.push_back(task.output_uris(0));
      return result;
    }
    case v1::FINALIZE: {
      std::vector<ModuleReport> reports;
      for (const std::string& uri : task.input_uris()) {
        if (cancelled && cancelled()) return absl::CancelledError("the job was cancelled");
        absl::StatusOr<ModuleReport> r = ReadModuleReport(uri, options_);
        if (!r.ok()) return r.status();
        result.io.bytes_read += r->storage_bits / 8;
        reports.push_back(*std::move(r));
      }
      if (absl::Status s =
              FinalizeCheckpoint(**ckpt, spec, reports, task.job_elapsed_seconds(), options_);
          !s.ok()) {
        return s;
      }
      // Scratch data is no longer needed once report.json is written.
      (void)RemovePrefix(task.scratch_prefix(), options_);
      return result;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("task kind ", task.kind(), " is unknown to this worker; upgrade it"));
  }
}

}  // namespace caldera::worker
