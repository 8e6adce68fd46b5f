// Checkpoint: a Hugging Face model directory (config.json plus model.safetensors
// or shards listed in model.safetensors.index.json), read through a FileOpener so
// the same code reads local files and remote objects. Only headers are read at
// Open(); tensors are read one at a time on request, so a caller can hold one
// decoder block in memory at a time.
//
// Thread-safe for concurrent reads after Open().
#ifndef CALDERA_CORE_MODEL_CHECKPOINT_H_
#define CALDERA_CORE_MODEL_CHECKPOINT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"
#include "core/io/random_access_source.h"
#include "core/model/head_sharing.h"
#include "core/model/model_config.h"
#include "core/tensor/tensor.h"

namespace caldera::model {

// Opens a file of the checkpoint by its name relative to the checkpoint
// directory ("config.json", "model-00001-of-00002.safetensors").
using FileOpener = std::function<absl::StatusOr<std::unique_ptr<RandomAccessSource>>(
    const std::string& relative_name)>;

// A FileOpener for a local directory.
FileOpener LocalDirectoryOpener(std::string directory);

// Reads a whole (small) file through an opener.
absl::StatusOr<std::string> ReadWholeFile(const FileOpener& opener, const std::string& name);

class Checkpoint {
 public:
  // `name` (a path or URI) is used in messages.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(FileOpener opener, std::string name);

  const ModelConfig& config() const { return config_; }
  const std::string& name() const { return name_; }

  // Header entry of a tensor, or nullptr.
  const TensorInfo* Find(absl::string_view tensor) const;
  // The shard reader holding `tensor`, or nullptr.
  const SafetensorsReader* ReaderFor(absl::string_view tensor) const;
  // All shard readers (for tools that scan every tensor).
  std::vector<const SafetensorsReader*> readers() const;

  // Reads a tensor as F32 (F16/BF16/F64 converted). NOT_FOUND names the
  // checkpoint and the tensor.
  absl::StatusOr<Tensor> ReadF32(absl::string_view tensor) const;

  // The weight of a linear module ("model.layers.0.self_attn.q_proj") as F32
  // [out, in]: the dense tensor prefix + ".weight" when present, else what the
  // installed reconstructor builds from a compressed record (see
  // SetLinearReconstructor). Shape checked against the config.
  using LinearReconstructor = std::function<absl::StatusOr<Tensor>(
      const SafetensorsReader& reader, const std::string& module_prefix)>;
  void SetLinearReconstructor(LinearReconstructor fn) { reconstructor_ = std::move(fn); }
  absl::StatusOr<Tensor> ReadLinearWeight(const std::string& module_prefix,
                                          absl::string_view module) const;

  // Head sharing (head_sharing.h): once installed, ReadLinearWeight returns
  // the attention linears of layers with aliased groups through
  // ExpandAliased: a stored weight of the full shape has its aliased slices
  // overwritten by the source layer's (an input model that is being
  // shared), one of the reduced shape has them inserted (a checkpoint whose
  // records hold only the unaliased heads). Not thread-safe against
  // concurrent reads; install before reading. nullptr removes it.
  void SetHeadSharing(std::shared_ptr<const HeadSharing> sharing) {
    head_sharing_ = std::move(sharing);
  }
  // The installed map, or nullptr.
  const HeadSharing* head_sharing() const { return head_sharing_.get(); }

 private:
  Checkpoint() = default;

  std::string name_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsReader>> shards_;
  std::map<std::string, const SafetensorsReader*, std::less<>> by_tensor_;
  LinearReconstructor reconstructor_;
  std::shared_ptr<const HeadSharing> head_sharing_;

  // The module's stored weight: dense, or rebuilt from its record (shape
  // not checked; with head sharing it may lack the aliased slices).
  absl::StatusOr<Tensor> ReadStoredLinear(const std::string& module_prefix) const;
};

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_CHECKPOINT_H_
