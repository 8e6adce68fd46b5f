#include "core/format/sharded_checkpoint.h"

#include <map>

#include "gtest/gtest.h"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

TEST(ShardedCheckpointTest, ShardsAndIndex) {
  std::map<std::string, std::string> files;
  ShardedCheckpointWriter w(2, [&](const std::string& name, const std::string& bytes) {
    files[name] = bytes;
    return absl::OkStatus();
  });
  ASSERT_TRUE(w.Add("a", *Tensor::Zeros(DType::kF32, {2})).ok());
  ASSERT_TRUE(w.Add("b", *Tensor::Zeros(DType::kF64, {3})).ok());
  EXPECT_FALSE(w.Add("a", *Tensor::Zeros(DType::kF32, {2})).ok());
  EXPECT_FALSE(w.WriteIndex().ok());  // shards missing
  ASSERT_TRUE(w.FinishShard().ok());
  ASSERT_TRUE(w.Add("c", *Tensor::Zeros(DType::kU8, {5})).ok());
  EXPECT_TRUE(w.Contains("a"));
  EXPECT_FALSE(w.Add("b", *Tensor::Zeros(DType::kU8, {1})).ok());  // in an earlier shard
  ASSERT_TRUE(w.FinishShard().ok());
  EXPECT_FALSE(w.FinishShard().ok());
  EXPECT_FALSE(w.Add("d", *Tensor::Zeros(DType::kU8, {1})).ok());
  ASSERT_TRUE(w.WriteIndex().ok());
  ASSERT_EQ(files.size(), 3u);
  const std::string s1 = "model-00001-of-00002.safetensors";
  const std::string s2 = "model-00002-of-00002.safetensors";
  ASSERT_EQ(files.count(s1), 1u);
  auto r1 = testing::OpenBytes(files[s1]);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ((*r1)->metadata().at("format"), "pt");
  EXPECT_EQ((*r1)->tensors().size(), 2u);
  absl::StatusOr<CheckpointIndex> index =
      ParseCheckpointIndex(files[kCheckpointIndexName], "index");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->weight_map.at("a"), s1);
  EXPECT_EQ(index->weight_map.at("c"), s2);
  EXPECT_EQ(index->metadata.at("total_size"), std::to_string(files[s1].size() + files[s2].size()));
  EXPECT_EQ(w.total_size(), files[s1].size() + files[s2].size());
}

TEST(ShardedCheckpointTest, SinkErrorsComeBack) {
  ShardedCheckpointWriter w(1, [](const std::string&, const std::string&) {
    return absl::UnavailableError("store down");
  });
  EXPECT_EQ(w.FinishShard().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace caldera::format
