// ObjectStore: one interface over object storage (local files, S3-compatible
// stores). Keys are '/'-separated paths relative to the store's root (a local
// directory or an S3 bucket). All methods are thread-safe.
//
// Every object we write gets a SHA-256 of its bytes recorded with it (S3: user
// metadata x-amz-meta-sha256; local files: the xattr user.caldera.sha256 when the
// file system allows it) and returned by Head() and Put*().
#ifndef CALDERA_STORAGE_OBJECT_STORE_H_
#define CALDERA_STORAGE_OBJECT_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/io/random_access_source.h"

namespace caldera::storage {

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;    // store-specific version tag (may be empty for local files)
  std::string sha256;  // lowercase hex; empty when the object was not written by us
};

struct ListPage {
  std::vector<ObjectInfo> objects;  // sorted by key
  std::string next_page_token;      // empty on the last page
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // The whole object. NOT_FOUND when absent.
  virtual absl::StatusOr<std::string> Get(const std::string& key) = 0;
  // Bytes [offset, offset + length) of the object; OUT_OF_RANGE if the range does
  // not lie inside the object.
  virtual absl::StatusOr<std::string> GetRange(const std::string& key, uint64_t offset,
                                               uint64_t length) = 0;
  // Writes `body` (read through RandomAccessSource, so a mapped local file is
  // streamed, never copied whole) as the object `key`, replacing it atomically.
  virtual absl::StatusOr<ObjectInfo> Put(const std::string& key,
                                         const RandomAccessSource& body) = 0;
  absl::StatusOr<ObjectInfo> PutBytes(const std::string& key, absl::string_view bytes);
  // Streams a local file.
  absl::StatusOr<ObjectInfo> PutFile(const std::string& key, const std::string& local_path);

  virtual absl::StatusOr<ObjectInfo> Head(const std::string& key) = 0;
  // Objects whose key starts with `prefix`, at most `page_size` per page (1..1000),
  // continuing after `page_token` (from the previous page; empty for the first).
  virtual absl::StatusOr<ListPage> List(const std::string& prefix, const std::string& page_token,
                                        int page_size) = 0;
  // Deleting an absent key succeeds (as in S3).
  virtual absl::Status Delete(const std::string& key) = 0;
  virtual absl::Status Copy(const std::string& from_key, const std::string& to_key) = 0;
  // Removes what interrupted writes under `prefix` left behind and List does
  // not show (a local store's temporary files of a writer killed mid-write);
  // called after deleting a scratch tree's objects. Default: nothing to do.
  virtual absl::Status RemoveAbandonedWrites(const std::string& prefix) { return absl::OkStatus(); }

  // The URI of `key` in this store ("s3://bucket/key", "file:///abs/path").
  virtual std::string UriOf(const std::string& key) const = 0;
};

// A RandomAccessSource over a byte view that must outlive it (no copy).
class ByteViewSource final : public RandomAccessSource {
 public:
  ByteViewSource(std::string name, absl::string_view bytes)
      : name_(std::move(name)), bytes_(bytes) {}
  uint64_t Size() const override { return bytes_.size(); }
  absl::Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override;
  const std::string& Name() const override { return name_; }
  std::span<const uint8_t> MappedBytes() const override {
    return {reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()};
  }

 private:
  std::string name_;
  absl::string_view bytes_;
};

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_OBJECT_STORE_H_
