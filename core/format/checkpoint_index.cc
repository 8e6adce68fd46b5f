#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/format/safetensors.h"
#include "nlohmann/json.hpp"

namespace caldera {

absl::StatusOr<CheckpointIndex> ParseCheckpointIndex(absl::string_view json,
                                                     absl::string_view name) {
  using Json = nlohmann::json;
  Json root = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name,
                     ": not a valid checkpoint index (expected a JSON object with "
                     "\"weight_map\")"));
  }
  auto wm = root.find("weight_map");
  if (wm == root.end() || !wm->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": missing \"weight_map\" object (tensor name -> shard file)"));
  }
  CheckpointIndex index;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string() || it->get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": weight_map entry for '", it.key(), "' is not a shard file name"));
    }
    const std::string shard = it->get<std::string>();
    if (shard.find("..") != std::string::npos || shard.front() == '/') {
      return absl::InvalidArgumentError(absl::StrCat(name, ": weight_map entry for '", it.key(),
                                                     "' points outside the checkpoint: ", shard));
    }
    index.weight_map[it.key()] = shard;
  }
  if (auto meta = root.find("metadata"); meta != root.end() && meta->is_object()) {
    for (auto it = meta->begin(); it != meta->end(); ++it) {
      index.metadata[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
    }
  }
  return index;
}

std::string SerializeCheckpointIndex(const CheckpointIndex& index) {
  nlohmann::ordered_json root;
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (const auto& [k, v] : index.metadata) {
    // total_size is a number in Hugging Face indexes.
    bool numeric =
        !v.empty() && v.find_first_not_of("0123456789") == std::string::npos && v.size() < 19;
    if (numeric) {
      meta[k] = std::stoull(v);
    } else {
      meta[k] = v;
    }
  }
  root["metadata"] = std::move(meta);
  nlohmann::ordered_json wm = nlohmann::ordered_json::object();
  for (const auto& [k, v] : index.weight_map) wm[k] = v;
  root["weight_map"] = std::move(wm);
  return root.dump(2) + "\n";
}

}  // namespace caldera
