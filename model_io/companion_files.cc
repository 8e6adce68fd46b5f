#include "model_io/companion_files.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::model_io {
namespace {

constexpr uint64_t kMaxCompanionBytes = 64ull << 20;

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
  return copied;
}

}  // namespace caldera::model_io
