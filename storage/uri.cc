#include "storage/uri.h"

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace caldera::storage {

absl::StatusOr<StorageUri> ParseStorageUri(absl::string_view uri) {
  if (uri.empty()) return absl::InvalidArgumentError("empty storage URI");
  StorageUri out;
  if (absl::StartsWith(uri, "s3://")) {
    absl::string_view rest = uri.substr(5);
    const size_t slash = rest.find('/');
    out.scheme = StorageUri::Scheme::kS3;
    out.bucket = std::string(rest.substr(0, slash));
    out.path = slash == absl::string_view::npos ? "" : std::string(rest.substr(slash + 1));
    if (out.bucket.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage URI '", uri, "' has no bucket; write s3://BUCKET/KEY"));
    }
    return out;
  }
  std::string local;
  if (absl::StartsWith(uri, "file://")) {
    local = std::string(uri.substr(7));
    if (local.empty() || local[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("storage URI '", uri, "' is not absolute; write file:///absolute/path"));
    }
  } else if (const size_t p = uri.find("://"); p != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported storage URI scheme '",
                                                   uri.substr(0, p), "' in '", uri,
                                                   "'; supported: s3://, file://, local paths"));
  } else {
    local = std::string(uri);
  }
  out.scheme = StorageUri::Scheme::kFile;
  out.path = std::filesystem::absolute(local).lexically_normal().string();
  return out;
}

std::string JoinKey(absl::string_view prefix, absl::string_view name) {
  while (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (prefix.empty()) return std::string(name);
  if (prefix.back() == '/') return absl::StrCat(prefix, name);
  return absl::StrCat(prefix, "/", name);
}

}  // namespace caldera::storage
