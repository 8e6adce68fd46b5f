// Hidden states streamed through object storage in chunks of sequences, so a
// calibrate task never holds a whole layer's states: HiddenStatesSource reads
// sequences with ranged reads (pread for local files, ranged GETs for s3://);
// HiddenStatesSink writes the header, then appends chunks to a local
// temporary file, and uploads it on Finish() (streamed from the file: S3
// multipart above the store's threshold, a copy and atomic rename locally).
// The file format is owned by core/format/hidden_states.h.
//
// Neither class is thread-safe. A sink that is destroyed without Finish()
// removes its temporary file and writes nothing.
#ifndef CALDERA_MODEL_IO_HIDDEN_STATES_STREAM_H_
#define CALDERA_MODEL_IO_HIDDEN_STATES_STREAM_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/format/hidden_states.h"
#include "core/format/safetensors.h"
#include "core/model/llama_block.h"
#include "core/model/model_config.h"
#include "storage/storage_options.h"

namespace caldera::model_io {

class HiddenStatesSource {
 public:
  // Opens and validates the file at `uri` against `config` (header only).
  static absl::StatusOr<std::unique_ptr<HiddenStatesSource>> Open(
      const std::string& uri, const storage::StorageOptions& options,
      const model::ModelConfig& config);

  const format::HiddenStatesLayout& layout() const { return layout_; }
  // Bytes of the file (header and data), for I/O accounting.
  uint64_t FileBytes() const;
  // Sequences [first, first + count) into `out` ([count*seq_len, hidden],
  // resized), widened to float32.
  absl::Status Read(int64_t first, int64_t count, model::RowMatrixF* out) const;

 private:
  HiddenStatesSource() = default;
  std::unique_ptr<SafetensorsReader> reader_;
  format::HiddenStatesLayout layout_;
};

class HiddenStatesSink {
 public:
  // A sink for `layout.samples` sequences, uploaded to `uri` on Finish().
  // The temporary file lives in `scratch_dir` (empty: the system's temporary
  // directory, $TMPDIR).
  static absl::StatusOr<std::unique_ptr<HiddenStatesSink>> Create(
      const std::string& uri, const storage::StorageOptions& options,
      const format::HiddenStatesLayout& layout, const std::string& scratch_dir = "");
  ~HiddenStatesSink();
  HiddenStatesSink(const HiddenStatesSink&) = delete;
  HiddenStatesSink& operator=(const HiddenStatesSink&) = delete;

  // Appends whole sequences (rows a multiple of seq_len, hidden_size columns),
  // encoded in the layout's dtype. FAILED_PRECONDITION past `samples`.
  absl::Status Append(const model::RowMatrixF& rows);
  // Uploads the file; FAILED_PRECONDITION unless exactly `samples` sequences
  // were appended. Returns the bytes written.
  absl::StatusOr<int64_t> Finish();

 private:
  HiddenStatesSink() = default;
  std::string uri_;
  storage::StorageOptions options_;
  format::HiddenStatesLayout layout_;
  std::string temp_path_;
  int fd_ = -1;
  int64_t appended_ = 0;  // sequences
  int64_t bytes_ = 0;
  std::string buffer_;  // one chunk's encoding, reused
};

}  // namespace caldera::model_io

#endif  // CALDERA_MODEL_IO_HIDDEN_STATES_STREAM_H_
