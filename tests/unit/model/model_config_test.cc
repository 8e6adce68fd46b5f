#include "core/model/model_config.h"

#include "gtest/gtest.h"

namespace caldera::model {
namespace {

TEST(ModelConfigTest, ParsesLlamaWithGqaAndDefaults) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(R"({
    "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
    "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4,
    "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
    "tie_word_embeddings": true})",
                                                   "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(LinearShape(*c, "k_proj"), (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(LinearShape(*c, "down_proj"), (std::vector<int64_t>{64, 172}));
}

TEST(ModelConfigTest, Qwen2HasBiasAndLlama3Scaling) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(R"({
    "architectures": ["Qwen2ForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 100,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})",
                                                   "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->attention_bias);
  EXPECT_EQ(c->rope_scaling.type, "llama3");
  EXPECT_EQ(c->rope_scaling.factor, 8.0);
}

TEST(ModelConfigTest, UnsupportedArchitectureNamesItAndListsSupported) {
  absl::Status s =
      ParseModelConfig(R"({"architectures": ["GPT2LMHeadModel"]})", "m/config.json").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos);
  EXPECT_NE(s.message().find("LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM"),
            std::string::npos);
}

TEST(ModelConfigTest, BadFieldsAreNamed) {
  EXPECT_NE(ParseModelConfig("[", "c").status().message().find("not a JSON object"),
            std::string::npos);
  EXPECT_NE(ParseModelConfig(R"({"architectures":["LlamaForCausalLM"],"hidden_size":0})", "c")
                .status()
                .message()
                .find("\"hidden_size\" must be a positive integer"),
            std::string::npos);
  EXPECT_NE(ParseModelConfig(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,
      "intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":8,
      "num_key_value_heads":3,"vocab_size":10})",
                             "c")
                .status()
                .message()
                .find("not a multiple of num_key_value_heads"),
            std::string::npos);
}

}  // namespace
}  // namespace caldera::model
