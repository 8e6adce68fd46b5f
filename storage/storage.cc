#include "storage/storage.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/allowed_roots.h"
#include "storage/local_store.h"
#include "storage/s3_store.h"

namespace caldera::storage {
namespace {

class ObjectSource final : public RandomAccessSource {
 public:
  ObjectSource(std::shared_ptr<ObjectStore> store, std::string key, uint64_t size)
      : store_(std::move(store)), key_(std::move(key)), size_(size), name_(store_->UriOf(key_)) {}
  uint64_t Size() const override { return size_; }
  absl::Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override {
    if (absl::Status s = CheckRange(name_, size_, offset, out.size()); !s.ok()) return s;
    if (out.empty()) return absl::OkStatus();
    absl::StatusOr<std::string> bytes = store_->GetRange(key_, offset, out.size());
    if (!bytes.ok()) return bytes.status();
    std::memcpy(out.data(), bytes->data(), out.size());
    return absl::OkStatus();
  }
  const std::string& Name() const override { return name_; }

 private:
  std::shared_ptr<ObjectStore> store_;
  std::string key_;
  uint64_t size_;
  std::string name_;
};

}  // namespace

absl::StatusOr<StoreAndKey> OpenUri(absl::string_view uri, const StorageOptions& options) {
  absl::StatusOr<StorageUri> parsed = ParseStorageUri(uri);
  if (!parsed.ok()) return parsed.status();
  if (absl::Status s = CheckUriAllowed(uri, options.allowed_roots, "storage URI"); !s.ok()) {
    return s;
  }
  StoreAndKey out;
  if (parsed->scheme == StorageUri::Scheme::kS3) {
    out.store = std::make_shared<S3Store>(options, parsed->bucket);
    out.key = parsed->path;
    return out;
  }
  std::string root = options.local_root.empty() ? "/" : options.local_root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  const std::string& path = parsed->path;
  if (root != "/" && path != root && !absl::StartsWith(path, root + "/")) {
    return absl::PermissionDeniedError(absl::StrCat(
        "path ", path, " is outside the allowed storage root ", root, "; use a location under it"));
  }
  out.store = std::make_shared<LocalStore>(root);
  out.key = path == root ? "" : path.substr(root == "/" ? 1 : root.size() + 1);
  return out;
}

absl::StatusOr<std::string> ReadObject(absl::string_view uri, const StorageOptions& options) {
  absl::StatusOr<StoreAndKey> sk = OpenUri(uri, options);
  if (!sk.ok()) return sk.status();
  return sk->store->Get(sk->key);
}

absl::StatusOr<ObjectInfo> WriteObject(absl::string_view uri, absl::string_view bytes,
                                       const StorageOptions& options) {
  absl::StatusOr<StoreAndKey> sk = OpenUri(uri, options);
  if (!sk.ok()) return sk.status();
  return sk->store->PutBytes(sk->key, bytes);
}

absl::StatusOr<std::unique_ptr<RandomAccessSource>> OpenObjectSource(
    absl::string_view uri, const StorageOptions& options) {
  absl::StatusOr<StoreAndKey> sk = OpenUri(uri, options);
  if (!sk.ok()) return sk.status();
  if (auto* local = dynamic_cast<LocalStore*>(sk->store.get()); local != nullptr) {
    absl::StatusOr<std::string> path = local->PathOf(sk->key);
    if (!path.ok()) return path.status();
    return OpenMappedFile(*path);
  }
  absl::StatusOr<ObjectInfo> info = sk->store->Head(sk->key);
  if (!info.ok()) return info.status();
  return std::unique_ptr<RandomAccessSource>(new ObjectSource(sk->store, sk->key, info->size));
}

absl::Status RemovePrefix(const std::string& prefix_uri, const StorageOptions& options) {
  absl::StatusOr<StoreAndKey> sk = OpenUri(prefix_uri, options);
  if (!sk.ok()) return sk.status();
  std::string prefix = sk->key;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  std::string token;
  do {
    absl::StatusOr<ListPage> page = sk->store->List(prefix, token, 1000);
    if (!page.ok()) return page.status();
    for (const ObjectInfo& o : page->objects) {
      if (absl::Status s = sk->store->Delete(o.key); !s.ok()) return s;
    }
    token = page->next_page_token;
  } while (!token.empty());
  // A writer killed mid-write (a worker lost with its lease) leaves a
  // temporary file that List does not show.
  return sk->store->RemoveAbandonedWrites(prefix);
}

}  // namespace caldera::storage
