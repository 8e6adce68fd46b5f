#include "model_io/hidden_states_stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <span>

#include "absl/strings/str_cat.h"
#include "model_io/model_inputs.h"
#include "storage/storage.h"

namespace caldera::model_io {
namespace {

absl::Status WriteFully(int fd, const std::string& bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(
          absl::StrCat("writing ", path, ": ", n < 0 ? std::strerror(errno) : "no progress"));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<HiddenStatesSource>> HiddenStatesSource::Open(
    const std::string& uri, const storage::StorageOptions& options,
    const model::ModelConfig& config) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader = OpenSafetensorsAt(uri, options);
  if (!reader.ok()) {
    return absl::Status(reader.status().code(),
                        absl::StrCat("reading ", uri, ": ", reader.status().message()));
  }
  absl::StatusOr<format::HiddenStatesLayout> layout =
      format::ReadHiddenStatesLayout(**reader, config.hidden_size, config.num_layers);
  if (!layout.ok()) return layout.status();
  std::unique_ptr<HiddenStatesSource> s(new HiddenStatesSource());
  s->reader_ = *std::move(reader);
  s->layout_ = *layout;
  return s;
}

uint64_t HiddenStatesSource::FileBytes() const {
  uint64_t end = 0;
  for (const TensorInfo& t : reader_->tensors()) end = std::max(end, t.end);
  return reader_->data_offset() + end;
}

absl::Status HiddenStatesSource::Read(int64_t first, int64_t count, model::RowMatrixF* out) const {
  out->resize(count * layout_.seq_len, layout_.hidden_size);
  return format::ReadHiddenStatesSequences(*reader_, layout_, first, count,
                                           std::span<float>(out->data(), out->size()));
}

absl::StatusOr<std::unique_ptr<HiddenStatesSink>> HiddenStatesSink::Create(
    const std::string& uri, const storage::StorageOptions& options,
    const format::HiddenStatesLayout& layout, const std::string& scratch_dir) {
  absl::StatusOr<std::string> header = format::HiddenStatesHeader(layout);
  if (!header.ok()) return header.status();
  if (absl::StatusOr<storage::StoreAndKey> where = storage::OpenUri(uri, options); !where.ok()) {
    return where.status();  // refuse before computing anything
  }
  std::error_code ec;
  const std::string dir =
      scratch_dir.empty() ? std::filesystem::temp_directory_path(ec).string() : scratch_dir;
  std::string path = absl::StrCat(dir, "/caldera-hidden-XXXXXX");
  const int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create a temporary file in ", dir, " for ", uri,
                                            ": ", std::strerror(errno),
                                            " (set TMPDIR to a writable directory)"));
  }
  std::unique_ptr<HiddenStatesSink> s(new HiddenStatesSink());
  s->uri_ = uri;
  s->options_ = options;
  s->layout_ = layout;
  s->temp_path_ = path;
  s->fd_ = fd;
  if (absl::Status w = WriteFully(fd, *header, path); !w.ok()) return w;
  s->bytes_ = static_cast<int64_t>(header->size());
  return s;
}

HiddenStatesSink::~HiddenStatesSink() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

absl::Status HiddenStatesSink::Append(const model::RowMatrixF& rows) {
  if (rows.cols() != layout_.hidden_size || rows.rows() % layout_.seq_len != 0) {
    return absl::InvalidArgumentError(absl::StrCat("hidden states for ", uri_, ": ", rows.rows(),
                                                   "x", rows.cols(), " is not whole sequences of ",
                                                   layout_.seq_len, " x ", layout_.hidden_size));
  }
  const int64_t sequences = rows.rows() / layout_.seq_len;
  if (fd_ < 0 || appended_ + sequences > layout_.samples) {
    return absl::FailedPreconditionError(
        absl::StrCat("hidden states for ", uri_, ": ", appended_ + sequences,
                     " sequences, the file holds ", layout_.samples));
  }
  buffer_.clear();
  format::AppendHiddenStatesValues(std::span<const float>(rows.data(), rows.size()), layout_.dtype,
                                   &buffer_);
  if (absl::Status s = WriteFully(fd_, buffer_, temp_path_); !s.ok()) return s;
  appended_ += sequences;
  bytes_ += static_cast<int64_t>(buffer_.size());
  return absl::OkStatus();
}

absl::StatusOr<int64_t> HiddenStatesSink::Finish() {
  if (fd_ < 0 || appended_ != layout_.samples) {
    return absl::FailedPreconditionError(absl::StrCat("hidden states for ", uri_, ": ", appended_,
                                                      " of ", layout_.samples,
                                                      " sequences written"));
  }
  std::string().swap(buffer_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    return absl::InternalError(absl::StrCat("closing ", temp_path_, ": ", std::strerror(errno)));
  }
  fd_ = -1;
  absl::StatusOr<storage::StoreAndKey> where = storage::OpenUri(uri_, options_);
  if (!where.ok()) return where.status();
  absl::StatusOr<storage::ObjectInfo> put = where->store->PutFile(where->key, temp_path_);
  if (!put.ok()) {
    return absl::Status(put.status().code(),
                        absl::StrCat("writing ", uri_, ": ", put.status().message()));
  }
  ::unlink(temp_path_.c_str());
  temp_path_.clear();
  return bytes_;
}

}  // namespace caldera::model_io
