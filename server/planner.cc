#include "server/planner.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace caldera::server {

std::vector<TaskRecord> PlanJob(const std::string& job_id, int num_layers,
                                const std::vector<std::string>& modules) {
  std::vector<TaskRecord> tasks;
  auto add = [&](v1::TaskKind kind, int layer, const std::string& module, std::string id) {
    TaskRecord t;
    t.id = absl::StrCat(job_id, "/", id);
    t.job_id = job_id;
    t.ord = static_cast<int32_t>(tasks.size());
    t.kind = kind;
    t.layer = layer;
    t.module = module;
    tasks.push_back(std::move(t));
  };
  for (int l = 0; l < num_layers; ++l) {
    add(v1::CALIBRATE, l, "", absl::StrFormat("calibrate-%04d", l));
    for (const std::string& m : modules) {
      add(v1::DECOMPOSE, l, m, absl::StrFormat("decompose-%04d-%s", l, m));
    }
  }
  add(v1::FINALIZE, -1, "", "finalize");
  return tasks;
}

std::vector<size_t> CalibrateIndex(const std::vector<TaskRecord>& tasks) {
  std::vector<size_t> index;
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (tasks[i].kind != v1::CALIBRATE) continue;
    if (static_cast<size_t>(tasks[i].layer) >= index.size()) index.resize(tasks[i].layer + 1);
    index[tasks[i].layer] = i;
  }
  return index;
}

bool TaskIsReady(const std::vector<TaskRecord>& tasks, const std::vector<size_t>& calibrate_index,
                 size_t i) {
  const TaskRecord& t = tasks[i];
  switch (t.kind) {
    case v1::CALIBRATE:
      return t.layer == 0 || tasks[calibrate_index[t.layer - 1]].state == v1::TASK_DONE;
    case v1::DECOMPOSE:
      return tasks[calibrate_index[t.layer]].state == v1::TASK_DONE;
    case v1::FINALIZE:
      for (size_t j = 0; j < tasks.size(); ++j) {
        if (j != i && tasks[j].state != v1::TASK_DONE) return false;
      }
      return true;
    default:
      return false;
  }
}

std::string DescribeTask(const TaskRecord& t) {
  switch (t.kind) {
    case v1::CALIBRATE:
      return absl::StrCat("calibrate layer ", t.layer);
    case v1::DECOMPOSE:
      return absl::StrCat("decompose layer ", t.layer, " ", t.module);
    default:
      return "finalize";
  }
}

}  // namespace caldera::server
