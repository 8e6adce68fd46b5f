#include "storage/output_probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "storage/allowed_roots.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::storage {
namespace {

namespace fs = std::filesystem;

absl::Status ErrnoStatus(int err, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == EACCES || err == EPERM || err == EROFS) {
    return absl::PermissionDeniedError(
        absl::StrCat(msg, "; check that the location is writable by the service"));
  }
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  if (err == ENOTDIR || err == EEXIST || err == ELOOP) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

// The local path of `dir_uri` (confined), or empty with `s3` set for S3 URIs.
absl::StatusOr<std::string> LocalPathOf(absl::string_view dir_uri, const StorageOptions& options,
                                        bool* s3) {
  absl::StatusOr<StorageUri> parsed = ParseStorageUri(dir_uri);
  if (!parsed.ok()) return parsed.status();
  *s3 = parsed->scheme == StorageUri::Scheme::kS3;
  if (*s3) return std::string();
  if (absl::Status s = CheckUriAllowed(dir_uri, options.allowed_roots, "output location");
      !s.ok()) {
    return s;
  }
  std::string p = parsed->path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

absl::Status ProbeLocal(const std::string& dir) {
  // The deepest existing ancestor (lstat: a dangling link counts as existing
  // and then fails the directory check below), and the components to create.
  fs::path existing(dir);
  std::vector<fs::path> missing;  // innermost first
  for (;;) {
    struct stat st {};
    if (::lstat(existing.c_str(), &st) == 0) break;
    const int err = errno;
    if ((err != ENOENT && err != ENOTDIR) || !existing.has_relative_path()) {
      return ErrnoStatus(err, absl::StrCat("cannot inspect ", existing.string()));
    }
    missing.push_back(existing.filename());
    existing = existing.parent_path();
  }
  struct stat st {};
  if (::stat(existing.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(existing.string(),
                     " exists and is not a directory; the output must be a "
                     "directory (or not exist yet)"));
  }
  std::vector<std::string> created;  // outermost first
  auto undo = [&created] {
    for (auto it = created.rbegin(); it != created.rend(); ++it) (void)::rmdir(it->c_str());
  };
  fs::path cur = existing;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    cur /= *it;
    if (::mkdir(cur.c_str(), 0755) != 0) {
      const int err = errno;
      undo();
      return ErrnoStatus(err, absl::StrCat("cannot create directory ", cur.string()));
    }
    created.push_back(cur.string());
  }
  std::string probe = absl::StrCat(dir, "/", kWriteProbePrefix, "-XXXXXX");
  const int fd = ::mkostemp(probe.data(), O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int err = errno;
    undo();
    return ErrnoStatus(err, absl::StrCat("cannot create a file in ", dir));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  undo();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ListEntries(absl::string_view dir_uri,
                                                     const StorageOptions& options,
                                                     size_t max_entries) {
  bool s3 = false;
  absl::StatusOr<std::string> local = LocalPathOf(dir_uri, options, &s3);
  if (!local.ok()) return local.status();
  std::vector<std::string> names;
  if (s3) {
    absl::StatusOr<StoreAndKey> sk = OpenUri(dir_uri, options);
    if (!sk.ok()) return sk.status();
    std::string prefix = sk->key;
    if (!prefix.empty() && prefix.back() != '/') prefix += '/';
    const int page_size = static_cast<int>(std::clamp<size_t>(max_entries, 1, 1000));
    absl::StatusOr<ListPage> page = sk->store->List(prefix, "", page_size);
    if (!page.ok()) return page.status();
    std::set<std::string> unique;
    for (const ObjectInfo& o : page->objects) {
      const std::string rest = o.key.substr(prefix.size());
      const size_t slash = rest.find('/');
      unique.insert(slash == std::string::npos ? rest : rest.substr(0, slash + 1));
    }
    names.assign(unique.begin(), unique.end());
  } else {
    struct stat st {};
    if (::stat(local->c_str(), &st) != 0) {
      const int err = errno;
      struct stat lst {};
      if ((err == ENOENT || err == ENOTDIR) && ::lstat(local->c_str(), &lst) != 0) {
        return names;  // absent
      }
      return absl::InvalidArgumentError(
          absl::StrCat(*local, " cannot be inspected (", std::strerror(err),
                       "); the output must be a directory (or not exist yet)"));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(*local,
                       " exists and is not a directory; the output must be a directory (or not "
                       "exist yet)"));
    }
    std::error_code ec;
    for (fs::directory_iterator it(*local, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      if (names.size() >= max_entries) break;
      const bool dir = it->symlink_status(ec).type() == fs::file_type::directory;
      names.push_back(it->path().filename().string() + (dir ? "/" : ""));
    }
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("cannot list ", *local, ": ", ec.message()));
    }
  }
  std::sort(names.begin(), names.end());
  if (names.size() > max_entries) names.resize(max_entries);
  return names;
}

absl::Status ProbeWritable(absl::string_view dir_uri, const StorageOptions& options) {
  bool s3 = false;
  absl::StatusOr<std::string> local = LocalPathOf(dir_uri, options, &s3);
  if (!local.ok()) return local.status();
  if (!s3) return ProbeLocal(*local);
  absl::StatusOr<StoreAndKey> sk = OpenUri(JoinKey(dir_uri, kWriteProbePrefix), options);
  if (!sk.ok()) return sk.status();
  if (auto put = sk->store->PutBytes(sk->key, "probe"); !put.ok()) return put.status();
  return sk->store->Delete(sk->key);
}

}  // namespace caldera::storage
