#include "core/io/random_access_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace caldera {
namespace {

absl::Status ErrnoStatus(int err, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// Reads go through pread on the open descriptor, so a file truncated while open
// gives an OUT_OF_RANGE status instead of SIGBUS; the read-only mapping is kept
// only for MappedBytes() (zero-copy callers that accept that risk).
class MappedFileSource final : public RandomAccessSource {
 public:
  MappedFileSource(std::string path, int fd, const uint8_t* base, uint64_t size)
      : path_(std::move(path)), fd_(fd), base_(base), size_(size) {}
  ~MappedFileSource() override {
    if (base_ != nullptr && size_ > 0) munmap(const_cast<uint8_t*>(base_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MappedFileSource(const MappedFileSource&) = delete;
  MappedFileSource& operator=(const MappedFileSource&) = delete;

  uint64_t Size() const override { return size_; }
  absl::Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override {
    if (absl::Status s = CheckRange(path_, size_, offset, out.size()); !s.ok()) return s;
    uint64_t done = 0;
    while (done < out.size()) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size() - done, 1u << 30));
      const ssize_t n = ::pread(fd_, out.data() + done, want, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return ErrnoStatus(errno, absl::StrCat("reading ", path_, " at byte ", offset + done));
      }
      if (n == 0) {
        return absl::OutOfRangeError(
            absl::StrCat(path_, ": the file ends at byte ", offset + done, " but was ", size_,
                         " bytes when opened; it was truncated or replaced while in use"));
      }
      done += static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }
  const std::string& Name() const override { return path_; }
  std::span<const uint8_t> MappedBytes() const override { return {base_, size_}; }

 private:
  std::string path_;
  int fd_;
  const uint8_t* base_;
  uint64_t size_;
};

class MemorySource final : public RandomAccessSource {
 public:
  MemorySource(std::string name, std::vector<uint8_t> bytes)
      : name_(std::move(name)), bytes_(std::move(bytes)) {}
  uint64_t Size() const override { return bytes_.size(); }
  absl::Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override {
    if (absl::Status s = CheckRange(name_, bytes_.size(), offset, out.size()); !s.ok()) {
      return s;
    }
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return absl::OkStatus();
  }
  const std::string& Name() const override { return name_; }
  std::span<const uint8_t> MappedBytes() const override { return bytes_; }

 private:
  std::string name_;
  std::vector<uint8_t> bytes_;
};

}  // namespace

absl::Status CheckRange(const std::string& name, uint64_t size, uint64_t offset, uint64_t length) {
  if (offset > size || length > size - offset) {
    return absl::OutOfRangeError(absl::StrCat(name, ": byte range [", offset, ", ", offset + length,
                                              ") is beyond the end (size ", size,
                                              " bytes); the file is truncated"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RandomAccessSource>> OpenMappedFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
  // forever; it has no effect on the regular files we accept below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot open ", path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, absl::StrCat("cannot stat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint8_t* base = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, absl::StrCat("cannot mmap ", path));
    }
    base = static_cast<const uint8_t*>(p);
  }
  return std::unique_ptr<RandomAccessSource>(new MappedFileSource(path, fd, base, size));
}

std::unique_ptr<RandomAccessSource> MakeMemorySource(std::string name, std::vector<uint8_t> bytes) {
  return std::make_unique<MemorySource>(std::move(name), std::move(bytes));
}

}  // namespace caldera
