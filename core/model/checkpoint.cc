#include "core/model/checkpoint.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace caldera::model {

FileOpener LocalDirectoryOpener(std::string directory) {
  return [directory = std::move(directory)](
             const std::string& name) -> absl::StatusOr<std::unique_ptr<RandomAccessSource>> {
    return OpenMappedFile(directory + "/" + name);
  };
}

absl::StatusOr<std::string> ReadWholeFile(const FileOpener& opener, const std::string& name) {
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = opener(name);
  if (!src.ok()) return src.status();
  const uint64_t size = (*src)->Size();
  if (size > (64u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat((*src)->Name(), ": ", size, " bytes is too large for a metadata file"));
  }
  std::string out(size, '\0');
  absl::Status s =
      (*src)->ReadAt(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size()));
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(FileOpener opener, std::string name) {
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->name_ = name;
  absl::StatusOr<std::string> config_json = ReadWholeFile(opener, "config.json");
  if (!config_json.ok()) {
    return absl::Status(
        config_json.status().code(),
        absl::StrCat("model ", name, ": cannot read config.json (", config_json.status().message(),
                     "); point --model at a Hugging Face model directory"));
  }
  absl::StatusOr<ModelConfig> config =
      ParseModelConfig(*config_json, absl::StrCat(name, "/config.json"));
  if (!config.ok()) return config.status();
  ckpt->config_ = *std::move(config);

  std::vector<std::string> shard_names;
  absl::StatusOr<std::string> index_json = ReadWholeFile(opener, "model.safetensors.index.json");
  std::map<std::string, std::string> weight_map;
  if (index_json.ok()) {
    absl::StatusOr<CheckpointIndex> index =
        ParseCheckpointIndex(*index_json, absl::StrCat(name, "/model.safetensors.index.json"));
    if (!index.ok()) return index.status();
    std::set<std::string> unique;
    for (const auto& [tensor, shard] : index->weight_map) {
      if (unique.insert(shard).second) shard_names.push_back(shard);
    }
    weight_map = index->weight_map;
  } else if (index_json.status().code() == absl::StatusCode::kNotFound) {
    shard_names.push_back("model.safetensors");
  } else {
    return index_json.status();
  }
  std::map<std::string, const SafetensorsReader*> shard_by_name;
  for (const std::string& shard : shard_names) {
    absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = opener(shard);
    if (!src.ok()) {
      return absl::Status(src.status().code(), absl::StrCat("model ", name, ": cannot open ", shard,
                                                            ": ", src.status().message()));
    }
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
        SafetensorsReader::Open(*std::move(src));
    if (!reader.ok()) return reader.status();
    shard_by_name[shard] = reader->get();
    for (const TensorInfo& t : (*reader)->tensors()) {
      ckpt->by_tensor_.emplace(t.name, reader->get());
    }
    ckpt->shards_.push_back(*std::move(reader));
  }
  for (const auto& [tensor, shard] : weight_map) {
    auto it = ckpt->by_tensor_.find(tensor);
    if (it == ckpt->by_tensor_.end() || it->second != shard_by_name[shard]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model ", name, ": the index says '", tensor, "' is in ", shard,
          " but that shard does not hold it; the checkpoint is incomplete or corrupt"));
    }
  }
  return ckpt;
}

const TensorInfo* Checkpoint::Find(absl::string_view tensor) const {
  const SafetensorsReader* r = ReaderFor(tensor);
  return r == nullptr ? nullptr : r->Find(tensor);
}

const SafetensorsReader* Checkpoint::ReaderFor(absl::string_view tensor) const {
  auto it = by_tensor_.find(tensor);
  return it == by_tensor_.end() ? nullptr : it->second;
}

std::vector<const SafetensorsReader*> Checkpoint::readers() const {
  std::vector<const SafetensorsReader*> out;
  for (const auto& r : shards_) out.push_back(r.get());
  return out;
}

absl::StatusOr<Tensor> Checkpoint::ReadF32(absl::string_view tensor) const {
  const SafetensorsReader* r = ReaderFor(tensor);
  if (r == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("model ", name_, ": tensor '", tensor, "' is missing from the checkpoint"));
  }
  const TensorInfo* info = r->Find(tensor);
  if (!IsFloatingPoint(info->dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("model ", name_, ": tensor '", tensor,
                                                   "' has dtype ", DTypeName(info->dtype),
                                                   "; expected F32, F16 or BF16"));
  }
  return r->ReadAs(tensor, DType::kF32);
}

absl::StatusOr<Tensor> Checkpoint::ReadStoredLinear(const std::string& module_prefix) const {
  const std::string weight = module_prefix + ".weight";
  if (ReaderFor(weight) != nullptr || !reconstructor_) return ReadF32(weight);
  // A compressed module: find the shard holding its record tensors. The
  // module's bias (Qwen2's q/k/v) shares the prefix but stays with the
  // uncompressed tensors, often in another shard: skip it.
  auto it = by_tensor_.lower_bound(module_prefix + ".");
  while (it != by_tensor_.end() && it->first == module_prefix + ".bias") ++it;
  if (it == by_tensor_.end() || !absl::StartsWith(it->first, module_prefix + ".")) {
    return absl::NotFoundError(absl::StrCat("model ", name_, ": neither '", weight,
                                            "' nor a compressed record of ", module_prefix,
                                            " is in the checkpoint"));
  }
  return reconstructor_(*it->second, module_prefix);
}

absl::StatusOr<Tensor> Checkpoint::ReadLinearWeight(const std::string& module_prefix,
                                                    absl::string_view module) const {
  const std::string weight = module_prefix + ".weight";
  absl::StatusOr<Tensor> t = ReadStoredLinear(module_prefix);
  if (!t.ok()) return t;
  const std::vector<int64_t> want = LinearShape(config_, module);
  if (head_sharing_ != nullptr && !head_sharing_->empty()) {
    // The layer and suffix of the module, when it is a decoder block's.
    for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
      const std::string prefix = config_.LayerPrefix(layer);
      if (!absl::StartsWith(module_prefix, prefix)) continue;
      const std::string suffix = module_prefix.substr(prefix.size());
      std::vector<AliasedSlice> slices = AliasedSlices(*head_sharing_, layer, module);
      if (slices.empty()) break;
      t = ExpandAliased(*t, want, slices, SharesColumns(module),
                        [&](int64_t source) -> absl::StatusOr<Tensor> {
                          // source < layer: the recursion ends at layer 0.
                          return ReadLinearWeight(config_.LayerPrefix(source) + suffix, module);
                        });
      if (!t.ok()) {
        return absl::Status(t.status().code(), absl::StrCat("model ", name_, ": ", module_prefix,
                                                            ": ", t.status().message()));
      }
      break;
    }
  }
  if (t->shape() != want) {
    return absl::InvalidArgumentError(absl::StrCat("model ", name_, ": '", weight, "' has shape ",
                                                   ShapeString(t->shape()),
                                                   " but config.json implies ", ShapeString(want)));
  }
  return t;
}

}  // namespace caldera::model
