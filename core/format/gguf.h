// GGUF v3, the file format of llama.cpp (docs/format/gguf.md): a header of
// typed metadata key/value pairs and tensor infos, then the tensor data, each
// tensor at an offset aligned to general.alignment (32 unless the metadata
// says otherwise). All integers little-endian.
//
// GgufWriter collects metadata and tensors (already encoded in their block
// type, see gguf_blocks.h) and serializes the whole file; ReadGguf parses one
// back (for our tests and the fuzzer: every count and offset is checked
// against the bytes before use).
//
// Dimensions are in GGML's order: ne[0] is the fastest-varying one, so a
// row-major [rows, cols] matrix is ne = {cols, rows}.
#ifndef CALDERA_CORE_FORMAT_GGUF_H_
#define CALDERA_CORE_FORMAT_GGUF_H_

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::format {

// GGML tensor types we write (ggml.h's enum ggml_type values).
enum class GgufType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
};

// "F32", "Q4_0", ...
absl::string_view GgufTypeName(GgufType type);
// Elements per block and bytes per block of `type` (1 and 4 for F32).
int64_t GgufBlockElements(GgufType type);
int64_t GgufBlockBytes(GgufType type);
// Bytes of a tensor of `elements` elements (a multiple of the block).
int64_t GgufTensorBytes(GgufType type, int64_t elements);

// A metadata value: the GGUF value types we use. Arrays are homogeneous.
using GgufValue = std::variant<uint32_t, int32_t, uint64_t, float, bool, std::string,
                               std::vector<std::string>, std::vector<float>, std::vector<int32_t>>;

struct GgufTensor {
  std::string name;
  GgufType type = GgufType::kF32;
  std::vector<int64_t> ne;  // ne[0] first (the row length)
  std::string data;         // GgufTensorBytes(type, prod(ne)) bytes
};

class GgufWriter {
 public:
  // `alignment` (a power of two) is written as general.alignment, first.
  explicit GgufWriter(uint32_t alignment = 32) : alignment_(alignment) {}
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Sets `key` (a later Set of the same key replaces it; keys are written in
  // the order first set).
  void Set(const std::string& key, GgufValue value);

  // Adds a tensor. INVALID_ARGUMENT for a duplicate name, a name over 64
  // bytes (GGML_MAX_NAME), 0 or more than 4 dimensions, a dimension < 1, ne[0]
  // not a multiple of the type's block, or data of the wrong size.
  absl::Status AddTensor(GgufTensor tensor);

  int64_t tensor_count() const { return static_cast<int64_t>(tensors_.size()); }

  // The whole file.
  std::string Serialize() const;

 private:
  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensor> tensors_;
};

// A parsed GGUF file.
struct GgufFile {
  uint32_t version = 0;
  std::map<std::string, GgufValue> metadata;  // value types outside GgufValue are skipped
  std::vector<GgufTensor> tensors;            // in file order, data copied out
};

// Parses `bytes` (`where` names it in messages). INVALID_ARGUMENT for a bad
// magic, a version other than 3, a truncated or inconsistent header, an
// unknown tensor type, or tensor data outside the file.
absl::StatusOr<GgufFile> ReadGguf(absl::string_view bytes, absl::string_view where);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_GGUF_H_
