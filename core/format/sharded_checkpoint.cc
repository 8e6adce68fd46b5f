#include "core/format/sharded_checkpoint.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace caldera::format {

std::string ShardFileName(int i, int n) {
  return absl::StrFormat("model-%05d-of-%05d.safetensors", i, n);
}

ShardedCheckpointWriter::ShardedCheckpointWriter(int shards, Sink sink)
    : shards_(shards), sink_(std::move(sink)), current_(std::make_unique<SafetensorsWriter>()) {
  current_->SetMetadata("format", "pt");
}

void ShardedCheckpointWriter::SetShardMetadata(std::string key, std::string value) {
  if (key == "format") return;
  current_->SetMetadata(std::move(key), std::move(value));
}

bool ShardedCheckpointWriter::Contains(absl::string_view name) const {
  return index_.weight_map.count(std::string(name)) != 0;
}

absl::Status ShardedCheckpointWriter::Add(std::string name, Tensor tensor) {
  if (next_ > shards_) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint: all ", shards_, " shards are written; cannot add '", name, "'"));
  }
  if (Contains(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint: tensor '", name, "' is already in ", index_.weight_map[name]));
  }
  const std::string shard = ShardFileName(next_, shards_);
  if (absl::Status s = current_->Add(name, std::move(tensor)); !s.ok()) return s;
  index_.weight_map[std::move(name)] = shard;
  current_empty_ = false;
  return absl::OkStatus();
}

absl::Status ShardedCheckpointWriter::FinishShard() {
  if (next_ > shards_) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint: all ", shards_, " shards are written already"));
  }
  absl::StatusOr<std::string> bytes = current_->Serialize();
  if (!bytes.ok()) return bytes.status();
  const std::string name = ShardFileName(next_, shards_);
  if (absl::Status s = sink_(name, *bytes); !s.ok()) return s;
  total_size_ += bytes->size();
  ++next_;
  current_ = std::make_unique<SafetensorsWriter>();
  current_->SetMetadata("format", "pt");
  current_empty_ = true;
  return absl::OkStatus();
}

absl::Status ShardedCheckpointWriter::WriteIndex() {
  if (next_ != shards_ + 1 || !current_empty_) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint: ", next_ - 1, " of ", shards_,
                                                      " shards written; finish them before the "
                                                      "index"));
  }
  CheckpointIndex index = index_;
  index.metadata["total_size"] = absl::StrCat(total_size_);
  return sink_(kCheckpointIndexName, SerializeCheckpointIndex(index));
}

}  // namespace caldera::format
