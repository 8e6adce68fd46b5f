// DirectShare head sharing: ranking and selection, GQA slices, the alias
// expansion, the map file, and a Checkpoint that applies it.
#include "core/model/head_sharing.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/model/checkpoint.h"
#include "core/model/head_sharing_plan.h"
#include "core/model/test_model.h"
#include "core/util/splitmix64.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera::model {
namespace {

ModelConfig GqaConfig(int64_t layers, int64_t heads, int64_t kv_heads, int64_t head_dim) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.hidden_size = heads * head_dim;
  c.intermediate_size = 2 * c.hidden_size;
  c.vocab_size = 32;
  c.max_position_embeddings = 64;
  return c;
}

Tensor Random(std::vector<int64_t> shape, uint64_t seed) {
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kF32, shape);
  EXPECT_TRUE(t.ok());
  SplitMix64 rng(seed);
  for (float& x : t->mutable_data<float>()) {
    x = static_cast<float>(static_cast<double>(rng.Next() >> 11) * 0x1.0p-53 - 0.5);
  }
  return *std::move(t);
}

// Copies group `from_group` of `from` onto group `to_group` of `to` (the
// module's rows, or o_proj's columns), scaled by `scale`.
void CopyGroup(const ModelConfig& c, absl::string_view module, const Tensor& from,
               int64_t from_group, Tensor* to, int64_t to_group, float scale) {
  HeadSharing h;
  h.num_layers = 2;
  h.groups_per_layer = c.num_kv_heads;
  h.heads_per_group = c.num_heads / c.num_kv_heads;
  h.head_dim = c.head_dim;
  h.shares = {HeadShare{1, to_group, 0, from_group, 1.0}};
  const AliasedSlice s = AliasedSlices(h, 1, module).at(0);
  const int64_t cols = to->dim(1);
  std::span<const float> src = from.data<float>();
  std::span<float> dst = to->mutable_data<float>();
  for (int64_t j = 0; j < s.size; ++j) {
    if (SharesColumns(module)) {
      for (int64_t r = 0; r < to->dim(0); ++r) {
        dst[r * cols + s.begin + j] = scale * src[r * cols + s.source_begin + j];
      }
    } else {
      for (int64_t col = 0; col < cols; ++col) {
        dst[(s.begin + j) * cols + col] = scale * src[(s.source_begin + j) * cols + col];
      }
    }
  }
}

TEST(HeadSharing, RatioValidation) {
  EXPECT_TRUE(ValidateShareRatio(0, "--share-heads").ok());
  EXPECT_TRUE(ValidateShareRatio(0.3, "--share-heads").ok());
  EXPECT_TRUE(ValidateShareRatio(1, "--share-heads").ok());
  for (double bad : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    absl::Status s = ValidateShareRatio(bad, "--share-heads");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("--share-heads"), std::string::npos) << s;
    EXPECT_NE(s.message().find("[0, 1]"), std::string::npos) << s;
  }
}

TEST(HeadSharing, ShareCountRoundsAndCaps) {
  EXPECT_EQ(ShareCount(0, 5, 4), 0);
  EXPECT_EQ(ShareCount(0.1, 5, 4), 2);  // 2.0
  EXPECT_EQ(ShareCount(0.3, 5, 4), 6);
  EXPECT_EQ(ShareCount(1.0, 5, 4), 12);  // (5-1)·(4-1)
  EXPECT_EQ(ShareCount(1.0, 1, 4), 0);   // no earlier layer
  EXPECT_EQ(ShareCount(1.0, 5, 1), 0);   // a layer keeps its only group
}

