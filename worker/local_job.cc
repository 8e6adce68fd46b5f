#include "worker/local_job.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/decompose/record.h"
#include "core/format/safetensors.h"
#include "core/model/checkpoint.h"
#include "core/model/llama_block.h"
#include "core/model/model_runner.h"
#include "storage/storage.h"
#include "storage/uri.h"
#include "worker/executors.h"

namespace caldera::worker {
namespace {

// A checkpoint directory read through object storage.
absl::StatusOr<std::unique_ptr<model::Checkpoint>> OpenModel(
    const std::string& uri, const storage::StorageOptions& options) {
  model::FileOpener opener = [uri, options](const std::string& name) {
    return storage::OpenObjectSource(storage::JoinKey(uri, name), options);
  };
  return model::Checkpoint::Open(std::move(opener), uri);
}

absl::StatusOr<model::TokenSet> OpenTokens(const std::string& uri, const model::ModelConfig& config,
                                           const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = storage::OpenObjectSource(uri, options);
  if (!src.ok()) return src.status();
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      SafetensorsReader::Open(*std::move(src));
  if (!reader.ok()) return reader.status();
  return model::LoadTokens(**reader, config);
}

struct DecomposeTask {
  int64_t layer;
  const model::LinearModule* module;
  std::shared_ptr<const Eigen::MatrixXd> hessian;
  size_t slot;
};

}  // namespace

absl::Status RunLocalJob(const JobSpec& spec, const LocalJobOptions& job_options,
                         const storage::StorageOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = ValidateJobSpec(spec); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt = OpenModel(spec.model, options);
  if (!ckpt.ok()) return ckpt.status();
  const model::ModelConfig& config = (*ckpt)->config();
  absl::StatusOr<model::TokenSet> tokens = OpenTokens(spec.calibration, config, options);
  if (!tokens.ok()) return tokens.status();

  // Plan: check every selected module's rank before any work.
  std::vector<const model::LinearModule*> selected;
  for (const model::LinearModule& m : model::kLinearModules) {
    if (CompressesModule(spec, m.name)) selected.push_back(&m);
  }
  if (spec.method == "caldera") {
    for (const model::LinearModule* m : selected) {
      const std::vector<int64_t> shape = model::LinearShape(config, m->name);
      const int64_t limit = std::min(shape[0], shape[1]);
      if (spec.rank > limit) {
        return absl::InvalidArgumentError(absl::StrCat("--rank ", spec.rank, " is larger than ",
                                                       m->name, " (", shape[0], "x", shape[1],
                                                       "); use --rank <= ", limit));
      }
    }
  }
  const int64_t total = config.num_layers * (1 + static_cast<int64_t>(selected.size())) + 1;
  const std::string scratch = storage::JoinKey(spec.out, "_scratch");

  std::mutex mu;
  std::condition_variable cv;
  std::deque<DecomposeTask> queue;
  bool closed = false;
  absl::Status first_error;
  int64_t done = 0;
  std::vector<ModuleReport> reports(static_cast<size_t>(config.num_layers) * selected.size());
  auto cancelled = [&] {
    if (job_options.cancel != nullptr && job_options.cancel->load()) return true;
    std::lock_guard<std::mutex> lock(mu);
    return !first_error.ok();
  };
  auto report = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    ++done;
    if (job_options.progress) job_options.progress(done, total, what);
  };
  auto fail = [&](absl::Status s) {
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.ok()) first_error = std::move(s);
    cv.notify_all();
  };

  std::vector<std::thread> workers;
  for (int i = 0; i < std::max(1, job_options.workers); ++i) {
    workers.emplace_back([&] {
      for (;;) {
        DecomposeTask task;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return closed || !queue.empty(); });
          if (queue.empty()) return;
          task = std::move(queue.front());
          queue.pop_front();
        }
        if (cancelled()) continue;
        const std::string artifact = storage::JoinKey(
            scratch, absl::StrCat("layer-", task.layer, "/", task.module->name, ".safetensors"));
        absl::StatusOr<ModuleReport> r = DecomposeModule(
            **ckpt, task.layer, *task.module, *task.hessian, spec, artifact, options, cancelled);
        if (!r.ok()) {
          fail(r.status());
          continue;
        }
        reports[task.slot] = *std::move(r);
        report(reports[task.slot].name);
      }
    });
  }

  model::RunOptions run;
  absl::Status calib = model::CalibrateLayers(
      **ckpt, *tokens, 0, config.num_layers - 1, run,
      [&](int64_t layer, model::BlockHessians& h) -> absl::Status {
        if (cancelled()) return absl::CancelledError("the job was cancelled");
        const double inv = 1.0 / static_cast<double>(std::max<int64_t>(1, h.tokens));
        std::map<std::string, std::shared_ptr<const Eigen::MatrixXd>> hs = {
            {"q_proj", std::make_shared<const Eigen::MatrixXd>(h.q_proj * inv)},
            {"o_proj", std::make_shared<const Eigen::MatrixXd>(h.o_proj * inv)},
            {"gate_proj", std::make_shared<const Eigen::MatrixXd>(h.gate_proj * inv)},
            {"down_proj", std::make_shared<const Eigen::MatrixXd>(h.down_proj * inv)}};
        {
          std::lock_guard<std::mutex> lock(mu);
          for (size_t i = 0; i < selected.size(); ++i) {
            queue.push_back(DecomposeTask{layer, selected[i], hs[selected[i]->hessian],
                                          static_cast<size_t>(layer) * selected.size() + i});
          }
          cv.notify_all();
        }
        report(absl::StrCat("calibrate layer ", layer));
        return absl::OkStatus();
      });
  {
    std::lock_guard<std::mutex> lock(mu);
    closed = true;
    cv.notify_all();
  }
  for (std::thread& t : workers) t.join();
  if (!first_error.ok() && first_error.code() != absl::StatusCode::kCancelled) {
    (void)RemovePrefix(scratch, options);
    return first_error;
  }
  if (!calib.ok() && calib.code() != absl::StatusCode::kCancelled) {
    (void)RemovePrefix(scratch, options);
    return calib;
  }
  if (job_options.cancel != nullptr && job_options.cancel->load()) {
    (void)RemovePrefix(scratch, options);
    return absl::CancelledError("the job was cancelled; no checkpoint index was written");
  }
  if (!first_error.ok()) return first_error;
  if (!calib.ok()) return calib;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (absl::Status s = FinalizeCheckpoint(**ckpt, spec, reports, seconds, options); !s.ok()) {
    return s;
  }
  if (absl::Status s = RemovePrefix(scratch, options); !s.ok()) return s;
  report("finalize");
  return absl::OkStatus();
}

}  // namespace caldera::worker
