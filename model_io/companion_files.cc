#include "model_io/companion_files.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/hf_tokenizer_files.h"
#include "model_io/text_tokens.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::model_io {
namespace {

constexpr uint64_t kMaxCompanionBytes = 64ull << 20;

// The context length for tokenizer_config.json: config.json's
// max_position_embeddings, else 2048.
int64_t ModelMaxLength(const std::string& dir, const storage::StorageOptions& options) {
  absl::StatusOr<std::string> text =
      storage::ReadObject(storage::JoinKey(dir, "config.json"), options);
  if (!text.ok()) return 2048;
  const nlohmann::json c = nlohmann::json::parse(*text, nullptr, false);
  const auto it = c.is_object() ? c.find("max_position_embeddings") : c.end();
  if (it == c.end() || !it->is_number_integer() || it->get<int64_t>() < 1) return 2048;
  return it->get<int64_t>();
}

// tokenizer.json and tokenizer_config.json (core/tokenizer/hf_tokenizer_files.h)
// for a model whose only tokenizer is tokenizer_vocab.json; their names are
// added to `copied`. A tokenizer_config.json the model has is kept.
absl::Status WriteHfTokenizerFiles(const std::string& from_uri, const std::string& to_uri,
                                   const storage::StorageOptions& options,
                                   std::vector<std::string>* copied) {
  auto has = [&](absl::string_view name) {
    return std::find(copied->begin(), copied->end(), name) != copied->end();
  };
  if (!has("tokenizer_vocab.json") || has("tokenizer.json") || has("tokenizer.model")) {
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<tokenizer::VocabTokenizer>> vocab =
      OpenVocabTokenizer(from_uri, options);
  if (!vocab.ok()) return vocab.status();
  if (!vocab->has_value()) return absl::OkStatus();
  absl::StatusOr<tokenizer::HfTokenizerFiles> files =
      tokenizer::HfTokenizerFilesFor(**vocab, ModelMaxLength(from_uri, options));
  if (!files.ok()) return files.status();
  for (const auto& [name, bytes] :
       {std::pair<std::string, const std::string*>{"tokenizer.json", &files->tokenizer_json},
        {"tokenizer_config.json", &files->tokenizer_config_json}}) {
    if (has(name)) continue;
    absl::StatusOr<storage::ObjectInfo> put =
        storage::WriteObject(storage::JoinKey(to_uri, name), *bytes, options);
    if (!put.ok()) return put.status();
    copied->push_back(name);
  }
  std::sort(copied->begin(), copied->end());
  return absl::OkStatus();
}

}  // namespace

bool IsCompanionFile(absl::string_view name) {
  if (name.empty() || absl::StrContains(name, '/')) return false;
  if (absl::EndsWith(name, ".safetensors") || absl::EndsWith(name, ".bin") ||
      absl::EndsWith(name, ".index.json") || name == "config.json" || name == "report.json") {
    return false;
  }
  for (absl::string_view exact :
       {"special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
        "generation_config.json", "preprocessor_config.json"}) {
    if (name == exact) return true;
  }
  return absl::StartsWith(name, "tokenizer") || absl::StartsWith(name, "chat_template.") ||
         absl::EndsWith(name, ".tiktoken");
}

absl::StatusOr<std::vector<std::string>> CopyCompanionFiles(
    const std::string& from_uri, const std::string& to_uri,
    const storage::StorageOptions& options) {
  absl::StatusOr<storage::StoreAndKey> from = storage::OpenUri(from_uri, options);
  if (!from.ok()) return from.status();
  std::string prefix = from->key;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  std::vector<std::string> copied;
  std::string token;
  do {
    absl::StatusOr<storage::ListPage> page = from->store->List(prefix, token, 1000);
    if (!page.ok()) return page.status();
    for (const storage::ObjectInfo& o : page->objects) {
      const std::string name = o.key.substr(prefix.size());
      if (!IsCompanionFile(name)) continue;
      if (o.size > kMaxCompanionBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            from_uri, "/", name, " is ", o.size, " bytes; a tokenizer or generation file over ",
            kMaxCompanionBytes >> 20, " MiB is not copied -- remove or rename it"));
      }
      absl::StatusOr<std::string> bytes =
          storage::ReadObject(storage::JoinKey(from_uri, name), options);
      if (!bytes.ok()) return bytes.status();
      absl::StatusOr<storage::ObjectInfo> put =
          storage::WriteObject(storage::JoinKey(to_uri, name), *bytes, options);
      if (!put.ok()) return put.status();
      copied.push_back(name);
    }
    token = page->next_page_token;
  } while (!token.empty());
  if (absl::Status s = WriteHfTokenizerFiles(from_uri, to_uri, options, &copied); !s.ok()) {
    return s;
  }
  return copied;
}

}  // namespace caldera::model_io
