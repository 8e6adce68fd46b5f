// LocalStore: an ObjectStore over a directory of the local file system.
// Keys map to paths under the root; a key that would resolve outside the root
// (via "..", an absolute path, or a symbolic link) is refused. Writes are atomic
// (temporary file in the target directory, fsync, rename); parent directories are
// created as needed. The SHA-256 of each written file is recorded in the xattr
// user.caldera.sha256 when the file system supports it; Head() returns it.
// Delete() removes the parent directories it leaves empty only inside a job's
// scratch tree (a path component ".caldera-scratch", that directory included);
// any other directory is left alone, since it may have existed before.
#ifndef CALDERA_STORAGE_LOCAL_STORE_H_
#define CALDERA_STORAGE_LOCAL_STORE_H_

#include <string>

#include "storage/object_store.h"

namespace caldera::storage {

class LocalStore final : public ObjectStore {
 public:
  // `root` must be an absolute path; it need not exist yet.
  explicit LocalStore(std::string root);

  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::StatusOr<std::string> GetRange(const std::string& key, uint64_t offset,
                                       uint64_t length) override;
  absl::StatusOr<ObjectInfo> Put(const std::string& key, const RandomAccessSource& body) override;
  absl::StatusOr<ObjectInfo> Head(const std::string& key) override;
  absl::StatusOr<ListPage> List(const std::string& prefix, const std::string& page_token,
                                int page_size) override;
  absl::Status Delete(const std::string& key) override;
  // Unlinks the temporary files of interrupted writes under `prefix` and
  // removes every empty scratch directory under it (and the parents that
  // leaves empty, as Delete does), also those an earlier removal killed
  // midway left behind.
  absl::Status RemoveAbandonedWrites(const std::string& prefix) override;
  absl::Status Copy(const std::string& from_key, const std::string& to_key) override;
  std::string UriOf(const std::string& key) const override;

  // The local path of `key`, or PERMISSION_DENIED if it escapes the root.
  absl::StatusOr<std::string> PathOf(const std::string& key) const;

 private:
  // After `removed_path` was unlinked: rmdir its parents that are left empty,
  // inside a scratch tree only.
  void PruneEmptyScratchParents(const std::string& removed_path) const;

  std::string root_;
};

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_LOCAL_STORE_H_
