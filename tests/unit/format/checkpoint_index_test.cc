#include "absl/status/status.h"
#include "core/format/safetensors.h"
#include "gtest/gtest.h"

namespace caldera {
namespace {

TEST(CheckpointIndexTest, RoundTrip) {
  CheckpointIndex index;
  index.weight_map["model.embed_tokens.weight"] = "model-00001-of-00002.safetensors";
  index.weight_map["lm_head.weight"] = "model-00002-of-00002.safetensors";
  index.metadata["total_size"] = "123456";
  const std::string json = SerializeCheckpointIndex(index);
  EXPECT_NE(json.find("\"total_size\": 123456"), std::string::npos);  // a number, as HF writes
  absl::StatusOr<CheckpointIndex> back = ParseCheckpointIndex(json, "index.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->weight_map, index.weight_map);
  EXPECT_EQ(back->metadata.at("total_size"), "123456");
}

TEST(CheckpointIndexTest, ClearErrors) {
  auto err = [](const char* json) { return ParseCheckpointIndex(json, "idx.json").status(); };
  EXPECT_NE(err("not json").message().find("idx.json"), std::string::npos);
  EXPECT_NE(err("{}").message().find("missing \"weight_map\""), std::string::npos);
  EXPECT_NE(err(R"({"weight_map":{"a":1}})").message().find("not a shard file name"),
            std::string::npos);
  EXPECT_NE(err(R"({"weight_map":{"a":"../../etc/passwd"}})").message().find("outside"),
            std::string::npos);
  EXPECT_NE(err(R"({"weight_map":["a"]})").message().find("missing \"weight_map\" object"),
            std::string::npos);
  EXPECT_NE(err("[1]").message().find("expected a JSON object"), std::string::npos);
  EXPECT_EQ(err("{}").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caldera
