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

namespace caldera::model {
namespace {

std::string MoeJson(const std::string& arch, const std::string& extra) {
  return R"({"architectures": [")" + arch + R"("], "hidden_size": 32,
    "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "vocab_size": 100)" +
         extra + "}";
}

TEST(ModelConfigTest, MixtralExpertsAndTheirNames) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(
      MoeJson("MixtralForCausalLM", R"(, "num_local_experts": 8, "num_experts_per_tok": 2)"),
      "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->is_moe());
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_EQ(c->moe_intermediate_size, 64);  // Mixtral's experts are intermediate_size wide
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_FALSE(c->qk_norm);
  const std::vector<BlockLinear> l = BlockLinears(*c);
  ASSERT_EQ(l.size(), 4u + 8 * 3);
  EXPECT_EQ(l[4].name, "experts.0.gate_proj");
  EXPECT_EQ(l[4].suffix, "block_sparse_moe.experts.0.w1");
  EXPECT_EQ(l[5].suffix, "block_sparse_moe.experts.0.w3");  // up
  EXPECT_EQ(l[6].suffix, "block_sparse_moe.experts.0.w2");  // down
  EXPECT_EQ(l[5].hessian, "experts.0.gate_proj");           // gate and up share an input
  EXPECT_EQ(l.back().name, "experts.7.down_proj");
  EXPECT_EQ(RouterSuffix(*c), "block_sparse_moe.gate");
  EXPECT_EQ(LinearShape(*c, "experts.7.down_proj"), (std::vector<int64_t>{32, 64}));
  EXPECT_TRUE(LinearShape(*c, "experts.8.down_proj").empty());  // no expert 8
  EXPECT_EQ(FindBlockLinear(*c, "experts.3.up_proj")->suffix, "block_sparse_moe.experts.3.w3");
  EXPECT_FALSE(FindBlockLinear(*c, "gate_proj").has_value());  // no dense MLP
  EXPECT_FALSE(FindBlockLinear(*c, "experts.03.up_proj").has_value());
  EXPECT_EQ(LinearKind("experts.3.up_proj"), "up_proj");
  EXPECT_EQ(LinearKind("experts.3.w1"), "");
}

TEST(ModelConfigTest, Qwen3MoeKeys) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(
      MoeJson("Qwen3MoeForCausalLM", R"(, "num_experts": 6, "num_experts_per_tok": 3,
        "moe_intermediate_size": 24, "decoder_sparse_step": 1, "mlp_only_layers": [])"),
      "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->moe, MoeLayout::kQwen3Moe);
  EXPECT_FALSE(c->norm_topk_prob);  // transformers' default
  EXPECT_TRUE(c->qk_norm);
  EXPECT_EQ(BlockLinears(*c)[4].suffix, "mlp.experts.0.gate_proj");
  EXPECT_EQ(LinearShape(*c, "experts.5.gate_proj"), (std::vector<int64_t>{24, 32}));
  EXPECT_EQ(RouterSuffix(*c), "mlp.gate");
}

TEST(ModelConfigTest, HostileExpertCountsNameTheKeyAndTheFix) {
  struct Case {
    std::string arch, extra, expect;
  };
  const Case cases[] = {
      {"MixtralForCausalLM", R"(, "num_experts_per_tok": 2)", "\"num_local_experts\" must be"},
      {"MixtralForCausalLM", R"(, "num_local_experts": 0, "num_experts_per_tok": 1)",
       "\"num_local_experts\" must be an integer in [1, 1024]"},
      {"MixtralForCausalLM", R"(, "num_local_experts": 100000000, "num_experts_per_tok": 1)",
       "\"num_local_experts\" must be an integer in [1, 1024]"},
      {"MixtralForCausalLM", R"(, "num_local_experts": 4, "num_experts_per_tok": 5)",
       "\"num_experts_per_tok\" must be an integer in [1, num_local_experts = 4]"},
      {"Qwen3MoeForCausalLM", R"(, "num_experts": 4, "num_experts_per_tok": 0,
        "moe_intermediate_size": 8)",
       "\"num_experts_per_tok\" must be"},
      {"Qwen3MoeForCausalLM", R"(, "num_experts": 4, "num_experts_per_tok": 2)",
       "\"moe_intermediate_size\" must be a positive integer"},
      {"Qwen3MoeForCausalLM", R"(, "num_experts": 4, "num_experts_per_tok": 2,
        "moe_intermediate_size": 8, "decoder_sparse_step": 2)",
       "\"decoder_sparse_step\" other than 1"},
      {"Qwen3MoeForCausalLM", R"(, "num_experts": 4, "num_experts_per_tok": 2,
        "moe_intermediate_size": 8, "mlp_only_layers": [0])",
       "\"mlp_only_layers\" must be empty"},
      {"Qwen3MoeForCausalLM", R"(, "num_experts": 4, "num_experts_per_tok": 2,
        "moe_intermediate_size": 8, "norm_topk_prob": "yes")",
       "\"norm_topk_prob\" must be true or false"},
  };
  for (const Case& c : cases) {
    const absl::Status s = ParseModelConfig(MoeJson(c.arch, c.extra), "m/config.json").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.extra;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("m/config.json"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace caldera::model
