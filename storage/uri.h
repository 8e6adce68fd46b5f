// Storage URIs: "s3://bucket/key", "file:///abs/path", and plain local paths
// (absolute or relative to the working directory).
#ifndef CALDERA_STORAGE_URI_H_
#define CALDERA_STORAGE_URI_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::storage {

struct StorageUri {
  enum class Scheme { kFile, kS3 };
  Scheme scheme = Scheme::kFile;
  std::string bucket;  // S3 only
  std::string path;    // S3: the key (may be empty); file: absolute, normalised path
};

// INVALID_ARGUMENT for unknown schemes (naming the supported ones), an S3 URI
// without a bucket, or an empty string.
absl::StatusOr<StorageUri> ParseStorageUri(absl::string_view uri);

// Joins a prefix and a relative name with exactly one '/' ("a/b" + "c" -> "a/b/c";
// "" + "c" -> "c"). Works for keys and for URIs.
std::string JoinKey(absl::string_view prefix, absl::string_view name);

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_URI_H_
