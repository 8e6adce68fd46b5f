#include "server/state_check.h"

#include <algorithm>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "caldera/v1/jobs.pb.h"
#include "core/model/model_config.h"

namespace caldera::server {
namespace {

// Far above any real model (job validation limits plans much lower); a bound
// so that a corrupt layer number cannot size an index.
constexpr int32_t kMaxStoredLayers = 1 << 16;
constexpr int32_t kMaxStoredShards = 1 << 12;

bool KnownModule(const std::string& name) {
  if (model::ExpertIndex(name) >= 0) return !model::LinearKind(name).empty();
  for (const model::LinearModule& m : model::kLinearModules) {
    if (name == m.name) return true;
  }
  return false;
}

}  // namespace

absl::Status CheckStoredJob(const JobRecord& job, const std::vector<TaskRecord>& tasks) {
  auto bad = [&](const std::string& what) {
    return absl::DataLossError(
        absl::StrCat("state database: job ", job.id.substr(0, 64), " ", what));
  };
  auto bad_task = [&](const TaskRecord& t, const std::string& what) {
    return bad(absl::StrCat("has task '", t.id.substr(0, 96), "' ", what));
  };
  if (!job.corrupt.empty()) return bad(job.corrupt);
  if (!v1::JobState_IsValid(job.state) || job.state == v1::JOB_STATE_UNSPECIFIED) {
    return bad(absl::StrCat("has an unknown state (", static_cast<int>(job.state), ")"));
  }
  if (job.request_id.size() > kMaxRequestIdBytes) {
    return bad(absl::StrCat("has a request id of ", job.request_id.size(), " bytes (at most ",
                            kMaxRequestIdBytes, ")"));
  }
  if (tasks.empty()) return bad("has no tasks");
  const int32_t shards = std::max(1, job.spec.calibration_shards());
  if (shards > kMaxStoredShards) {
    return bad(
        absl::StrCat("has ", shards, " calibration shards (at most ", kMaxStoredShards, ")"));
  }
  if (std::none_of(tasks.begin(), tasks.end(),
                   [](const TaskRecord& t) { return t.kind == v1::CALIBRATE; })) {
    return bad("has no calibrate tasks");
  }
  int32_t layers = 0;  // calibrate layers seen: 0..layers-1
  int32_t next_shard = 0;
  bool finalize = false;
  std::set<std::string> ids;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TaskRecord& t = tasks[i];
    if (!ids.insert(t.id).second) return bad_task(t, "twice");
    if (!v1::TaskState_IsValid(t.state) || t.state == v1::TASK_STATE_UNSPECIFIED) {
      return bad_task(t, absl::StrCat("with an unknown state (", static_cast<int>(t.state), ")"));
    }
    if (t.attempts < 0) return bad_task(t, absl::StrCat("with ", t.attempts, " attempts"));
    if (t.state == v1::TASK_LEASED &&
        (t.lease_attempt.empty() || !absl::StartsWith(t.lease_attempt, job.id + "/"))) {
      return bad_task(t, "leased without an attempt of this job");
    }
    if (finalize) return bad_task(t, "after its finalize task");
    switch (t.kind) {
      case v1::CALIBRATE:
        if (t.layer < 0 || t.layer >= kMaxStoredLayers) {
          return bad_task(t, absl::StrCat("with layer ", t.layer));
        }
        if (t.shard != next_shard || t.layer != (next_shard == 0 ? layers : layers - 1)) {
          return bad_task(t, absl::StrCat("out of plan order (calibrate layer ", t.layer, " shard ",
                                          t.shard, ")"));
        }
        if (next_shard == 0) ++layers;
        next_shard = (next_shard + 1) % shards;
        break;
      case v1::DECOMPOSE:
        if (t.layer < 0 || t.layer >= layers || next_shard != 0) {
          return bad_task(t, absl::StrCat("decomposing layer ", t.layer,
                                          ", which has no complete set of calibrate tasks "
                                          "before it"));
        }
        if (!KnownModule(t.module)) {
          return bad_task(t, absl::StrCat("with an unknown module '", t.module.substr(0, 64), "'"));
        }
        break;
      case v1::FINETUNE:
        if (t.layer < 0 || t.layer >= layers || next_shard != 0) {
          return bad_task(t, absl::StrCat("fine-tuning layer ", t.layer,
                                          ", which has no complete set of calibrate tasks "
                                          "before it"));
        }
        break;
      case v1::FINALIZE:
        finalize = true;
        break;
      default:
        return bad_task(t, absl::StrCat("of an unknown kind (", static_cast<int>(t.kind), ")"));
    }
  }
  if (next_shard != 0) return bad(absl::StrCat("lacks calibrate shards of layer ", layers - 1));
  if (!finalize) return bad("has no finalize task");
  return absl::OkStatus();
}

}  // namespace caldera::server
