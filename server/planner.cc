#include "server/planner.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "job/job_spec.h"
#include "job/memory_estimate.h"
#include "job/task_plan.h"
#include "storage/uri.h"

namespace caldera::server {

std::vector<TaskRecord> PlanJob(const std::string& job_id, int num_layers,
                                const std::vector<std::string>& modules, int num_shards,
                                bool finetune) {
  std::vector<TaskRecord> tasks;
  auto add = [&](v1::TaskKind kind, int layer, int shard, const std::string& module,
                 std::string id) {
    TaskRecord t;
    t.id = absl::StrCat(job_id, "/", id);
    t.job_id = job_id;
    t.ord = static_cast<int32_t>(tasks.size());
    t.kind = kind;
    t.layer = layer;
    t.shard = shard;
    t.module = module;
    tasks.push_back(std::move(t));
  };
  for (int l = 0; l < num_layers; ++l) {
    if (num_shards <= 1) {
      add(v1::CALIBRATE, l, 0, "", absl::StrFormat("calibrate-%04d", l));
    } else {
      for (int s = 0; s < num_shards; ++s) {
        add(v1::CALIBRATE, l, s, "", absl::StrFormat("calibrate-%04d-s%03d", l, s));
      }
    }
    for (const std::string& m : modules) {
      add(v1::DECOMPOSE, l, 0, m, absl::StrFormat("decompose-%04d-%s", l, m));
    }
    if (finetune) add(v1::FINETUNE, l, 0, "", absl::StrFormat("finetune-%04d", l));
  }
  add(v1::FINALIZE, -1, 0, "", "finalize");
  return tasks;
}

std::vector<size_t> CalibrateIndex(const std::vector<TaskRecord>& tasks) {
  std::vector<size_t> index;
  std::vector<bool> seen;
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (tasks[i].kind != v1::CALIBRATE || tasks[i].layer < 0) continue;
    const size_t layer = static_cast<size_t>(tasks[i].layer);
    if (layer >= index.size()) {
      index.resize(layer + 1);
      seen.resize(layer + 1, false);
    }
    if (seen[layer]) continue;
    index[layer] = i;
    seen[layer] = true;
  }
  return index;
}

int ShardsOfLayer(const std::vector<TaskRecord>& tasks, const std::vector<size_t>& calibrate_index,
                  int layer) {
  int n = 0;
  for (size_t j = calibrate_index[layer];
       j < tasks.size() && tasks[j].kind == v1::CALIBRATE && tasks[j].layer == layer; ++j) {
    ++n;
  }
  return n;
}

namespace {

bool AllShardsDone(const std::vector<TaskRecord>& tasks, const std::vector<size_t>& calibrate_index,
                   int layer) {
  for (size_t j = calibrate_index[layer];
       j < tasks.size() && tasks[j].kind == v1::CALIBRATE && tasks[j].layer == layer; ++j) {
    if (tasks[j].state != v1::TASK_DONE) return false;
  }
  return true;
}

// calibrate(layer, shard), or calibrate(layer, 0) when the layer has fewer shards.
size_t ShardTask(const std::vector<TaskRecord>& tasks, const std::vector<size_t>& calibrate_index,
                 int layer, int shard) {
  const int n = ShardsOfLayer(tasks, calibrate_index, layer);
  return calibrate_index[layer] + static_cast<size_t>(shard < n ? shard : 0);
}

// The tasks after layer `layer`'s calibrate tasks up to the next layer's (its
// decompose tasks and its finetune task), as [begin, end) indices.
std::pair<size_t, size_t> LayerWork(const std::vector<TaskRecord>& tasks,
                                    const std::vector<size_t>& calibrate_index, int layer) {
  size_t begin = calibrate_index[layer];
  while (begin < tasks.size() && tasks[begin].kind == v1::CALIBRATE &&
         tasks[begin].layer == layer) {
    ++begin;
  }
  size_t end = static_cast<size_t>(layer) + 1 < calibrate_index.size() ? calibrate_index[layer + 1]
                                                                       : tasks.size();
  return {begin, end};
}

// finetune(layer)'s index, or tasks.size() when the plan has none.
size_t FinetuneTask(const std::vector<TaskRecord>& tasks,
                    const std::vector<size_t>& calibrate_index, int layer) {
  auto [begin, end] = LayerWork(tasks, calibrate_index, layer);
  for (size_t j = begin; j < end; ++j) {
    if (tasks[j].kind == v1::FINETUNE && tasks[j].layer == layer) return j;
  }
  return tasks.size();
}

}  // namespace

