// compressed-tensors pack-quantized (core/format/compressed_tensors.h): the
// written tensors have the names, dtypes, shapes and bit layout llm-compressor
// writes (int32 words, the first code in the lowest bits, codes offset by
// 2^(bits-1)); the reader gives back (q - z)·scale, also for packed zero
// points, and refuses malformed tensors; the config carries the groups.
#include "core/format/compressed_tensors.h"

#include <nlohmann/json.hpp>

#include "core/tensor/half.h"
#include "gtest/gtest.h"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;
using testing::OpenBytes;

// Codes q + 2^(bits-1) of a rows x cols matrix, LSB-first (as a record holds them).
std::vector<uint8_t> Pack(const std::vector<int>& q, int bits) {
  std::vector<uint8_t> out((q.size() * bits + 7) / 8, 0);
  for (size_t i = 0; i < q.size(); ++i) {
    const unsigned u = static_cast<unsigned>(q[i] + (1 << (bits - 1)));
    for (int b = 0; b < bits; ++b) {
      if ((u >> b) & 1) out[(i * bits + b) / 8] |= static_cast<uint8_t>(1u << ((i * bits + b) % 8));
    }
  }
  return out;
}

Tensor HalfScales(int64_t rows, int64_t groups, float base) {
  Tensor t = *Tensor::Zeros(DType::kF16, {rows, groups});
  std::vector<float> v(static_cast<size_t>(rows * groups));
  for (size_t i = 0; i < v.size(); ++i) v[i] = RoundToHalf(base * (1.0f + 0.37f * i));
  FloatToHalf(v, t.mutable_raw16());
  return t;
}

TEST(CompressedTensorsTest, WritesTheLayoutAndReadsItBack) {
  // 36 columns: a row of 4-bit codes ends inside a word (as down_proj's 172);
  // each row still starts a new word. (Widths of 32 and more: the packed
  // width names one bit count.)
  for (const auto& [bits, cols] : {std::pair{4, int64_t{32}}, {8, int64_t{32}}, {4, int64_t{36}}}) {
    const int64_t rows = 3, groups = 2;
    std::vector<int> q(rows * cols);
    for (size_t i = 0; i < q.size(); ++i) {
      q[i] = static_cast<int>(i * 7 % (1 << bits)) - (1 << (bits - 1));
    }
    const Tensor scales = HalfScales(rows, groups, 0.01f);
    auto t = PackQuantizedTensors("m", bits, rows, cols, Pack(q, bits), scales, DType::kF32);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->size(), 3u);
    EXPECT_EQ((*t)[0].first, "m.weight_packed");
    EXPECT_EQ((*t)[0].second.dtype(), DType::kI32);
    const int64_t words = (cols * bits + 31) / 32;
    EXPECT_EQ((*t)[0].second.shape(), (std::vector<int64_t>{rows, words}));
    // The first code of a row sits in the lowest bits of its first word.
    for (int64_t r = 0; r < rows; ++r) {
      const uint32_t w0 = static_cast<uint32_t>((*t)[0].second.data<int32_t>()[r * words]);
      EXPECT_EQ(static_cast<int>(w0 & ((1u << bits) - 1)), q[r * cols] + (1 << (bits - 1)));
    }
    EXPECT_EQ((*t)[1].first, "m.weight_scale");
    EXPECT_EQ((*t)[1].second.dtype(), DType::kF32);
    EXPECT_EQ((*t)[1].second.shape(), (std::vector<int64_t>{rows, groups}));
    EXPECT_EQ((*t)[2].first, "m.weight_shape");
    EXPECT_EQ((*t)[2].second.dtype(), DType::kI64);
    SafetensorsWriter w;
    for (auto& [n, x] : *t) ASSERT_TRUE(w.Add(n, std::move(x)).ok());
    auto reader = OpenBytes(*w.Serialize());
    ASSERT_TRUE(reader.ok());
    ASSERT_TRUE(HasPackQuantized(**reader, "m"));
    absl::StatusOr<Tensor> back = ReadPackQuantized(**reader, "m");
    ASSERT_TRUE(back.ok()) << back.status();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const float s = HalfToFloat(scales.raw16()[r * groups + c / (cols / groups)]);
        EXPECT_EQ(back->data<float>()[r * cols + c], static_cast<float>(q[r * cols + c]) * s);
      }
    }
  }
}

TEST(CompressedTensorsTest, ReadsPackedZeroPoints) {
  // 4-bit, 8 rows x 32 columns, one group per row; zero points packed down
  // the rows into one int32 word, as compressed-tensors writes asymmetric ones.
  const int64_t rows = 8, cols = 32;
  std::vector<int> q(rows * cols), z(rows);
  for (int64_t i = 0; i < rows * cols; ++i) q[i] = static_cast<int>(i % 16) - 8;
  for (int64_t r = 0; r < rows; ++r) z[r] = static_cast<int>(r) - 4;
  auto t =
      PackQuantizedTensors("m", 4, rows, cols, Pack(q, 4), HalfScales(rows, 1, 0.5f), DType::kF16);
  ASSERT_TRUE(t.ok()) << t.status();
  SafetensorsWriter w;
  for (auto& [n, x] : *t) ASSERT_TRUE(w.Add(n, std::move(x)).ok());
  uint32_t word = 0;
  for (int64_t r = 0; r < rows; ++r) word |= static_cast<uint32_t>(z[r] + 8) << (4 * r);
  const int32_t packed_zp = static_cast<int32_t>(word);
  ASSERT_TRUE(
      w.Add("m.weight_zero_point", *Tensor::FromValues<int32_t>({1, 1}, {&packed_zp, 1})).ok());
  auto reader = OpenBytes(*w.Serialize());
  ASSERT_TRUE(reader.ok());
  absl::StatusOr<Tensor> back = ReadPackQuantized(**reader, "m");
  ASSERT_TRUE(back.ok()) << back.status();
  const Tensor s = HalfScales(rows, 1, 0.5f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      EXPECT_EQ(back->data<float>()[r * cols + c],
                static_cast<float>(q[r * cols + c] - z[r]) * HalfToFloat(s.raw16()[r]));
    }
  }
}

