#include "core/format/gguf_blocks.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/tensor/half.h"

namespace caldera::format {
namespace {

constexpr int64_t kBlock = 32;

void PutHalf(char* at, uint16_t bits) { std::memcpy(at, &bits, 2); }
uint16_t GetHalf(const char* at) {
  uint16_t bits;
  std::memcpy(&bits, at, 2);
  return bits;
}

}  // namespace

GgufType IntGridType(int bits) { return bits == 4 ? GgufType::kQ4_0 : GgufType::kQ8_0; }

absl::StatusOr<std::string> EncodeIntGrid(int bits, int64_t rows, int64_t cols,
                                          std::span<const uint8_t> codes,
                                          std::span<const uint16_t> scale_bits) {
  if (bits != 4 && bits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: an int grid of ", bits, " bits has no block type (4: Q4_0, 8: Q8_0)"));
  }
  if (rows < 1 || cols < 1 || cols % kBlock != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF: a ", rows, "x", cols, " matrix cannot be stored in blocks of 32 along its rows"));
  }
  const int64_t groups = cols / kBlock;
  if (static_cast<int64_t>(codes.size()) != rows * cols ||
      static_cast<int64_t>(scale_bits.size()) != rows * groups) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF: ", codes.size(), " codes and ",
                                                   scale_bits.size(), " scales for a ", rows, "x",
                                                   cols, " matrix in groups of 32"));
  }
  const GgufType type = IntGridType(bits);
  const int64_t block_bytes = GgufBlockBytes(type);
  std::string out(static_cast<size_t>(rows * groups * block_bytes), '\0');
  const int max_code = (1 << bits) - 1;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      char* block = out.data() + (r * groups + g) * block_bytes;
      PutHalf(block, scale_bits[static_cast<size_t>(r * groups + g)]);
      const uint8_t* q = codes.data() + r * cols + g * kBlock;
      for (int64_t j = 0; j < kBlock; ++j) {
        if (q[j] > max_code) {
          return absl::InvalidArgumentError(
              absl::StrCat("GGUF: code ", int{q[j]}, " of row ", r, " exceeds ", bits, " bits"));
        }
      }
      if (bits == 8) {
        for (int64_t j = 0; j < kBlock; ++j) {
          block[2 + j] = static_cast<char>(static_cast<int8_t>(int{q[j]} - 128));
        }
      } else {
        for (int64_t j = 0; j < kBlock / 2; ++j) {
          block[2 + j] = static_cast<char>(q[j] | (q[j + kBlock / 2] << 4));
        }
      }
    }
  }
  return out;
}