TEST(HeadSharing, RankingPutsPlantedDuplicatesFirst) {
  // 4 layers × 3 groups of random vectors; layer 3 group 2 duplicates layer
  // 0 group 1 exactly, layer 2 group 0 is layer 1 group 2 scaled (cosine 1),
  // layer 3 group 0 is a noisy copy of layer 2 group 1.
  std::vector<std::vector<std::vector<float>>> v(4);
  uint64_t seed = 7;
  for (auto& layer : v) {
    for (int g = 0; g < 3; ++g) {
      Tensor t = Random({1, 50}, ++seed);
      layer.emplace_back(t.data<float>().begin(), t.data<float>().end());
    }
  }
  v[3][2] = v[0][1];
  for (size_t i = 0; i < v[2][0].size(); ++i) v[2][0][i] = 3.0f * v[1][2][i];
  for (size_t i = 0; i < v[3][0].size(); ++i) v[3][0][i] = v[2][1][i] + 0.05f * v[3][0][i];
  const std::vector<HeadPair> ranked = RankHeadPairs(v);
  ASSERT_EQ(ranked.size(), 6u * 9u);  // layer pairs × group pairs
  EXPECT_NEAR(ranked[0].cosine, 1.0, 1e-6);
  EXPECT_NEAR(ranked[1].cosine, 1.0, 1e-6);
  EXPECT_EQ(ranked[2].layer_b, 3);
  EXPECT_EQ(ranked[2].group_b, 0);
  EXPECT_EQ(ranked[2].layer_a, 2);
  EXPECT_EQ(ranked[2].group_a, 1);
  EXPECT_GT(ranked[2].cosine, 0.9);
  EXPECT_LT(ranked[3].cosine, 0.7);
  for (size_t i = 1; i < ranked.size(); ++i) EXPECT_GE(ranked[i - 1].cosine, ranked[i].cosine);

  const std::vector<HeadShare> shares = SelectShares(ranked, 4, 3, 2);
  ASSERT_EQ(shares.size(), 2u);  // the two exact duplicates, sorted by target
  EXPECT_EQ(shares[0].layer, 2);
  EXPECT_EQ(shares[0].group, 0);
  EXPECT_EQ(shares[0].source_layer, 1);
  EXPECT_EQ(shares[0].source_group, 2);
  EXPECT_EQ(shares[1].layer, 3);
  EXPECT_EQ(shares[1].group, 2);
  EXPECT_EQ(shares[1].source_layer, 0);
  EXPECT_EQ(shares[1].source_group, 1);
}

TEST(HeadSharing, SelectionRules) {
  // Pairs in order: (0,0)->(1,0), (1,0)->(2,0) [source is a target: skipped],
  // (0,1)->(1,1) [would leave layer 1 without a group of its own: skipped],
  // (0,0)->(2,1) [a source may serve twice].
  const std::vector<HeadPair> ranked = {
      {0, 0, 1, 0, 0.99}, {1, 0, 2, 0, 0.98}, {0, 1, 1, 1, 0.97}, {0, 0, 2, 1, 0.96}};
  const std::vector<HeadShare> shares = SelectShares(ranked, 3, 2, 10);
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_EQ(shares[0].layer, 1);
  EXPECT_EQ(shares[0].group, 0);
  EXPECT_EQ(shares[1].layer, 2);
  EXPECT_EQ(shares[1].group, 1);
  EXPECT_EQ(shares[1].source_layer, 0);
  EXPECT_EQ(shares[1].source_group, 0);
}

