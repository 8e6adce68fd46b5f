#include "storage/local_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/allowed_roots.h"
#include "storage/sha256.h"

namespace caldera::storage {
namespace {

namespace fs = std::filesystem;
constexpr char kShaXattr[] = "user.caldera.sha256";
constexpr char kTempMarker[] = ".caldera-tmp-";
// The directory of a job's scratch data (job/task_plan.h ScratchPrefix).
constexpr char kScratchDir[] = ".caldera-scratch";

absl::Status ErrnoError(int err, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM || err == EROFS) {
    return absl::PermissionDeniedError(
        absl::StrCat(msg, "; check that the path is writable by this process"));
  }
  if (err == ENOSPC) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

std::string ReadXattr(const std::string& path) {
  char buf[128];
  const ssize_t n = ::getxattr(path.c_str(), kShaXattr, buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

absl::Status WriteAll(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, absl::StrCat("writing ", path));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

}  // namespace

LocalStore::LocalStore(std::string root) : root_(fs::path(root).lexically_normal().string()) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

absl::StatusOr<std::string> LocalStore::PathOf(const std::string& key) const {
  const std::string p =
      (fs::path(root_) / fs::path(key).relative_path()).lexically_normal().string();
  if (!PathIsWithin(p, root_)) {
    return absl::PermissionDeniedError(
        absl::StrCat("key '", key, "' resolves to ", p, ", outside the allowed root ", root_));
  }
  // The same resolution as the service's allow-list (storage/allowed_roots.h):
  // symbolic links on the existing part of the path are followed, so a link
  // cannot lead outside the root either.
  absl::StatusOr<std::string> real = ResolveLocalPath(p);
  absl::StatusOr<std::string> real_root = ResolveLocalPath(root_);
  if (real.ok() && real_root.ok() && !PathIsWithin(*real, *real_root)) {
    return absl::PermissionDeniedError(absl::StrCat("key '", key, "' leads through a link to ",
                                                    *real, ", outside the allowed root ", root_));
  }
  return p;
}

std::string LocalStore::UriOf(const std::string& key) const {
  absl::StatusOr<std::string> p = PathOf(key);
  return absl::StrCat("file://", p.ok() ? *p : root_ + "/" + key);
}

absl::StatusOr<std::string> LocalStore::Get(const std::string& key) {
  absl::StatusOr<ObjectInfo> info = Head(key);
  if (!info.ok()) return info.status();
  return GetRange(key, 0, info->size);
}

absl::StatusOr<std::string> LocalStore::GetRange(const std::string& key, uint64_t offset,
                                                 uint64_t length) {
  absl::StatusOr<std::string> path = PathOf(key);
  if (!path.ok()) return path.status();
  // O_NONBLOCK: a FIFO at the path must not stall the reader waiting for a writer.
  const int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("cannot open ", *path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError(err, absl::StrCat("cannot stat ", *path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(*path, " is not a regular file"));
  }
  if (absl::Status s = CheckRange(*path, static_cast<uint64_t>(st.st_size), offset, length);
      !s.ok()) {
    ::close(fd);
    return s;
  }
  std::string out(length, '\0');
  uint64_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd, out.data() + done, length - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return ErrnoError(err, absl::StrCat("reading ", *path));
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return out;
}

absl::StatusOr<ObjectInfo> LocalStore::Put(const std::string& key, const RandomAccessSource& body) {
  absl::StatusOr<std::string> path = PathOf(key);
  if (!path.ok()) return path.status();
  const fs::path target(*path);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) {
    return ErrnoError(ec.value(),
                      absl::StrCat("cannot create directory ", target.parent_path().string()));
  }
  std::string tmp =
      (target.parent_path() / absl::StrCat(".", target.filename().string(), kTempMarker, "XXXXXX"))
          .string();
  // O_EXCL (mkostemp) and O_NOFOLLOW: a link planted at the name is never followed.
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return ErrnoError(errno,
                      absl::StrCat("cannot create a file in ", target.parent_path().string()));
  auto fail = [&](absl::Status s) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  Sha256 sha;
  const uint64_t size = body.Size();
  // Always through ReadAt: a mapped local file truncated meanwhile then gives a
  // status instead of SIGBUS.
  std::vector<uint8_t> buf(std::min<uint64_t>(size, 8u << 20));
  for (uint64_t done = 0; done < size;) {
    const uint64_t n = std::min<uint64_t>(buf.size(), size - done);
    std::span<uint8_t> chunk(buf.data(), n);
    if (absl::Status s = body.ReadAt(done, chunk); !s.ok()) return fail(s);
    sha.Update(absl::string_view(reinterpret_cast<const char*>(buf.data()), n));
    if (absl::Status s = WriteAll(fd, buf.data(), n, tmp); !s.ok()) return fail(s);
    done += n;
  }
  ObjectInfo info;
  info.key = key;
  info.size = size;
  info.sha256 = sha.FinishHex();
  ::fchmod(fd, 0644);
  if (::fsync(fd) != 0) return fail(ErrnoError(errno, absl::StrCat("fsync ", tmp)));
  // Best effort: tmpfs without user xattrs and some overlay file systems refuse.
  (void)::fsetxattr(fd, kShaXattr, info.sha256.data(), info.sha256.size(), 0);
  ::close(fd);
  if (::rename(tmp.c_str(), path->c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(err, absl::StrCat("cannot rename into ", *path));
  }
  return info;
}

absl::StatusOr<ObjectInfo> LocalStore::Head(const std::string& key) {
  absl::StatusOr<std::string> path = PathOf(key);
  if (!path.ok()) return path.status();
  struct stat st {};
  if (::stat(path->c_str(), &st) != 0) {
    return ErrnoError(errno, absl::StrCat("no object at ", *path));
  }
  if (!S_ISREG(st.st_mode)) return absl::NotFoundError(absl::StrCat(*path, " is not a file"));
  ObjectInfo info;
  info.key = key;
  info.size = static_cast<uint64_t>(st.st_size);
  info.etag = absl::StrCat(st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, "-", st.st_size);
  info.sha256 = ReadXattr(*path);
  return info;
}

absl::StatusOr<ListPage> LocalStore::List(const std::string& prefix, const std::string& page_token,
                                          int page_size) {
  if (page_size < 1 || page_size > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", page_size, " out of range; use 1..1000"));
  }
  // Walk the deepest directory that contains every key with this prefix.
  const std::string dir_part =
      prefix.find('/') == std::string::npos ? "" : prefix.substr(0, prefix.rfind('/'));
  absl::StatusOr<std::string> start = PathOf(dir_part);
  if (!start.ok()) return start.status();
  std::vector<std::string> keys;
  std::error_code ec;
  if (fs::is_directory(*start, ec)) {
    const size_t root_len = root_ == "/" ? 1 : root_.size() + 1;
    for (auto it = fs::recursive_directory_iterator(*start, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      const std::string p = it->path().string();
      if (p.find(kTempMarker) != std::string::npos) continue;
      std::string key = p.substr(root_len);
      if (absl::StartsWith(key, prefix) && key > page_token) keys.push_back(std::move(key));
    }
  }
  std::sort(keys.begin(), keys.end());
  ListPage page;
  for (const std::string& k : keys) {
    if (static_cast<int>(page.objects.size()) == page_size) {
      page.next_page_token = page.objects.back().key;
      break;
    }
    absl::StatusOr<ObjectInfo> info = Head(k);
    if (info.ok()) page.objects.push_back(*std::move(info));
  }
  return page;
}

absl::Status LocalStore::Delete(const std::string& key) {
  absl::StatusOr<std::string> path = PathOf(key);
  if (!path.ok()) return path.status();
  if (::unlink(path->c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, absl::StrCat("cannot delete ", *path));
  }
  PruneEmptyScratchParents(*path);
  return absl::OkStatus();
}

absl::Status LocalStore::RemoveAbandonedWrites(const std::string& prefix) {
  absl::StatusOr<std::string> path = PathOf(prefix);
  if (!path.ok()) return path.status();
  std::error_code ec;
  if (!fs::is_directory(*path, ec)) return absl::OkStatus();
  std::vector<std::string> temps, dirs;
  for (auto it = fs::recursive_directory_iterator(*path, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      dirs.push_back(it->path().string());
    } else if (it->is_regular_file(ec) &&
               it->path().filename().string().find(kTempMarker) != std::string::npos) {
      temps.push_back(it->path().string());
    }
  }
  for (const std::string& t : temps) {
    if (::unlink(t.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError(errno, absl::StrCat("cannot delete ", t));
    }
    PruneEmptyScratchParents(t);
  }
  // A remover killed between unlinking a scratch tree's last object and
  // pruning its directory leaves that directory empty; the next removal lists
  // no object there to prune from. Deepest first, so parents empty in turn.
  std::sort(dirs.begin(), dirs.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const std::string& d : dirs) PruneEmptyScratchParents(d + "/-");
  std::string top = *path;
  while (top.size() > 1 && top.back() == '/') top.pop_back();
  PruneEmptyScratchParents(top + "/-");
  return absl::OkStatus();
}

void LocalStore::PruneEmptyScratchParents(const std::string& removed_path) const {
  // Directories are not objects (as in S3): remove the parents it leaves
  // empty inside a scratch tree (up to and including the directory named
  // kScratchDir), never above it: a directory outside scratch may have
  // existed before we wrote into it. rmdir fails on the first non-empty one.
  std::string dir = removed_path;
  for (;;) {
    const size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos) break;
    dir.resize(slash);
    const size_t scratch = dir.find(absl::StrCat("/", kScratchDir));
    if (scratch == std::string::npos || dir.size() <= root_.size()) break;
    const size_t end = scratch + 1 + std::strlen(kScratchDir);
    if (end != dir.size() && dir[end] != '/') break;  // ".caldera-scratchX" is not one
    if (::rmdir(dir.c_str()) != 0) break;
  }
}

absl::Status LocalStore::Copy(const std::string& from_key, const std::string& to_key) {
  absl::StatusOr<std::string> from = PathOf(from_key);
  if (!from.ok()) return from.status();
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = OpenMappedFile(*from);
  if (!src.ok()) return src.status();
  return Put(to_key, **src).status();
}

}  // namespace caldera::storage
