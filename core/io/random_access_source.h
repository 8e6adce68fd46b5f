// RandomAccessSource: read-only, random-access bytes (a local file, a byte
// range-capable remote object, a memory buffer). The safetensors reader and the
// model loader read through this interface so the core never links network code;
// the storage library adapts remote objects to it.
#ifndef CALDERA_CORE_IO_RANDOM_ACCESS_SOURCE_H_
#define CALDERA_CORE_IO_RANDOM_ACCESS_SOURCE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace caldera {

class RandomAccessSource {
 public:
  virtual ~RandomAccessSource() = default;

  // Total size in bytes.
  virtual uint64_t Size() const = 0;

  // Fills `out` with bytes [offset, offset + out.size()). OUT_OF_RANGE when the
  // range does not lie inside [0, Size()); other codes for I/O failures.
  // Implementations are safe to call from several threads at once.
  virtual absl::Status ReadAt(uint64_t offset, std::span<uint8_t> out) const = 0;

  // A name for error messages: a path or URI.
  virtual const std::string& Name() const = 0;

  // If the whole content is mapped in memory, its bytes; else an empty span.
  // Lets readers avoid a copy. For a local file the span is an mmap: touching
  // it after the file was truncated raises SIGBUS, so code that may meet files
  // changed under it (anything reading user input) reads with ReadAt instead.
  virtual std::span<const uint8_t> MappedBytes() const { return {}; }
};

// Opens a local regular file read-only (and maps it for MappedBytes). NOT_FOUND
// if it does not exist; INVALID_ARGUMENT "<path> is not a regular file" for a
// directory, FIFO, socket or device (opened non-blocking, so a FIFO never
// stalls the caller); PERMISSION_DENIED / INTERNAL for other open/mmap failures
// (message names path). ReadAt uses pread: a file truncated while open gives
// OUT_OF_RANGE, never SIGBUS.
absl::StatusOr<std::unique_ptr<RandomAccessSource>> OpenMappedFile(const std::string& path);

// A source over an owned byte buffer (tests, small downloaded objects).
std::unique_ptr<RandomAccessSource> MakeMemorySource(std::string name, std::vector<uint8_t> bytes);

// Checks that [offset, offset+length) lies inside a source of `size` bytes,
// without overflow. OUT_OF_RANGE naming `name` otherwise.
absl::Status CheckRange(const std::string& name, uint64_t size, uint64_t offset, uint64_t length);

}  // namespace caldera

#endif  // CALDERA_CORE_IO_RANDOM_ACCESS_SOURCE_H_
