#include "service_runtime/operator_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace caldera::service_runtime {
namespace {

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "something else";
}

// Closes the descriptor on every return path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  const int fd_;
};

}  // namespace

absl::StatusOr<std::string> ReadOperatorFile(const std::string& path, absl::string_view flag,
                                             uint64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
  // forever; it has no effect on the regular files accepted below.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " cannot be opened (",
                                                   std::strerror(errno),
                                                   "); give a readable regular file"));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, " cannot be stat'ed (", std::strerror(errno), ")"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " is not a regular file but ",
                                                   KindOf(st.st_mode), "; give a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " is ", st.st_size,
                                                   " bytes, above the limit of ", max_bytes,
                                                   " bytes for this file"));
  }
  // Reads at most max_bytes + 1: a file that grew since fstat is refused too.
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", path, " cannot be read (", std::strerror(errno), ")"));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
    if (done > max_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " grew above the limit of ",
                                                     max_bytes, " bytes while being read"));
    }
  }
  text.resize(done);
  return text;
}

FileStamp StampOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FileStamp{};
  return FileStamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
}

}  // namespace caldera::service_runtime