absl::StatusOr<std::string> EncodeQ4K(int64_t rows, int64_t cols, std::span<const uint8_t> codes,
                                      std::span<const uint8_t> scales,
                                      std::span<const uint8_t> mins,
                                      std::span<const uint16_t> d_bits,
                                      std::span<const uint16_t> dmin_bits) {
  constexpr int64_t kSuper = 256, kSub = 32;
  if (rows < 1 || cols < 1 || cols % kSuper != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF: a ", rows, "x", cols, " matrix cannot be stored in Q4_K's blocks of 256"));
  }
  const int64_t subs = cols / kSub, supers = cols / kSuper;
  if (static_cast<int64_t>(codes.size()) != rows * cols ||
      static_cast<int64_t>(scales.size()) != rows * subs ||
      static_cast<int64_t>(mins.size()) != rows * subs ||
      static_cast<int64_t>(d_bits.size()) != rows * supers ||
      static_cast<int64_t>(dmin_bits.size()) != rows * supers) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: Q4_K parts of the wrong size for a ", rows, "x", cols, " matrix"));
  }
  for (uint8_t q : codes) {
    if (q > 15) return absl::InvalidArgumentError("GGUF: a Q4_K code exceeds 4 bits");
  }
  for (size_t i = 0; i < scales.size(); ++i) {
    if (scales[i] > 63 || mins[i] > 63) {
      return absl::InvalidArgumentError("GGUF: a Q4_K scale or minimum exceeds 6 bits");
    }
  }
  const int64_t block_bytes = GgufBlockBytes(GgufType::kQ4_K);
  std::string out(static_cast<size_t>(rows * supers * block_bytes), '\0');
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < supers; ++b) {
      char* block = out.data() + (r * supers + b) * block_bytes;
      PutHalf(block, d_bits[r * supers + b]);
      PutHalf(block + 2, dmin_bits[r * supers + b]);
      const uint8_t* sc = scales.data() + r * subs + b * 8;
      const uint8_t* m = mins.data() + r * subs + b * 8;
      auto* packed = reinterpret_cast<uint8_t*>(block + 4);
      for (int j = 0; j < 4; ++j) {
        packed[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
        packed[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
        packed[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
      }
      auto* qs = reinterpret_cast<uint8_t*>(block + 16);
      const uint8_t* q = codes.data() + r * cols + b * kSuper;
      for (int64_t chunk = 0; chunk < 4; ++chunk) {
        for (int64_t l = 0; l < 32; ++l) {
          qs[chunk * 32 + l] =
              static_cast<uint8_t>(q[chunk * 64 + l] | (q[chunk * 64 + 32 + l] << 4));
        }
      }
    }
  }
  return out;
}

std::string EncodeFloat(GgufType type, std::span<const float> values) {
  if (type == GgufType::kF32) {
    std::string out(values.size() * 4, '\0');
    std::memcpy(out.data(), values.data(), out.size());
    return out;
  }
  std::vector<uint16_t> half(values.size());
  FloatToHalf(values, half);
  std::string out(values.size() * 2, '\0');
  std::memcpy(out.data(), half.data(), out.size());
  return out;
}

std::string PermuteRows(const std::string& data, std::span<const int64_t> source) {
  const size_t row = source.empty() ? 0 : data.size() / source.size();
  std::string out(data.size(), '\0');
  for (size_t i = 0; i < source.size(); ++i) {
    std::memcpy(out.data() + i * row, data.data() + static_cast<size_t>(source[i]) * row, row);
  }
  return out;
}

absl::StatusOr<std::vector<float>> DequantizeGguf(GgufType type, const std::string& data,
                                                  int64_t elements) {
  if (type != GgufType::kF32 && type != GgufType::kF16 && type != GgufType::kQ4_0 &&
      type != GgufType::kQ8_0 && type != GgufType::kQ4_K) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: dequantizing ", GgufTypeName(type), " is not implemented"));
  }
  if (elements % GgufBlockElements(type) != 0 ||
      static_cast<int64_t>(data.size()) != GgufTensorBytes(type, elements)) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF: ", data.size(), " bytes do not hold ",
                                                   elements, " ", GgufTypeName(type), " values"));
  }
  std::vector<float> out(static_cast<size_t>(elements));
  if (type == GgufType::kF32) {
    std::memcpy(out.data(), data.data(), data.size());
  } else if (type == GgufType::kF16) {
    for (int64_t i = 0; i < elements; ++i) out[i] = HalfToFloat(GetHalf(data.data() + 2 * i));
  } else if (type == GgufType::kQ4_K) {
    // ggml's dequantize_row_q4_K.
    for (int64_t b = 0; b < elements / 256; ++b) {
      const char* block = data.data() + b * 144;
      const float d = HalfToFloat(GetHalf(block)), dmin = HalfToFloat(GetHalf(block + 2));
      const auto* s = reinterpret_cast<const uint8_t*>(block + 4);
      const auto* qs = reinterpret_cast<const uint8_t*>(block + 16);
      for (int j = 0; j < 8; ++j) {
        const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        const int m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
        for (int l = 0; l < 32; ++l) {
          const uint8_t byte = qs[(j / 2) * 32 + l];
          const int q = j % 2 == 0 ? (byte & 0xF) : (byte >> 4);
          out[b * 256 + j * 32 + l] = d1 * static_cast<float>(q) - m1;
        }
      }
    }
  } else {
    const int64_t block_bytes = GgufBlockBytes(type);
    for (int64_t b = 0; b < elements / kBlock; ++b) {
      const char* block = data.data() + b * block_bytes;
      const float d = HalfToFloat(GetHalf(block));
      float* y = out.data() + b * kBlock;
      for (int64_t j = 0; j < kBlock; ++j) {
        if (type == GgufType::kQ8_0) {
          y[j] = static_cast<float>(static_cast<int8_t>(block[2 + j])) * d;
        } else {
          const auto byte = static_cast<uint8_t>(block[2 + j % 16]);
          const int nibble = j < 16 ? (byte & 0xF) : (byte >> 4);
          y[j] = static_cast<float>(nibble - 8) * d;
        }
      }
    }
  }
  return out;
}

}  // namespace caldera::format
