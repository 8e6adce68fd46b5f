// The worker's model cache: reused while the files are unchanged, reopened
// when a model is rewritten in place at the same URI (#17).
#include "worker/model_cache.h"

#include <chrono>
#include <thread>

#include "core/model/test_model.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera::worker {
namespace {

constexpr char kWeight[] = "model.layers.0.self_attn.q_proj.weight";

absl::StatusOr<Tensor> ReadWeight(ModelCache* cache, const std::string& uri) {
  absl::StatusOr<const model::Checkpoint*> ckpt = cache->Get(uri);
  if (!ckpt.ok()) return ckpt.status();
  return (*ckpt)->ReadF32(kWeight);
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() &&
         std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin());
}

TEST(ModelCacheTest, ReusesAnUnchangedModelAndReopensOneRewrittenInPlace) {
  testing::TempDir dir;
  const std::string model_dir = dir.Join("model");
  model::TestModelOptions o;
  o.seed = 1;
  ASSERT_TRUE(model::WriteTestModel(o, model_dir).ok());
  ModelCache cache{storage::StorageOptions{}};

  absl::StatusOr<Tensor> first = ReadWeight(&cache, model_dir);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<Tensor> again = ReadWeight(&cache, model_dir);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(cache.opens(), 1);  // unchanged: the open model is reused
  EXPECT_TRUE(SameBytes(*first, *again));

  // The same path, new weights (same sizes; only the modification time and
  // the bytes differ). The sleep makes the new mtime distinct on coarse clocks.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  o.seed = 2;
  ASSERT_TRUE(model::WriteTestModel(o, model_dir).ok());
  absl::StatusOr<Tensor> second = ReadWeight(&cache, model_dir);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(cache.opens(), 2);
  EXPECT_FALSE(SameBytes(*first, *second)) << "the old weights were served from the cache";
}

TEST(ModelCacheTest, FingerprintNamesEachFileAndChangesWithIt) {
  testing::TempDir dir;
  const std::string model_dir = dir.Join("model");
  ASSERT_TRUE(model::WriteTestModel(model::TestModelOptions{}, model_dir).ok());
  absl::StatusOr<std::string> a =
      ModelFingerprint(model_dir, {"model.safetensors"}, storage::StorageOptions{});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_NE(a->find("config.json="), std::string::npos) << *a;
  EXPECT_NE(a->find("model.safetensors.index.json=absent"), std::string::npos) << *a;
  EXPECT_NE(a->find("model.safetensors="), std::string::npos) << *a;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  model::TestModelOptions bigger;
  bigger.hidden_size = 128;
  ASSERT_TRUE(model::WriteTestModel(bigger, model_dir).ok());
  absl::StatusOr<std::string> b =
      ModelFingerprint(model_dir, {"model.safetensors"}, storage::StorageOptions{});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*a, *b);
}

}  // namespace
}  // namespace caldera::worker
