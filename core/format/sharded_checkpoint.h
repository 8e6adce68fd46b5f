// Writing a sharded safetensors checkpoint (docs/format/checkpoint.md):
// shard files "model-0000i-of-0000N.safetensors" (metadata format = "pt") and
// model.safetensors.index.json mapping every tensor to its shard, with
// metadata total_size = the bytes of all shards. Used by the finalize task and
// by `calderactl export`. The files go to a caller-given sink (local file,
// object storage), so this layer knows nothing of storage.
//
// Usage: Add() the tensors of shard 1, FinishShard(); ...; then WriteIndex().
// One shard's tensors are held at a time. Not thread-safe.
#ifndef CALDERA_CORE_FORMAT_SHARDED_CHECKPOINT_H_
#define CALDERA_CORE_FORMAT_SHARDED_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/format/safetensors.h"

namespace caldera::format {

inline constexpr char kCheckpointIndexName[] = "model.safetensors.index.json";

// "model-0000i-of-0000n.safetensors" (1-based i).
std::string ShardFileName(int i, int n);

class ShardedCheckpointWriter {
 public:
  // Writes `bytes` as the file `name` of the checkpoint directory.
  using Sink = std::function<absl::Status(const std::string& name, const std::string& bytes)>;

  // `shards` is the number of shard files that will be written (>= 1).
  ShardedCheckpointWriter(int shards, Sink sink);

  ShardedCheckpointWriter(const ShardedCheckpointWriter&) = delete;
  ShardedCheckpointWriter& operator=(const ShardedCheckpointWriter&) = delete;

  // Adds a tensor to the current shard. INVALID_ARGUMENT when the name is
  // already in this or an earlier shard.
  absl::Status Add(std::string name, Tensor tensor);
  // Sets a "__metadata__" entry of the current shard ("format" is reserved:
  // always "pt").
  void SetShardMetadata(std::string key, std::string value);
  // True when `name` was added to this or an earlier shard.
  bool Contains(absl::string_view name) const;

  // Writes the current shard (even when empty) and starts the next one.
  // FAILED_PRECONDITION when all `shards` were written already.
  absl::Status FinishShard();

  // Writes the index. FAILED_PRECONDITION unless exactly `shards` shards were
  // finished and nothing was added since.
  absl::Status WriteIndex();

  // Bytes of the shards written so far.
  uint64_t total_size() const { return total_size_; }

 private:
  int shards_;
  Sink sink_;
  int next_ = 1;  // the shard being filled
  uint64_t total_size_ = 0;
  std::unique_ptr<SafetensorsWriter> current_;
  bool current_empty_ = true;
  CheckpointIndex index_;
};

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_SHARDED_CHECKPOINT_H_
