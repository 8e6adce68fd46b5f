// Entry points for code that holds URIs: open the store behind a URI, read and
// write whole objects, and read an object as a RandomAccessSource (ranged reads
// for s3://, a memory map for local files) for the core library's readers.
#ifndef CALDERA_STORAGE_STORAGE_H_
#define CALDERA_STORAGE_STORAGE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/io/random_access_source.h"
#include "storage/object_store.h"
#include "storage/storage_options.h"
#include "storage/uri.h"

namespace caldera::storage {

struct StoreAndKey {
  std::shared_ptr<ObjectStore> store;
  std::string key;  // the object (or prefix) the URI names inside the store
};

// "s3://b/k" -> S3Store(bucket b), key "k". "file:///a/b" or "a/b" -> LocalStore
// rooted at options.local_root, key relative to it (PERMISSION_DENIED when the
// path lies outside the root). When options.allowed_roots is not empty, the
// URI must resolve inside one of them (storage/allowed_roots.h), else
// PERMISSION_DENIED: every read and write below goes through here.
absl::StatusOr<StoreAndKey> OpenUri(absl::string_view uri, const StorageOptions& options);

absl::StatusOr<std::string> ReadObject(absl::string_view uri, const StorageOptions& options);
absl::StatusOr<ObjectInfo> WriteObject(absl::string_view uri, absl::string_view bytes,
                                       const StorageOptions& options);

// An object as random-access bytes. Local files are memory-mapped; S3 objects
// are read with one HEAD, then a ranged GET per ReadAt.
absl::StatusOr<std::unique_ptr<RandomAccessSource>> OpenObjectSource(absl::string_view uri,
                                                                     const StorageOptions& options);

// Removes every object under `prefix_uri` (treated as a folder: a '/' is added
// when missing), and the temporary files of writers killed mid-write there.
// A missing prefix is fine.
absl::Status RemovePrefix(const std::string& prefix_uri, const StorageOptions& options);

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_STORAGE_H_
