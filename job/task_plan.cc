#include "job/task_plan.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/uri.h"

namespace caldera::job {

std::string ScratchPrefix(absl::string_view out, absl::string_view job_id) {
  return storage::JoinKey(out, absl::StrCat(".caldera-scratch/", job_id));
}

std::string AttemptDir(absl::string_view scratch_prefix, absl::string_view attempt_id) {
  const size_t slash = attempt_id.find('/');
  const absl::string_view task_and_attempt =
      slash == absl::string_view::npos ? attempt_id : attempt_id.substr(slash + 1);
  return storage::JoinKey(scratch_prefix, task_and_attempt);
}

v1::CalibrateTask MakeCalibrateTask(int layer, int num_layers, const std::string& input_uri,
                                    absl::string_view attempt_dir, int shard, int num_shards) {
  v1::CalibrateTask t;
  t.set_layer(layer);
  t.set_shard(shard);
  t.set_num_shards(num_shards);
  t.set_input_uri(input_uri);
  t.set_hessians_uri(storage::JoinKey(attempt_dir, "hessians.safetensors"));
  if (layer + 1 < num_layers) {
    t.set_hidden_states_uri(storage::JoinKey(attempt_dir, "hidden_states.safetensors"));
  }
  return t;
}

v1::DecomposeTask MakeDecomposeTask(int layer, const std::string& module,
                                    const std::string& hessians_uri,
                                    absl::string_view attempt_dir) {
  v1::DecomposeTask t;
  t.set_layer(layer);
  t.set_module(module);
  t.set_hessians_uri(hessians_uri);
  t.set_artifact_uri(storage::JoinKey(attempt_dir, absl::StrCat(module, ".safetensors")));
  return t;
}

v1::DecomposeTask MakeDecomposeTask(int layer, const std::string& module,
                                    const std::vector<std::string>& hessians_shard_uris,
                                    absl::string_view attempt_dir) {
  if (hessians_shard_uris.size() == 1) {
    return MakeDecomposeTask(layer, module, hessians_shard_uris[0], attempt_dir);
  }
  v1::DecomposeTask t = MakeDecomposeTask(layer, module, std::string(), attempt_dir);
  for (const std::string& u : hessians_shard_uris) t.add_hessians_shard_uris(u);
  return t;
}

v1::FinalizeTask MakeFinalizeTask(std::vector<std::string> artifact_uris,
                                  double job_elapsed_seconds, const std::string& scratch_prefix) {
  v1::FinalizeTask t;
  for (std::string& u : artifact_uris) t.add_artifact_uris(std::move(u));
  t.set_job_elapsed_seconds(job_elapsed_seconds);
  t.set_scratch_prefix(scratch_prefix);
  return t;
}

v1::FinetuneTask MakeFinetuneTask(int layer, std::vector<std::string> modules,
                                  std::vector<std::string> artifact_uris,
                                  std::vector<std::string> input_uris,
                                  const std::string& original_states_uri,
                                  absl::string_view attempt_dir, bool last_layer) {
  v1::FinetuneTask t;
  t.set_layer(layer);
  for (std::string& m : modules) t.add_modules(std::move(m));
  for (std::string& u : artifact_uris) t.add_artifact_uris(std::move(u));
  for (std::string& u : input_uris) t.add_input_uris(std::move(u));
  t.set_original_states_uri(original_states_uri);
  t.set_output_prefix(std::string(attempt_dir));
  t.set_last_layer(last_layer);
  return t;
}

std::string FinetuneBlockUri(const v1::FinetuneTask& task) {
  return storage::JoinKey(task.output_prefix(), "block.safetensors");
}

std::string FinetuneOriginalStatesUri(const v1::FinetuneTask& task) {
  return task.last_layer() ? std::string()
                           : storage::JoinKey(task.output_prefix(), "original_states.safetensors");
}

std::string FinetuneArtifactUri(const v1::FinetuneTask& task, absl::string_view module) {
  return storage::JoinKey(task.output_prefix(), absl::StrCat(module, ".safetensors"));
}

v1::TaskKind KindOf(const v1::Task& task) {
  switch (task.work_case()) {
    case v1::Task::kCalibrate:
      return v1::CALIBRATE;
    case v1::Task::kDecompose:
      return v1::DECOMPOSE;
    case v1::Task::kFinalize:
      return v1::FINALIZE;
    case v1::Task::kFinetune:
      return v1::FINETUNE;
    default:
      return v1::TASK_KIND_UNSPECIFIED;
  }
}

void SetResultOfTask(const v1::Task& task, v1::CompleteTaskRequest* request) {
  switch (task.work_case()) {
    case v1::Task::kCalibrate: {
      v1::CalibrateResult* r = request->mutable_calibrate();
      r->set_hessians_uri(task.calibrate().hessians_uri());
      r->set_hidden_states_uri(task.calibrate().hidden_states_uri());
      break;
    }
    case v1::Task::kDecompose:
      request->mutable_decompose()->set_artifact_uri(task.decompose().artifact_uri());
      break;
    case v1::Task::kFinalize:
      request->mutable_finalize();
      break;
    case v1::Task::kFinetune: {
      v1::FinetuneResult* r = request->mutable_finetune();
      r->set_block_uri(FinetuneBlockUri(task.finetune()));
      r->set_original_states_uri(FinetuneOriginalStatesUri(task.finetune()));
      for (const std::string& m : task.finetune().modules()) {
        r->add_artifact_uris(FinetuneArtifactUri(task.finetune(), m));
      }
      break;
    }
    default:
      request->clear_result();
      break;
  }
}

std::vector<std::string> StoredResultUris(const v1::CompleteTaskRequest& request) {
  switch (request.result_case()) {
    case v1::CompleteTaskRequest::kCalibrate:
      return {request.calibrate().hessians_uri(), request.calibrate().hidden_states_uri()};
    case v1::CompleteTaskRequest::kDecompose:
      return {request.decompose().artifact_uri()};
    case v1::CompleteTaskRequest::kFinetune: {
      std::vector<std::string> out = {request.finetune().block_uri(),
                                      request.finetune().original_states_uri()};
      out.insert(out.end(), request.finetune().artifact_uris().begin(),
                 request.finetune().artifact_uris().end());
      return out;
    }
    default:
      return {};
  }
}

std::string StoredHessiansUri(const std::vector<std::string>& calibrate_results) {
  return calibrate_results.empty() ? std::string() : calibrate_results[0];
}

std::string StoredHiddenStatesUri(const std::vector<std::string>& calibrate_results) {
  return calibrate_results.size() > 1 ? calibrate_results[1] : std::string();
}

std::string StoredArtifactUri(const std::vector<std::string>& decompose_results) {
  return decompose_results.empty() ? std::string() : decompose_results[0];
}

std::string StoredFinetuneBlockUri(const std::vector<std::string>& finetune_results) {
  return finetune_results.empty() ? std::string() : finetune_results[0];
}

std::string StoredOriginalStatesUri(const std::vector<std::string>& finetune_results) {
  return finetune_results.size() > 1 ? finetune_results[1] : std::string();
}

std::vector<std::string> StoredTunedArtifactUris(const std::vector<std::string>& finetune_results) {
  if (finetune_results.size() <= 2) return {};
  return std::vector<std::string>(finetune_results.begin() + 2, finetune_results.end());
}

std::string DescribeTask(v1::TaskKind kind, int layer, absl::string_view module, int shard,
                         int num_shards) {
  switch (kind) {
    case v1::CALIBRATE:
      if (num_shards > 1) {
        return absl::StrCat("calibrate layer ", layer, " shard ", shard + 1, "/", num_shards);
      }
      return absl::StrCat("calibrate layer ", layer);
    case v1::DECOMPOSE:
      return absl::StrCat("decompose layer ", layer, " ", module);
    case v1::FINETUNE:
      return absl::StrCat("finetune layer ", layer);
    default:
      return "finalize";
  }
}

}  // namespace caldera::job
