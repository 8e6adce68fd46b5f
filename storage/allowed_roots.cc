#include "storage/allowed_roots.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/util/bounded_quote.h"
#include "storage/uri.h"

namespace caldera::storage {
namespace {

namespace fs = std::filesystem;

// A URI reduced to what confinement compares.
struct Location {
  bool s3 = false;
  std::string bucket;  // s3 only
  std::string path;    // local: resolved path; s3: key without a trailing '/'
};

std::string StripTrailingSlashes(std::string s, size_t keep = 0) {
  while (s.size() > keep && s.back() == '/') s.pop_back();
  return s;
}

// S3 keys are compared as '/'-separated segments; "." and ".." segments are
// refused because HTTP clients remove them from the request path.
absl::Status CheckS3Key(absl::string_view key, absl::string_view uri) {
  for (absl::string_view seg : absl::StrSplit(key, '/')) {
    if (seg == "." || seg == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("storage URI '", BoundedQuote(uri),
                       "' has a '.' or '..' key segment; write the key without them"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Location> Locate(absl::string_view uri) {
  absl::StatusOr<StorageUri> parsed = ParseStorageUri(uri);
  if (!parsed.ok()) return parsed.status();
  Location loc;
  if (parsed->scheme == StorageUri::Scheme::kS3) {
    if (absl::Status s = CheckS3Key(parsed->path, uri); !s.ok()) return s;
    loc.s3 = true;
    loc.bucket = parsed->bucket;
    loc.path = StripTrailingSlashes(parsed->path);
    return loc;
  }
  absl::StatusOr<std::string> resolved = ResolveLocalPath(parsed->path);
  if (!resolved.ok()) return resolved.status();
  loc.path = *std::move(resolved);
  return loc;
}

bool KeyIsWithin(absl::string_view key, absl::string_view prefix) {
  if (prefix.empty()) return true;
  return key == prefix || (absl::StartsWith(key, prefix) && key[prefix.size()] == '/');
}

bool Within(const Location& a, const Location& root) {
  if (a.s3 != root.s3) return false;
  if (a.s3) return a.bucket == root.bucket && KeyIsWithin(a.path, root.path);
  return PathIsWithin(a.path, root.path);
}

std::string Describe(const Location& loc) {
  return loc.s3 ? absl::StrCat("s3://", loc.bucket, loc.path.empty() ? "" : "/", loc.path)
                : loc.path;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> NormalizeAllowedRoots(
    const std::vector<std::string>& roots) {
  std::vector<std::string> out;
  for (const std::string& root : roots) {
    absl::StatusOr<StorageUri> parsed = ParseStorageUri(root);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--allow-root '", BoundedQuote(root), "': ", parsed.status().message()));
    }
    if (parsed->scheme == StorageUri::Scheme::kS3) {
      if (absl::Status s = CheckS3Key(parsed->path, root); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--allow-root: ", s.message()));
      }
      const std::string key = StripTrailingSlashes(parsed->path);
      out.push_back(absl::StrCat("s3://", parsed->bucket, key.empty() ? "" : "/", key));
    } else {
      out.push_back(StripTrailingSlashes(parsed->path, 1));
    }
  }
  return out;
}

absl::StatusOr<std::string> ResolveLocalPath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("empty local path");
  const fs::path normal = fs::absolute(fs::path(std::string(path))).lexically_normal();
  fs::path existing = fs::path(StripTrailingSlashes(normal.string(), 1));
  std::vector<fs::path> missing;  // components below `existing`, innermost first
  for (;;) {
    struct stat st {};
    if (::lstat(existing.c_str(), &st) == 0) break;
    const int err = errno;
    if (err != ENOENT && err != ENOTDIR) {
      return absl::InvalidArgumentError(absl::StrCat("cannot resolve ", BoundedQuote(path), ": ",
                                                     existing.string(), ": ", std::strerror(err)));
    }
    if (!existing.has_relative_path()) break;  // "/" itself
    missing.push_back(existing.filename());
    existing = existing.parent_path();
  }
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(existing.c_str(), nullptr),
                                                   &std::free);
  if (real == nullptr) {
    const int err = errno;
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve ", BoundedQuote(path), ": ",
                                                   existing.string(), ": ", std::strerror(err),
                                                   " (a dangling or looping symbolic link?)"));
  }
  fs::path out(real.get());
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (*it == "." || *it == "..") {  // unreachable after lexically_normal; kept as a guard
      return absl::InvalidArgumentError(
          absl::StrCat("cannot resolve ", BoundedQuote(path), ": '..' below ", out.string()));
    }
    out /= *it;
  }
  return out.string();
}

bool PathIsWithin(absl::string_view path, absl::string_view dir) {
  if (dir == "/") return absl::StartsWith(path, "/");
  return path == dir || (absl::StartsWith(path, dir) && path[dir.size()] == '/');
}

absl::Status CheckUriAllowed(absl::string_view uri, const std::vector<std::string>& roots,
                             absl::string_view what) {
  if (roots.empty()) return absl::OkStatus();
  absl::StatusOr<Location> loc = Locate(uri);
  if (!loc.ok()) {
    return absl::Status(loc.status().code(), absl::StrCat(what, ": ", loc.status().message()));
  }
  for (const std::string& root : roots) {
    absl::StatusOr<Location> r = Locate(root);
    if (r.ok() && Within(*loc, *r)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      what, " '", BoundedQuote(uri), "' resolves to ", BoundedQuote(Describe(*loc)),
      ", outside the allowed storage roots (", absl::StrJoin(roots, ", "),
      "); use a location under one of them (symbolic links and '..' leading out do not count), "
      "or start the coordinator and workers with an --allow-root that covers it"));
}

absl::StatusOr<bool> UriIsWithin(absl::string_view uri, absl::string_view dir) {
  absl::StatusOr<Location> lu = Locate(uri);
  if (!lu.ok()) return lu.status();
  absl::StatusOr<Location> ld = Locate(dir);
  if (!ld.ok()) return ld.status();
  return Within(*lu, *ld);
}

absl::StatusOr<bool> UrisOverlap(absl::string_view a, absl::string_view b) {
  absl::StatusOr<Location> la = Locate(a);
  if (!la.ok()) return la.status();
  absl::StatusOr<Location> lb = Locate(b);
  if (!lb.ok()) return lb.status();
  return Within(*la, *lb) || Within(*lb, *la);
}

}  // namespace caldera::storage
