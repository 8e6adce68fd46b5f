// GGUF (core/format/gguf.h, gguf_blocks.h): the writer's bytes are GGUF v3
// as llama.cpp reads it (magic, version, counts, aligned data) and read back
// to the same metadata and tensors; every truncation of a file is refused;
// the Q4_0 / Q8_0 blocks hold the int grid's codes in ggml's layout and
// dequantize to q·d exactly; shapes the blocks cannot take are refused.
#include "core/format/gguf.h"

#include <cstring>

#include "core/format/gguf_blocks.h"
#include "core/tensor/half.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace caldera::format {
namespace {

using testing::HasSubstr;

GgufTensor F32Tensor(const std::string& name, std::vector<int64_t> ne, float base) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = base + static_cast<float>(i);
  return {name, GgufType::kF32, std::move(ne), EncodeFloat(GgufType::kF32, v)};
}

std::string SmallFile() {
  GgufWriter w;
  w.Set("general.architecture", std::string("llama"));
  w.Set("llama.block_count", uint32_t{5});
  w.Set("llama.rope.freq_base", 10000.0f);
  w.Set("tokenizer.ggml.tokens", std::vector<std::string>{"<unk>", "a", "b"});
  w.Set("tokenizer.ggml.token_type", std::vector<int32_t>{2, 1, 1});
  w.Set("tokenizer.ggml.scores", std::vector<float>{0, -1, -2});
  w.Set("tokenizer.ggml.add_bos_token", true);
  w.Set("llama.block_count", uint32_t{6});                       // replaces
  EXPECT_TRUE(w.AddTensor(F32Tensor("a.weight", {3}, 1)).ok());  // 12 bytes: padded to 32
  EXPECT_TRUE(w.AddTensor(F32Tensor("b.weight", {2, 5}, 7)).ok());
  return w.Serialize();
}

TEST(GgufTest, WritesVersion3WithAlignedDataAndReadsItBack) {
  const std::string bytes = SmallFile();
  ASSERT_EQ(bytes.substr(0, 4), "GGUF");
  uint32_t version;
  uint64_t n_tensors, n_kv;
  std::memcpy(&version, bytes.data() + 4, 4);
  std::memcpy(&n_tensors, bytes.data() + 8, 8);
  std::memcpy(&n_kv, bytes.data() + 16, 8);
  EXPECT_EQ(version, 3u);
  EXPECT_EQ(n_tensors, 2u);
  EXPECT_EQ(n_kv, 8u);  // 7 keys (block_count once) and general.alignment
  EXPECT_EQ(bytes.size() % 32, 0u);

  absl::StatusOr<GgufFile> f = ReadGguf(bytes, "small.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(std::get<std::string>(f->metadata.at("general.architecture")), "llama");
  EXPECT_EQ(std::get<uint32_t>(f->metadata.at("general.alignment")), 32u);
  EXPECT_EQ(std::get<uint32_t>(f->metadata.at("llama.block_count")), 6u);
  EXPECT_EQ(std::get<float>(f->metadata.at("llama.rope.freq_base")), 10000.0f);
  EXPECT_EQ(std::get<std::vector<std::string>>(f->metadata.at("tokenizer.ggml.tokens"))[2], "b");
  EXPECT_EQ(std::get<std::vector<int32_t>>(f->metadata.at("tokenizer.ggml.token_type"))[0], 2);
  EXPECT_EQ(std::get<std::vector<float>>(f->metadata.at("tokenizer.ggml.scores"))[2], -2.0f);
  EXPECT_TRUE(std::get<bool>(f->metadata.at("tokenizer.ggml.add_bos_token")));
  ASSERT_EQ(f->tensors.size(), 2u);
  EXPECT_EQ(f->tensors[1].name, "b.weight");
  EXPECT_EQ(f->tensors[1].ne, (std::vector<int64_t>{2, 5}));
  absl::StatusOr<std::vector<float>> b = DequantizeGguf(GgufType::kF32, f->tensors[1].data, 10);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)[9], 16.0f);
  // The second tensor starts 32 bytes after the first (12 bytes padded).
  const size_t at = bytes.find(f->tensors[1].data);
  EXPECT_EQ(at - bytes.find(f->tensors[0].data), 32u);
}

TEST(GgufTest, EveryTruncationIsRefused) {
  const std::string bytes = SmallFile();
  for (size_t n = 0; n < bytes.size() - 32; n += 3) {
    // The last tensor's padding may go; its data may not.
    EXPECT_FALSE(ReadGguf(bytes.substr(0, n), "cut").ok()) << n;
  }
  std::string v2 = bytes;
  v2[4] = 2;
  EXPECT_THAT(ReadGguf(v2, "old.gguf").status().message(), HasSubstr("version 2"));
}

TEST(GgufTest, RefusesMalformedTensors) {
  GgufWriter w;
  ASSERT_TRUE(w.AddTensor(F32Tensor("x", {4}, 0)).ok());
  EXPECT_FALSE(w.AddTensor(F32Tensor("x", {4}, 0)).ok());
  GgufTensor short_data = F32Tensor("y", {4}, 0);
  short_data.data.pop_back();
  EXPECT_THAT(std::string(w.AddTensor(short_data).message()), HasSubstr("needs 16"));
  GgufTensor q{"z", GgufType::kQ4_0, {48, 2}, std::string(2 * 2 * 18, '\0')};
  EXPECT_THAT(std::string(w.AddTensor(q).message()), HasSubstr("blocks of 32"));
}

