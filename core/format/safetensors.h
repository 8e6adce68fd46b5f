// Reading and writing the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [b, e]},
// "__metadata__": {str: str}}, then the data section; offsets are relative to
// the start of the data section.
//
// The reader validates the whole header at Open() and never trusts it: header
// length beyond the file or above kMaxHeaderBytes, invalid JSON, unknown dtype,
// offsets out of bounds, overlapping ranges, ranges not aligned to the dtype size,
// shape x dtype size not matching the range, duplicate names. Every error is
// INVALID_ARGUMENT (or OUT_OF_RANGE for truncation) and names the file and the
// tensor. Reads go through RandomAccessSource, so a remote object is read as
// three ranged reads: the 8-byte length, the header, then only the tensors asked for.
#ifndef CALDERA_CORE_FORMAT_SAFETENSORS_H_
#define CALDERA_CORE_FORMAT_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/io/random_access_source.h"
#include "core/tensor/tensor.h"

namespace caldera {

// Where one tensor lives in a safetensors file.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets relative to the data section
  uint64_t end = 0;
};

class SafetensorsReader {
 public:
  // Headers larger than this are rejected as corrupt (100 MiB, as upstream).
  static constexpr uint64_t kMaxHeaderBytes = 100u << 20;

  // Reads and validates the header from `source`. The reader owns the source.
  static absl::StatusOr<std::unique_ptr<SafetensorsReader>> Open(
      std::unique_ptr<RandomAccessSource> source);
  // Memory-maps a local file and opens it.
  static absl::StatusOr<std::unique_ptr<SafetensorsReader>> OpenFile(const std::string& path);

  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  // All tensors, ordered by their offset in the file.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* Find(absl::string_view name) const;
  // The "__metadata__" map (empty if absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // File name or URI, as given by the source.
  const std::string& name() const { return source_->Name(); }
  // Byte offset of the data section (8 + header length).
  uint64_t data_offset() const { return data_offset_; }

  // Reads one tensor (only its byte range). NOT_FOUND names the file and the tensor.
  absl::StatusOr<Tensor> Read(absl::string_view name) const;
  // Bytes [offset, offset + out.size()) of tensor `info` (one of tensors()),
  // offset relative to the tensor's first byte: a ranged read (pread, or a
  // ranged GET for a remote object), for reading a large tensor in chunks.
  // OUT_OF_RANGE when the range does not lie inside the tensor.
  absl::Status ReadTensorRange(const TensorInfo& info, uint64_t offset,
                               std::span<uint8_t> out) const;
  // Reads one tensor and converts it (e.g. BF16 -> F32).
  absl::StatusOr<Tensor> ReadAs(absl::string_view name, DType dtype) const;
  // The tensor's bytes inside a memory-mapped source, without copying (valid as
  // long as this reader lives). FAILED_PRECONDITION when the source is not
  // mapped (a remote object: use Read), NOT_FOUND for an unknown name.
  // Touching the span after the file was truncated raises SIGBUS: code that
  // reads user-supplied files uses Read (pread; truncation is a status).
  absl::StatusOr<std::span<const uint8_t>> MappedTensorBytes(absl::string_view name) const;

 private:
  SafetensorsReader() = default;

  std::unique_ptr<RandomAccessSource> source_;
  uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors and writes them as one safetensors file. The header JSON is
// padded with spaces to a multiple of 8, so the data section starts 8-byte
// aligned. Tensors are laid out contiguously (no gaps: upstream readers reject
// holes) ordered by element size, largest first, stable in the order added, so
// every tensor starts aligned to its own element size; 8-byte dtypes (F64, I64)
// come first and start 8-byte aligned. Tensors are owned by the writer until it
// is destroyed; Serialize()/WriteFile() may be called any number of times.
class SafetensorsWriter {
 public:
  SafetensorsWriter() = default;

  // INVALID_ARGUMENT for an empty or duplicate name, or the reserved "__metadata__".
  absl::Status Add(std::string name, Tensor tensor);
  void SetMetadata(std::string key, std::string value);

  size_t size() const { return entries_.size(); }

  // The whole file as bytes (for uploading to object storage).
  absl::StatusOr<std::string> Serialize() const;
  // Writes atomically: a temporary file in the same directory, fsync, rename.
  absl::Status WriteFile(const std::string& path) const;
  // The same bytes as a source named `name` that owns the tensors (this
  // writer is left empty), for streaming them to object storage (ObjectStore::
  // Put) with neither a copy in memory nor a local file.
  std::unique_ptr<RandomAccessSource> ToSource(std::string name) &&;

 private:
  struct Entry {
    std::string name;
    Tensor tensor;
  };
  std::string HeaderJson() const;

  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// model.safetensors.index.json: which shard file holds each tensor.
struct CheckpointIndex {
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name
  std::map<std::string, std::string> metadata;    // e.g. "total_size" -> "123"
};

// Parses an index JSON. `name` is used in error messages.
absl::StatusOr<CheckpointIndex> ParseCheckpointIndex(absl::string_view json,
                                                     absl::string_view name);
std::string SerializeCheckpointIndex(const CheckpointIndex& index);

}  // namespace caldera

#endif  // CALDERA_CORE_FORMAT_SAFETENSORS_H_
