// ModelCache: the worker's open model (config.json and safetensors headers),
// reused across tasks while the files under its URI are unchanged. The cache
// key is the URI plus a fingerprint of the files: size and modification time
// (local files) or ETag and size (S3) of config.json, the shard index when
// present and every shard. A model rewritten in place at the same URI is
// therefore reopened, so a new job never computes with the old weights.
// Thread-compatible; one cache per worker slot.
#ifndef CALDERA_WORKER_MODEL_CACHE_H_
#define CALDERA_WORKER_MODEL_CACHE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/head_sharing.h"
#include "storage/storage_options.h"

namespace caldera::worker {

// The fingerprint of the model directory at `uri`: one "<name>=<etag>/<size>"
// entry per file (config.json, model.safetensors.index.json or "absent", then
// each of `shard_files`, names relative to `uri`). Errors other than a
// missing index are returned (the caller then reopens the model).
absl::StatusOr<std::string> ModelFingerprint(const std::string& uri,
                                             const std::vector<std::string>& shard_files,
                                             const storage::StorageOptions& options);

class ModelCache {
 public:
  explicit ModelCache(storage::StorageOptions options) : options_(std::move(options)) {}

  // The model at `uri`: the cached one when the URI and the fingerprint match,
  // else freshly opened (the previous one is released first). The pointer is
  // valid until the next Get.
  absl::StatusOr<const model::Checkpoint*> Get(const std::string& uri) { return Get(uri, 0); }
  // The same, with the DirectShare plan for `share_heads` (a job's
  // --share-heads) installed on it: planned from the model's attention
  // weights once per (model, ratio) and kept while the model is cached, so
  // every task of a job (on every worker) reads the same shared weights.
  // With 0, the model reads as its files say.
  absl::StatusOr<const model::Checkpoint*> Get(const std::string& uri, double share_heads);

  // How many times Get opened a model (tests).
  int opens() const { return opens_; }

 private:
  // Get without the sharing step.
  absl::StatusOr<const model::Checkpoint*> Open(const std::string& uri);

  storage::StorageOptions options_;
  std::string uri_;
  std::string fingerprint_;  // empty: unknown, never matches
  std::vector<std::string> shard_files_;
  std::unique_ptr<model::Checkpoint> model_;
  // The head sharing the files brought (head_sharing.json), and the ratio
  // whose plan is installed now (0: the files' own).
  std::shared_ptr<const model::HeadSharing> own_sharing_;
  double installed_share_heads_ = 0;
  int opens_ = 0;
};

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_MODEL_CACHE_H_