TEST(CompressedTensorsTest, RefusesShapesNoKernelTakes) {
  const Tensor scales = HalfScales(2, 1, 0.1f);
  // 12 columns of 4-bit codes in 13 bytes instead of 12.
  auto bad = PackQuantizedTensors("m.x", 4, 2, 12, std::vector<uint8_t>(13), scales, DType::kF32);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(Contains(bad.status().message(), "m.x")) << bad.status();
  EXPECT_FALSE(
      PackQuantizedTensors("m", 3, 2, 32, std::vector<uint8_t>(24), scales, DType::kF32).ok());
  // Three groups do not divide 16 columns.
  EXPECT_FALSE(PackQuantizedTensors("m", 4, 2, 16, std::vector<uint8_t>(16), HalfScales(2, 3, 0.1f),
                                    DType::kF32)
                   .ok());
  EXPECT_FALSE(
      PackQuantizedTensors("m", 4, 2, 16, std::vector<uint8_t>(16), scales, DType::kBF16).ok());
}

TEST(CompressedTensorsTest, ReaderRefusesMalformedTensors) {
  // {cols, words per row, expected message}: 64 columns in 9 words fit no
  // bit count; 16 columns in 3 words fit 5 or 6 bits (dense packing).
  struct Case {
    int64_t cols, words;
    const char* message;
  };
  for (const Case& k : {Case{64, 9, "words per row"}, Case{16, 3, "more than one bit count"},
                        Case{64, 8, "groups dividing"}}) {
    SafetensorsWriter w;
    const std::vector<int32_t> words(static_cast<size_t>(2 * k.words), 0);
    ASSERT_TRUE(w.Add("m.weight_packed", *Tensor::FromValues<int32_t>({2, k.words}, words)).ok());
    // Three groups never divide these widths; one group does.
    ASSERT_TRUE(w.Add("m.weight_scale", HalfScales(2, k.words == 8 ? 3 : 1, 0.1f)).ok());
    const int64_t shape[2] = {2, k.cols};
    ASSERT_TRUE(w.Add("m.weight_shape", *Tensor::FromValues<int64_t>({2}, {shape, 2})).ok());
    auto reader = OpenBytes(*w.Serialize());
    ASSERT_TRUE(reader.ok());
    absl::StatusOr<Tensor> t = ReadPackQuantized(**reader, "m");
    ASSERT_FALSE(t.ok()) << k.message;
    EXPECT_TRUE(Contains(t.status().message(), k.message)) << t.status();
  }
}

TEST(CompressedTensorsTest, ConfigHasOneGroupPerScheme) {
  std::vector<PackQuantizedGroup> groups = {
      {SchemeFor(4, 64, 65536), {"model.layers.0.self_attn.q_proj"}},
      {SchemeFor(4, 256, 128), {"model.layers.0.mlp.down_proj"}}};
  EXPECT_EQ(SchemeFor(4, 64, 64).group_size, 64);   // the whole row, as llm-compressor writes it
  EXPECT_EQ(SchemeFor(4, 172, 172).group_size, 0);  // no kernel group: channel
  EXPECT_EQ(SchemeFor(8, 64, 128).group_size, 0);
  absl::StatusOr<std::string> text = PackQuantizedModelConfig(
      R"({"model_type": "llama", "quantization_config": {"quant_method": "caldera"}})", "c",
      "float16", groups, {"model.layers.1.mlp.up_proj", "lm_head"});
  ASSERT_TRUE(text.ok()) << text.status();
  const nlohmann::json j = nlohmann::json::parse(*text);
  const nlohmann::json& qc = j["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "compressed-tensors");
  EXPECT_EQ(qc["format"], "pack-quantized");
  EXPECT_EQ(qc["quantization_status"], "compressed");
  EXPECT_EQ(qc["ignore"].size(), 2u);
  EXPECT_EQ(qc["config_groups"]["group_0"]["weights"]["strategy"], "channel");
  EXPECT_TRUE(qc["config_groups"]["group_0"]["weights"]["group_size"].is_null());
  EXPECT_EQ(qc["config_groups"]["group_1"]["weights"]["strategy"], "group");
  EXPECT_EQ(qc["config_groups"]["group_1"]["weights"]["group_size"], 128);
  EXPECT_EQ(qc["config_groups"]["group_1"]["targets"][0], "model.layers.0.mlp.down_proj");
  EXPECT_EQ(j["torch_dtype"], "float16");
  EXPECT_FALSE(PackQuantizedModelConfig("[1]", "c", "float16", groups, {}).ok());
}

}  // namespace
}  // namespace caldera::format
