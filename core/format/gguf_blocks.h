// GGML block encodings of matrices for GGUF (gguf.h), from what our
// quantizers store (docs/format/gguf.md):
//   Q8_0: per 32 elements of a row, d (fp16) then 32 int8 q; value q·d.
//   Q4_0: per 32 elements, d (fp16) then 16 bytes, byte j holding element j
//         in its low nibble and element j + 16 in its high one, each as
//         q + 8; value (nibble - 8)·d.
// These are exactly the int grid of core/quant/int_quantizer.h at group 32
// (q·scale, fp16 scale, q in [-2^(b-1), 2^(b-1) - 1]): the codes it stores
// (q + 2^(b-1)) and its scales map one to one, so llama.cpp's dequantized
// weights equal our Q to the last bit in float32.
// Also F16 and F32 rows, a row permutation of any encoding, and dequantizing
// (for tests and checks; the same formulas as ggml's reference code).
#ifndef CALDERA_CORE_FORMAT_GGUF_BLOCKS_H_
#define CALDERA_CORE_FORMAT_GGUF_BLOCKS_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/format/gguf.h"

namespace caldera::format {

// A rows x cols matrix on the int grid as Q4_0 (bits 4) or Q8_0 (bits 8):
// `codes` holds rows·cols codes q + 2^(bits-1), row-major, one per byte;
// `scale_bits` the fp16 scales [rows, cols / 32]. INVALID_ARGUMENT when cols
// is not a multiple of 32, bits is not 4 or 8, a code is out of range or the
// sizes disagree.
absl::StatusOr<std::string> EncodeIntGrid(int bits, int64_t rows, int64_t cols,
                                          std::span<const uint8_t> codes,
                                          std::span<const uint16_t> scale_bits);

// The GGUF type of the int grid at `bits` (Q4_0 or Q8_0).
GgufType IntGridType(int bits);

// A rows x cols matrix on Q4_K's grid (core/quant/q4k_quantizer.h) as Q4_K:
// per 256 values d, dmin (fp16), the 8 sub-blocks' 6-bit scales and minimums
// packed in 12 bytes (ggml's get_scale_min_k4 reads them back: bytes 0-3 the
// low 6 bits of scales 0-3 with the top 2 bits of scales 4-7 above, bytes 4-7
// the same for the minimums, bytes 8-11 the low nibbles of scales 4-7 and,
// above, of minimums 4-7), then 128 bytes: of each 64 values, byte l holds
// value l in its low nibble and value l + 32 in its high one. `codes` q in
// [0, 15] row-major; `scales`, `mins` [rows, cols / 32] below 64; `d_bits`,
// `dmin_bits` [rows, cols / 256]. INVALID_ARGUMENT when cols is not a multiple
// of 256 or a value is out of range.
absl::StatusOr<std::string> EncodeQ4K(int64_t rows, int64_t cols, std::span<const uint8_t> codes,
                                      std::span<const uint8_t> scales,
                                      std::span<const uint8_t> mins,
                                      std::span<const uint16_t> d_bits,
                                      std::span<const uint16_t> dmin_bits);

// Float rows as F32 or F16 (round to nearest even).
std::string EncodeFloat(GgufType type, std::span<const float> values);

// The rows of an encoded rows-row matrix reordered: row i of the result is
// row source[i] of `data` (each row data.size() / rows bytes).
std::string PermuteRows(const std::string& data, std::span<const int64_t> source);

// The float32 values of an encoded tensor of `elements` elements (F32, F16,
// Q4_0, Q8_0, Q4_K). INVALID_ARGUMENT for another type or a size mismatch.
absl::StatusOr<std::vector<float>> DequantizeGguf(GgufType type, const std::string& data,
                                                  int64_t elements);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_GGUF_BLOCKS_H_