TEST(HeadSharing, PlanFindsDuplicateGroupsInGqaWeights) {
  // 8 query heads, 2 KV heads (4 query heads per group), head_dim 4, 3 layers.
  const ModelConfig c = GqaConfig(3, 8, 2, 4);
  std::vector<std::vector<Tensor>> w(3);
  uint64_t seed = 100;
  for (auto& layer : w) {
    for (absl::string_view m : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      layer.push_back(Random(LinearShape(c, m), ++seed));
    }
  }
  // Layer 2 group 1 := layer 0 group 0 in all four matrices.
  int i = 0;
  for (absl::string_view m : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    CopyGroup(c, m, w[0][i], 0, &w[2][i], 1, 1.0f);
    ++i;
  }
  auto source = [&](int64_t layer, absl::string_view m) -> absl::StatusOr<Tensor> {
    const int k = m == "q_proj" ? 0 : m == "k_proj" ? 1 : m == "v_proj" ? 2 : 3;
    return w[static_cast<size_t>(layer)][static_cast<size_t>(k)].Clone();
  };
  absl::StatusOr<HeadSharing> plan = PlanHeadSharing(c, 1.0 / 6.0, source);  // 1 of 6 groups
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->shares.size(), 1u);
  EXPECT_EQ(plan->shares[0].layer, 2);
  EXPECT_EQ(plan->shares[0].group, 1);
  EXPECT_EQ(plan->shares[0].source_layer, 0);
  EXPECT_EQ(plan->shares[0].source_group, 0);
  EXPECT_NEAR(plan->shares[0].cosine, 1.0, 1e-6);
  EXPECT_EQ(plan->heads_per_group, 4);

  // Whole KV groups: q rows of all 4 query heads, k/v rows of the KV head,
  // o columns of the 4 query heads.
  const auto q = AliasedSlices(*plan, 2, "q_proj");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].begin, 16);
  EXPECT_EQ(q[0].size, 16);
  EXPECT_EQ(q[0].source_begin, 0);
  const auto k = AliasedSlices(*plan, 2, "k_proj");
  ASSERT_EQ(k.size(), 1u);
  EXPECT_EQ(k[0].begin, 4);
  EXPECT_EQ(k[0].size, 4);
  const auto o = AliasedSlices(*plan, 2, "o_proj");
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].begin, 16);
  EXPECT_EQ(o[0].size, 16);
  EXPECT_TRUE(SharesColumns("o_proj"));
  EXPECT_TRUE(AliasedSlices(*plan, 2, "gate_proj").empty());
  EXPECT_TRUE(AliasedSlices(*plan, 1, "q_proj").empty());

  // Remove then expand gives the full matrix back (the slices come from the
  // source, which equals what was removed here).
  for (int m = 0; m < 4; ++m) {
    const absl::string_view name = m == 0   ? "q_proj"
                                   : m == 1 ? "k_proj"
                                   : m == 2 ? "v_proj"
                                            : "o_proj";
    const auto slices = AliasedSlices(*plan, 2, name);
    absl::StatusOr<Tensor> reduced = RemoveAliased(w[2][m], slices, SharesColumns(name));
    ASSERT_TRUE(reduced.ok());
    EXPECT_LT(reduced->numel(), w[2][m].numel());
    auto src = [&](int64_t layer) { return source(layer, name); };
    for (const Tensor* stored : {&*reduced, &w[2][m]}) {
      absl::StatusOr<Tensor> full =
          ExpandAliased(*stored, w[2][m].shape(), slices, SharesColumns(name), src);
      ASSERT_TRUE(full.ok()) << full.status();
      std::span<const float> a = full->data<float>(), b = w[2][m].data<float>();
      for (size_t j = 0; j < a.size(); ++j) ASSERT_EQ(a[j], b[j]) << name << " " << j;
    }
    absl::StatusOr<Tensor> wrong = Tensor::Zeros(DType::kF32, {3, 3});
    EXPECT_EQ(
        ExpandAliased(*wrong, w[2][m].shape(), slices, SharesColumns(name), src).status().code(),
        absl::StatusCode::kInvalidArgument);
  }
}

