#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/format/safetensors.h"
#include "nlohmann/json.hpp"

namespace caldera {
namespace {

// Order in which entries are laid out: larger element sizes first (stable), so
// every tensor starts aligned to its element size with no gaps, as upstream does.
std::vector<size_t> LayoutOrder(const std::vector<size_t>& elem_sizes) {
  std::vector<size_t> order(elem_sizes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return elem_sizes[a] > elem_sizes[b]; });
  return order;
}

absl::Status WriteAll(int fd, const uint8_t* data, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("writing ", path, ": ", std::strerror(errno)));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// The bytes of a file: a prefix (length and header) then tensors, in order.
class WriterSource : public RandomAccessSource {
 public:
  WriterSource(std::string name, std::string prefix, std::vector<Tensor> tensors)
      : name_(std::move(name)), prefix_(std::move(prefix)), tensors_(std::move(tensors)) {
    size_ = prefix_.size();
    for (const Tensor& t : tensors_) size_ += t.nbytes();
  }
  uint64_t Size() const override { return size_; }
  const std::string& Name() const override { return name_; }
  absl::Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override {
    if (absl::Status s = CheckRange(name_, size_, offset, out.size()); !s.ok()) return s;
    uint64_t start = 0;  // of the current part
    size_t done = 0;
    auto copy = [&](const uint8_t* part, uint64_t part_size) {
      const uint64_t end = start + part_size;
      const uint64_t at = offset + done;
      if (done < out.size() && at < end && at >= start) {
        const uint64_t n = std::min<uint64_t>(end - at, out.size() - done);
        std::memcpy(out.data() + done, part + (at - start), n);
        done += n;
      }
      start = end;
    };
    copy(reinterpret_cast<const uint8_t*>(prefix_.data()), prefix_.size());
    for (const Tensor& t : tensors_) {
      if (done == out.size()) break;
      std::span<const uint8_t> b = t.bytes();
      copy(b.data(), b.size());
    }
    return absl::OkStatus();
  }

 private:
  std::string name_;
  std::string prefix_;
  std::vector<Tensor> tensors_;
  uint64_t size_ = 0;
};

}  // namespace

absl::Status SafetensorsWriter::Add(std::string name, Tensor tensor) {
  if (name.empty()) return absl::InvalidArgumentError("safetensors: empty tensor name");
  if (name == "__metadata__") {
    return absl::InvalidArgumentError("safetensors: \"__metadata__\" is reserved");
  }
  for (const Entry& e : entries_) {
    if (e.name == name) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: tensor '", name, "' added twice"));
    }
  }
  entries_.push_back(Entry{std::move(name), std::move(tensor)});
  return absl::OkStatus();
}

void SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

std::string SafetensorsWriter::HeaderJson() const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::vector<size_t> sizes;
  for (const Entry& e : entries_) sizes.push_back(DTypeSize(e.tensor.dtype()));
  uint64_t offset = 0;
  for (size_t i : LayoutOrder(sizes)) {
    const Entry& e = entries_[i];
    nlohmann::ordered_json t;
    t["dtype"] = std::string(DTypeName(e.tensor.dtype()));
    t["shape"] = e.tensor.shape();
    t["data_offsets"] = {offset, offset + e.tensor.nbytes()};
    offset += e.tensor.nbytes();
    header[e.name] = std::move(t);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  return json;
}

absl::StatusOr<std::string> SafetensorsWriter::Serialize() const {
  const std::string header = HeaderJson();
  size_t total = 8 + header.size();
  for (const Entry& e : entries_) total += e.tensor.nbytes();
  std::string out;
  out.reserve(total);
  uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  out += header;
  std::vector<size_t> sizes;
  for (const Entry& e : entries_) sizes.push_back(DTypeSize(e.tensor.dtype()));
  for (size_t i : LayoutOrder(sizes)) {
    std::span<const uint8_t> b = entries_[i].tensor.bytes();
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return out;
}

absl::Status SafetensorsWriter::WriteFile(const std::string& path) const {
  const std::string header = HeaderJson();
  std::string tmpl = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create a temporary file beside ", path, ": ", std::strerror(errno)));
  }
  auto fail = [&](absl::Status s) {
    ::close(fd);
    ::unlink(tmpl.c_str());
    return s;
  };
  uint8_t len_bytes[8];
  const uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>((len >> (8 * i)) & 0xFF);
  if (absl::Status s = WriteAll(fd, len_bytes, 8, tmpl); !s.ok()) return fail(s);
  if (absl::Status s =
          WriteAll(fd, reinterpret_cast<const uint8_t*>(header.data()), header.size(), tmpl);
      !s.ok()) {
    return fail(s);
  }
  std::vector<size_t> sizes;
  for (const Entry& e : entries_) sizes.push_back(DTypeSize(e.tensor.dtype()));
  for (size_t i : LayoutOrder(sizes)) {
    std::span<const uint8_t> b = entries_[i].tensor.bytes();
    if (absl::Status s = WriteAll(fd, b.data(), b.size(), tmpl); !s.ok()) return fail(s);
  }
  ::fchmod(fd, 0644);
  if (::fsync(fd) != 0) {
    return fail(absl::InternalError(absl::StrCat("fsync ", tmpl, ": ", std::strerror(errno))));
  }
  ::close(fd);
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    return absl::InternalError(
        absl::StrCat("renaming ", tmpl, " to ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

std::unique_ptr<RandomAccessSource> SafetensorsWriter::ToSource(std::string name) && {
  const std::string header = HeaderJson();
  std::string prefix;
  const uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) prefix.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  prefix += header;
  std::vector<size_t> sizes;
  for (const Entry& e : entries_) sizes.push_back(DTypeSize(e.tensor.dtype()));
  std::vector<Tensor> tensors;
  for (size_t i : LayoutOrder(sizes)) tensors.push_back(std::move(entries_[i].tensor));
  entries_.clear();
  metadata_.clear();
  return std::make_unique<WriterSource>(std::move(name), std::move(prefix), std::move(tensors));
}

}  // namespace caldera