bool TaskIsReady(const std::vector<TaskRecord>& tasks, const std::vector<size_t>& calibrate_index,
                 size_t i, bool sequential) {
  const TaskRecord& t = tasks[i];
  switch (t.kind) {
    case v1::CALIBRATE: {
      if (t.layer == 0) return true;
      // Shard s continues from shard s of the layer before (its samples' states).
      if (tasks[ShardTask(tasks, calibrate_index, t.layer - 1, t.shard)].state != v1::TASK_DONE) {
        return false;
      }
      if (!sequential) return true;
      // The decompositions of layer - 1 sit between its calibrate tasks and ours.
      for (size_t j = calibrate_index[t.layer - 1] + 1; j < calibrate_index[t.layer]; ++j) {
        if ((tasks[j].kind == v1::DECOMPOSE || tasks[j].kind == v1::FINETUNE) &&
            tasks[j].state != v1::TASK_DONE) {
          return false;
        }
      }
      return true;
    }
    case v1::DECOMPOSE:
      return AllShardsDone(tasks, calibrate_index, t.layer);
    case v1::FINETUNE: {
      if (!AllShardsDone(tasks, calibrate_index, t.layer)) return false;
      auto [begin, end] = LayerWork(tasks, calibrate_index, t.layer);
      for (size_t j = begin; j < end; ++j) {
        if (tasks[j].kind == v1::DECOMPOSE && tasks[j].state != v1::TASK_DONE) return false;
      }
      if (t.layer == 0) return true;
      const size_t previous = FinetuneTask(tasks, calibrate_index, t.layer - 1);
      return previous == tasks.size() || tasks[previous].state == v1::TASK_DONE;
    }
    case v1::FINALIZE:
      for (size_t j = 0; j < tasks.size(); ++j) {
        if (j != i && tasks[j].state != v1::TASK_DONE) return false;
      }
      return true;
    default:
      return false;
  }
}

v1::Task BuildTask(const JobRecord& job, const std::vector<TaskRecord>& tasks,
                   const std::vector<size_t>& calibrate_index, const TaskRecord& t,
                   double job_elapsed_seconds) {
  v1::Task task;
  task.set_task_id(t.id);
  task.set_attempt_id(t.lease_attempt);
  task.set_attempt_number(t.attempts);
  task.set_job_name(absl::StrCat("jobs/", job.id));
  *task.mutable_spec() = job.spec;
  const std::string scratch = job::ScratchPrefix(job.spec.out(), job.id);
  const std::string dir = job::AttemptDir(scratch, t.lease_attempt);
  const int num_layers = static_cast<int>(calibrate_index.size());
  switch (t.kind) {
    case v1::CALIBRATE: {
      const std::string input =
          t.layer == 0
              ? job.spec.calibration()
              : job::StoredHiddenStatesUri(
                    tasks[ShardTask(tasks, calibrate_index, t.layer - 1, t.shard)].result_uris);
      *task.mutable_calibrate() = job::MakeCalibrateTask(
          t.layer, num_layers, input, dir, t.shard, ShardsOfLayer(tasks, calibrate_index, t.layer));
      if (job.spec.calibration_mode() == "sequential") {
        task.mutable_calibrate()->set_sequential(true);
        for (size_t j = t.layer == 0 ? 0 : calibrate_index[t.layer - 1] + 1;
             t.layer > 0 && j < calibrate_index[t.layer]; ++j) {
          if (tasks[j].kind != v1::DECOMPOSE) continue;
          task.mutable_calibrate()->add_previous_artifact_uris(
              job::StoredArtifactUri(tasks[j].result_uris));
        }
        if (t.layer > 0) {
          const size_t ft = FinetuneTask(tasks, calibrate_index, t.layer - 1);
          if (ft < tasks.size()) {
            for (std::string& u : job::StoredTunedArtifactUris(tasks[ft].result_uris)) {
              task.mutable_calibrate()->add_previous_tuned_artifact_uris(std::move(u));
            }
            task.mutable_calibrate()->set_previous_block_uri(
                job::StoredFinetuneBlockUri(tasks[ft].result_uris));
          }
        }
        // The last layer's states feed its finetune task.
        if (t.layer + 1 == num_layers &&
            FinetuneTask(tasks, calibrate_index, t.layer) < tasks.size()) {
          task.mutable_calibrate()->set_hidden_states_uri(
              storage::JoinKey(dir, "hidden_states.safetensors"));
        }
      }
      break;
    }
    case v1::FINETUNE: {
      const bool sequential = job.spec.calibration_mode() == "sequential";
      std::vector<std::string> modules, artifacts, inputs;
      auto [begin, end] = LayerWork(tasks, calibrate_index, t.layer);
      for (size_t j = begin; j < end; ++j) {
        if (tasks[j].kind != v1::DECOMPOSE) continue;
        modules.push_back(tasks[j].module);
        artifacts.push_back(job::StoredArtifactUri(tasks[j].result_uris));
      }
      // The states entering the block: written by calibrate(l) in sequential
      // mode, by calibrate(l-1) in original mode (layer 0 of an original-mode
      // job: none, the step embeds the calibration tokens).
      const int from = sequential ? t.layer : t.layer - 1;
      if (from >= 0) {
        for (size_t j = calibrate_index[from];
             j < tasks.size() && tasks[j].kind == v1::CALIBRATE && tasks[j].layer == from; ++j) {
          inputs.push_back(job::StoredHiddenStatesUri(tasks[j].result_uris));
        }
      }
      std::string original_states;
      if (t.layer > 0) {
        const size_t ft = FinetuneTask(tasks, calibrate_index, t.layer - 1);
        if (ft < tasks.size())
          original_states = job::StoredOriginalStatesUri(tasks[ft].result_uris);
      }
      *task.mutable_finetune() =
          job::MakeFinetuneTask(t.layer, std::move(modules), std::move(artifacts),
                                std::move(inputs), original_states, dir, t.layer + 1 == num_layers);
      break;
    }
    case v1::DECOMPOSE: {
      std::vector<std::string> hessians;  // in shard order
      for (size_t j = calibrate_index[t.layer];
           j < tasks.size() && tasks[j].kind == v1::CALIBRATE && tasks[j].layer == t.layer; ++j) {
        hessians.push_back(job::StoredHessiansUri(tasks[j].result_uris));
      }
      *task.mutable_decompose() = job::MakeDecomposeTask(t.layer, t.module, hessians, dir);
      break;
    }
    case v1::FINALIZE: {
      std::vector<std::string> artifacts;
      for (const TaskRecord& d : tasks) {
        if (d.kind != v1::DECOMPOSE) continue;
        std::string artifact = job::StoredArtifactUri(d.result_uris);
        if (!artifact.empty()) artifacts.push_back(std::move(artifact));
      }
      *task.mutable_finalize() =
          job::MakeFinalizeTask(std::move(artifacts), job_elapsed_seconds, scratch);
      for (const TaskRecord& f : tasks) {
        if (f.kind != v1::FINETUNE) continue;
        task.mutable_finalize()->add_finetune_block_uris(
            job::StoredFinetuneBlockUri(f.result_uris));
        for (std::string& u : job::StoredTunedArtifactUris(f.result_uris)) {
          task.mutable_finalize()->add_tuned_artifact_uris(std::move(u));
        }
      }
      break;
    }
    default:
      break;
  }
  return task;
}

