#include "core/format/quantization_config.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;

QuantizationConfig Sample() {
  QuantizationConfig c;
  c.method = "caldera";
  c.rank = 8;
  c.q_bits = 2;
  c.lr_bits = 4;
  c.quantizer = "e8p";
  c.iters = 2;
  c.lplr_iters = 2;
  c.seed = 42;
  c.ttlora_init = "zero";
  c.modules["model.layers.0.self_attn.q_proj"] = {64, 64, 8, 3.125, false};
  return c;
}

TEST(QuantizationConfigTest, RoundTripKeepsTheModelConfig) {
  absl::StatusOr<std::string> text = AddQuantizationConfig(
      R"({"hidden_size": 64, "architectures": ["LlamaForCausalLM"]})", Sample(), "in/config.json");
  ASSERT_TRUE(text.ok()) << text.status();
  nlohmann::json j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["hidden_size"], 64);
  // Version 2: no quant_method (transformers refuses the folder), format caldera.
  EXPECT_FALSE(j["quantization_config"].contains("quant_method"));
  EXPECT_EQ(j["quantization_config"]["format"], "caldera");
  EXPECT_EQ(j["quantization_config"]["format_version"], 2);
  absl::StatusOr<QuantizationConfig> back = ReadQuantizationConfig(*text, "out/config.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->rank, 8);
  EXPECT_EQ(back->seed, 42u);
  ASSERT_EQ(back->modules.size(), 1u);
  EXPECT_EQ(back->modules.begin()->second.bits_per_param, 3.125);
  EXPECT_EQ(*AddQuantizationConfig(*text, *back, "x"), *text);
}

TEST(QuantizationConfigTest, CheckedReading) {
  EXPECT_EQ(ReadQuantizationConfig(R"({"hidden_size": 64})", "c").status().code(),
            absl::StatusCode::kNotFound);
  nlohmann::json j = nlohmann::json::parse(*AddQuantizationConfig("{}", Sample(), "c"));
  auto error_with = [&](const char* key, const nlohmann::json& v) {
    nlohmann::json k = j;
    k["quantization_config"][key] = v;
    return ReadQuantizationConfig(k.dump(), "out/config.json").status();
  };
  absl::Status s = error_with("rank", "8");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "out/config.json: quantization_config")) << s;
  EXPECT_TRUE(Contains(s.message(), "\"rank\" must be an integer")) << s;
  EXPECT_TRUE(Contains(error_with("format_version", 1).message(), "not supported"));
  EXPECT_TRUE(Contains(error_with("format_version", 3).message(), "not supported"));
  EXPECT_TRUE(Contains(error_with("format", "gptq").message(), "\"caldera\""));
  EXPECT_TRUE(Contains(error_with("quant_method", "gptq").message(), "\"caldera\""));
  // A version 1 checkpoint (quant_method caldera, format_version 1) still reads.
  nlohmann::json v1 = j;
  v1["quantization_config"].erase("format");
  v1["quantization_config"]["quant_method"] = "caldera";
  v1["quantization_config"]["format_version"] = 1;
  absl::StatusOr<QuantizationConfig> old = ReadQuantizationConfig(v1.dump(), "old/config.json");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->format_version, 1);
  EXPECT_EQ(*AddQuantizationConfig("{}", *old, "x"), v1.dump(2));
  v1["quantization_config"]["format_version"] = 2;  // quant_method belongs to version 1 only
  EXPECT_FALSE(ReadQuantizationConfig(v1.dump(), "c").ok());
  s = error_with("modules", {{"m", {{"rows", 1}}}});
  EXPECT_TRUE(Contains(s.message(), "modules: \"m\": missing key \"cols\"")) << s;
  EXPECT_FALSE(ReadQuantizationConfig(R"({"quantization_config": 3})", "c").ok());
  EXPECT_FALSE(ReadQuantizationConfig("[]", "c").ok());
  EXPECT_FALSE(AddQuantizationConfig("nope", Sample(), "c").ok());
}

TEST(QuantizationConfigTest, DenseExportDropsIt) {
  const std::string with = *AddQuantizationConfig(R"({"torch_dtype": "bfloat16"})", Sample(), "c");
  absl::StatusOr<std::string> dense = DenseModelConfig(with, "c");
  ASSERT_TRUE(dense.ok());
  nlohmann::json j = nlohmann::json::parse(*dense);
  EXPECT_FALSE(j.contains("quantization_config"));
  EXPECT_EQ(j["torch_dtype"], "float32");
  EXPECT_FALSE(DenseModelConfig("[1]", "c").ok());
}

}  // namespace
}  // namespace caldera::format
