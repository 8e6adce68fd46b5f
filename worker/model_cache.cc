#include "worker/model_cache.h"

#include "absl/strings/str_cat.h"
#include "core/model/head_sharing_plan.h"
#include "model_io/model_inputs.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::worker {

absl::StatusOr<std::string> ModelFingerprint(const std::string& uri,
                                             const std::vector<std::string>& shard_files,
                                             const storage::StorageOptions& options) {
  absl::StatusOr<storage::StoreAndKey> sk = storage::OpenUri(uri, options);
  if (!sk.ok()) return sk.status();
  std::vector<std::string> names = {"config.json", "model.safetensors.index.json"};
  names.insert(names.end(), shard_files.begin(), shard_files.end());
  std::string out;
  for (const std::string& name : names) {
    absl::StatusOr<storage::ObjectInfo> info = sk->store->Head(storage::JoinKey(sk->key, name));
    if (!info.ok()) {
      if (info.status().code() != absl::StatusCode::kNotFound) return info.status();
      absl::StrAppend(&out, name, "=absent;");
      continue;
    }
    absl::StrAppend(&out, name, "=", info->etag, "/", info->size, ";");
  }
  return out;
}

absl::StatusOr<const model::Checkpoint*> ModelCache::Get(const std::string& uri,
                                                         double share_heads) {
  absl::StatusOr<const model::Checkpoint*> ckpt = Open(uri);
  if (!ckpt.ok() || share_heads == installed_share_heads_) return ckpt;
  if (share_heads == 0) {
    model_->SetHeadSharing(own_sharing_);
  } else {
    model_->SetHeadSharing(own_sharing_);
    absl::StatusOr<model::HeadSharing> plan =
        model::PlanCheckpointHeadSharing(*model_, share_heads);
    if (!plan.ok()) return plan.status();
    model_->SetHeadSharing(std::make_shared<const model::HeadSharing>(*std::move(plan)));
  }
  installed_share_heads_ = share_heads;
  return ckpt;
}

absl::StatusOr<const model::Checkpoint*> ModelCache::Open(const std::string& uri) {
  if (model_ != nullptr && uri_ == uri && !fingerprint_.empty()) {
    absl::StatusOr<std::string> now = ModelFingerprint(uri, shard_files_, options_);
    if (now.ok() && *now == fingerprint_) return model_.get();
  }
  own_sharing_.reset();
  installed_share_heads_ = 0;
  model_.reset();
  uri_.clear();
  fingerprint_.clear();
  shard_files_.clear();
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
      model_io::OpenCheckpointAt(uri, options_);
  if (!ckpt.ok()) return ckpt.status();
  ++opens_;
  for (const SafetensorsReader* reader : (*ckpt)->readers()) {
    const std::string& name = reader->name();
    const size_t slash = name.rfind('/');
    shard_files_.push_back(slash == std::string::npos ? name : name.substr(slash + 1));
  }
  // Taken after opening: a rewrite between the two is seen as unchanged until
  // the files change again (a short window; the headers just read are whole).
  absl::StatusOr<std::string> fp = ModelFingerprint(uri, shard_files_, options_);
  if (fp.ok()) fingerprint_ = *std::move(fp);
  model_ = *std::move(ckpt);
  if (model_->head_sharing() != nullptr) {
    own_sharing_ = std::make_shared<const model::HeadSharing>(*model_->head_sharing());
  }
  uri_ = uri;
  return model_.get();
}

}  // namespace caldera::worker