void EstimateTaskMemory(const model::ModelConfig& config, int64_t samples, int64_t seq_len,
                        int num_shards, bool sequential, std::vector<TaskRecord>* tasks) {
  const int64_t shard_samples = job::LargestShardSamples(samples, num_shards);
  for (TaskRecord& t : *tasks) {
    switch (t.kind) {
      case v1::CALIBRATE:
        t.memory_bytes =
            job::EstimateCalibrateTaskBytes(config, shard_samples, seq_len, t.layer, sequential);
        break;
      case v1::DECOMPOSE:
        t.memory_bytes = job::EstimateDecomposeBytes(config, t.module);
        break;
      case v1::FINETUNE:
        // Every calibration state of the block held at once (inputs, target,
        // the original states, activations of a batch): about six copies.
        t.memory_bytes =
            job::EstimateFinalizeBytes(config) + 6 * samples * seq_len * config.hidden_size * 4;
        break;
      default:
        t.memory_bytes = job::EstimateFinalizeBytes(config);
        break;
    }
  }
}

absl::Status CheckTaskMemory(const std::vector<TaskRecord>& tasks, const model::ModelConfig& config,
                             int64_t samples, int64_t seq_len, int num_shards, bool sequential,
                             int64_t limit_bytes) {
  if (limit_bytes <= 0) return absl::OkStatus();
  for (const TaskRecord& t : tasks) {
    if (t.memory_bytes <= limit_bytes) continue;
    std::string hint;
    if (t.kind == v1::CALIBRATE) {
      const int fit = job::MinShardsToFit(config, samples, seq_len, sequential, limit_bytes,
                                          job::kMaxCalibrationShards);
      hint =
          fit > 0
              ? absl::StrCat("; ", fit,
                             " calibration shards would fit (use "
                             "--calibration-shards ",
                             fit, " or more)")
              : absl::StrCat(
                    "; no number of calibration shards fits (even one sample "
                    "of ",
                    seq_len, " tokens needs ",
                    job::FormatBytes(job::EstimateCalibrateBytes(config, 1, seq_len, sequential)),
                    ")");
    } else {
      hint = "; sharding does not change it (raise --max-task-memory)";
    }
    return absl::InvalidArgumentError(absl::StrCat(
        DescribeTask(t, num_shards), " needs about ", job::FormatBytes(t.memory_bytes),
        " with --calibration-shards ", num_shards, ", above the coordinator's --max-task-memory ",
        job::FormatBytes(limit_bytes), hint));
  }
  return absl::OkStatus();
}

bool WorkerCanHold(int64_t worker_max_memory, const TaskRecord& task) {
  return worker_max_memory <= 0 || task.memory_bytes <= 0 || task.memory_bytes <= worker_max_memory;
}

int LeasePriority(v1::TaskKind kind) {
  switch (kind) {
    case v1::CALIBRATE:
    case v1::FINETUNE:  // on the critical path as calibrate is
      return 0;
    case v1::DECOMPOSE:
      return 1;
    default:
      return 2;
  }
}

std::string DescribeTask(const TaskRecord& t, int num_shards) {
  return job::DescribeTask(t.kind, t.layer, t.module, t.shard, num_shards);
}

}  // namespace caldera::server