// Codes q + 2^(bits-1) and fp16 scales of a rows x 64 int-grid matrix.
struct Grid {
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scales;
  std::vector<float> values;  // q·scale
};

Grid MakeGrid(int bits, int64_t rows, int64_t cols) {
  Grid g;
  const int half = 1 << (bits - 1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      g.codes.push_back(static_cast<uint8_t>((r * 7 + c * 5) % (2 * half)));
    }
  }
  for (int64_t i = 0; i < rows * cols / 32; ++i) {
    g.scales.push_back(FloatToHalf(RoundToHalf(0.01f * static_cast<float>(i + 1) / 3)));
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    g.values.push_back(static_cast<float>(g.codes[i] - half) * HalfToFloat(g.scales[i / 32]));
  }
  return g;
}

TEST(GgufBlocksTest, Q4_0HoldsTheCodesInGgmlsNibbleOrder) {
  const Grid g = MakeGrid(4, 3, 64);
  absl::StatusOr<std::string> q = EncodeIntGrid(4, 3, 64, g.codes, g.scales);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->size(), 3u * 2 * 18);
  // Block 1 (row 0, columns 32..63): d, then byte j = code[j] | code[j+16] << 4.
  const char* block = q->data() + 18;
  uint16_t d;
  std::memcpy(&d, block, 2);
  EXPECT_EQ(d, g.scales[1]);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(static_cast<uint8_t>(block[2 + j]), g.codes[32 + j] | (g.codes[48 + j] << 4)) << j;
  }
  absl::StatusOr<std::vector<float>> back = DequantizeGguf(GgufType::kQ4_0, *q, 3 * 64);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, g.values);
}

TEST(GgufBlocksTest, Q8_0HoldsSignedCodes) {
  const Grid g = MakeGrid(8, 2, 32);
  absl::StatusOr<std::string> q = EncodeIntGrid(8, 2, 32, g.codes, g.scales);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->size(), 2u * 34);
  EXPECT_EQ(static_cast<int8_t>((*q)[34 + 2 + 5]), g.codes[32 + 5] - 128);
  absl::StatusOr<std::vector<float>> back = DequantizeGguf(GgufType::kQ8_0, *q, 64);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, g.values);
}

TEST(GgufBlocksTest, RefusesWhatTheBlocksCannotHold) {
  const Grid g = MakeGrid(4, 2, 48);
  EXPECT_THAT(std::string(EncodeIntGrid(4, 2, 48, g.codes, {}).status().message()),
              HasSubstr("blocks of 32"));
  std::vector<uint8_t> big(64, 16);  // 16 does not fit 4 bits
  std::vector<uint16_t> s(2, FloatToHalf(1.0f));
  EXPECT_THAT(std::string(EncodeIntGrid(4, 1, 64, big, s).status().message()),
              HasSubstr("exceeds 4 bits"));
  EXPECT_FALSE(EncodeIntGrid(3, 1, 64, big, s).ok());
}

// Q4_K: the 6-bit scales and minimums round-trip through ggml's 12-byte
// packing (get_scale_min_k4 in DequantizeGguf), and the nibbles sit where
// dequantize_row_q4_K reads them.
TEST(GgufBlocksTest, Q4_KPacksScalesAndNibblesAsGgmlReadsThem) {
  const int64_t rows = 2, cols = 512;
  std::vector<uint8_t> codes, sc, mn;
  std::vector<uint16_t> d, dmin;
  for (int64_t i = 0; i < rows * cols; ++i) codes.push_back(static_cast<uint8_t>((i * 7) % 16));
  for (int64_t i = 0; i < rows * cols / 32; ++i) {
    sc.push_back(static_cast<uint8_t>((i * 13 + 5) % 64));
    mn.push_back(static_cast<uint8_t>((i * 29 + 63) % 64));
  }
  for (int64_t i = 0; i < rows * cols / 256; ++i) {
    d.push_back(FloatToHalf(0.01f * static_cast<float>(i + 1)));
    dmin.push_back(FloatToHalf(0.003f * static_cast<float>(i + 2)));
  }
  absl::StatusOr<std::string> q = EncodeQ4K(rows, cols, codes, sc, mn, d, dmin);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->size(), static_cast<size_t>(rows * cols / 256 * 144));
  absl::StatusOr<std::vector<float>> back = DequantizeGguf(GgufType::kQ4_K, *q, rows * cols);
  ASSERT_TRUE(back.ok());
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float step = HalfToFloat(d[i / 256]) * static_cast<float>(sc[i / 32]);
    const float min = HalfToFloat(dmin[i / 256]) * static_cast<float>(mn[i / 32]);
    ASSERT_EQ((*back)[i], step * static_cast<float>(codes[i]) - min) << i;
  }
  EXPECT_FALSE(EncodeQ4K(1, 256 + 32, codes, sc, mn, d, dmin).ok());
}

TEST(GgufBlocksTest, PermuteRowsMovesWholeRows) {
  const std::string data = "aabbcc";
  const std::vector<int64_t> source = {2, 0, 1};
  EXPECT_EQ(PermuteRows(data, source), "ccaabb");
}

}  // namespace
}  // namespace caldera::format