TEST(HeadSharing, MapFileRoundTripAndChecks) {
  const ModelConfig c = GqaConfig(3, 8, 2, 4);
  HeadSharing h;
  h.ratio = 0.2;
  h.num_layers = 3;
  h.groups_per_layer = 2;
  h.heads_per_group = 4;
  h.head_dim = 4;
  h.shares = {HeadShare{1, 1, 0, 0, 0.9}, HeadShare{2, 0, 0, 1, 0.8}};
  const std::string text = SerializeHeadSharing(h);
  absl::StatusOr<HeadSharing> back = ParseHeadSharing(text, "head_sharing.json", c);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->shares.size(), 2u);
  EXPECT_EQ(back->shares[1].source_group, 1);
  EXPECT_DOUBLE_EQ(back->ratio, 0.2);

  EXPECT_FALSE(ParseHeadSharing(text, "x", GqaConfig(4, 8, 2, 4)).ok());  // other model
  EXPECT_FALSE(ParseHeadSharing("[1]", "x", c).ok());
  HeadSharing chained = h;
  chained.shares = {HeadShare{1, 1, 0, 0, 0.9}, HeadShare{2, 0, 1, 1, 0.8}};  // source aliased
  EXPECT_FALSE(ParseHeadSharing(SerializeHeadSharing(chained), "x", c).ok());
  HeadSharing forward = h;
  forward.shares = {HeadShare{1, 1, 2, 0, 0.9}};  // source after target
  EXPECT_FALSE(ParseHeadSharing(SerializeHeadSharing(forward), "x", c).ok());
  HeadSharing all = h;
  all.shares = {HeadShare{1, 0, 0, 0, 0.9}, HeadShare{1, 1, 0, 1, 0.9}};  // layer 1 keeps none
  EXPECT_FALSE(ParseHeadSharing(SerializeHeadSharing(all), "x", c).ok());
}

TEST(HeadSharing, CheckpointReadsAliasedHeadsFromTheirSource) {
  testing::TempDir dir;
  TestModelOptions o;
  o.num_layers = 3;
  o.num_heads = 4;
  o.num_kv_heads = 2;
  ASSERT_TRUE(WriteTestModel(o, dir.path()).ok());
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt =
      Checkpoint::Open(LocalDirectoryOpener(dir.path()), dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(PlanCheckpointHeadSharing(**ckpt, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<HeadSharing> plan = PlanCheckpointHeadSharing(**ckpt, 0.5);  // 3 of 6, cap 2
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->shares.size(), 2u);
  const HeadShare s = plan->shares[0];
  (*ckpt)->SetHeadSharing(std::make_shared<const HeadSharing>(*plan));
  const ModelConfig& c = (*ckpt)->config();
  const int64_t hd = c.head_dim, hpg = c.num_heads / c.num_kv_heads;
  absl::StatusOr<Tensor> target =
      (*ckpt)->ReadLinearWeight(c.LayerPrefix(s.layer) + "self_attn.k_proj", "k_proj");
  absl::StatusOr<Tensor> source =
      (*ckpt)->ReadLinearWeight(c.LayerPrefix(s.source_layer) + "self_attn.k_proj", "k_proj");
  ASSERT_TRUE(target.ok() && source.ok());
  const int64_t n = c.hidden_size;
  for (int64_t r = 0; r < hd; ++r) {
    for (int64_t col = 0; col < n; ++col) {
      ASSERT_EQ(target->data<float>()[(s.group * hd + r) * n + col],
                source->data<float>()[(s.source_group * hd + r) * n + col]);
    }
  }
  absl::StatusOr<Tensor> o_t =
      (*ckpt)->ReadLinearWeight(c.LayerPrefix(s.layer) + "self_attn.o_proj", "o_proj");
  absl::StatusOr<Tensor> o_s =
      (*ckpt)->ReadLinearWeight(c.LayerPrefix(s.source_layer) + "self_attn.o_proj", "o_proj");
  ASSERT_TRUE(o_t.ok() && o_s.ok());
  const int64_t oc = o_t->dim(1);
  for (int64_t r = 0; r < o_t->dim(0); ++r) {
    for (int64_t j = 0; j < hpg * hd; ++j) {
      ASSERT_EQ(o_t->data<float>()[r * oc + s.group * hpg * hd + j],
                o_s->data<float>()[r * oc + s.source_group * hpg * hd + j]);
    }
  }
  // A shared checkpoint is not shared again.
  EXPECT_EQ(PlanCheckpointHeadSharing(**ckpt, 0.5).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace caldera::model
