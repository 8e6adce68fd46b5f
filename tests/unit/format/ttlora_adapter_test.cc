#include "core/format/ttlora_adapter.h"

#include <map>

#include "core/format/sharded_checkpoint.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;

TtloraAdapterFile Sample() {
  TtloraAdapterFile a;
  a.config = {{"m.q_proj"}, {8, 8}, {4, 16}, {1, 3, 3, 3, 1}, 16.0, "residual"};
  for (const std::vector<int64_t>& s :
       std::vector<std::vector<int64_t>>{{1, 8, 3}, {3, 8, 3}, {3, 4, 3}, {3, 16, 1}}) {
    Tensor t = *Tensor::Zeros(DType::kF32, s);
    t.mutable_data<float>()[0] = static_cast<float>(s[1]);
    a.cores.push_back(std::move(t));
  }
  return a;
}

TEST(TtloraAdapterTest, ConfigTextIsTheDocumentedOne) {
  const std::string text = SerializeTtloraConfig(Sample().config);
  EXPECT_EQ(text.rfind("{\n  \"format\": \"caldera.ttlora.v1\",\n  \"base_modules\": [", 0), 0u)
      << text;
  EXPECT_TRUE(Contains(text, "\"layout\": \"y = base(x) + alpha * x * A_in * B_out;"));
  absl::StatusOr<TtloraAdapterConfig> c = ParseTtloraConfig(text, "f");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->out_factors, (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(c->alpha, 16.0);
  EXPECT_EQ(c->init, "residual");
  EXPECT_EQ(SerializeTtloraConfig(*c), text);
}

TEST(TtloraAdapterTest, CoresRoundTrip) {
  SafetensorsWriter w;
  ASSERT_TRUE(AddTtloraAdapter("m.q_proj", Sample(), &w).ok());
  auto reader = testing::OpenBytes(*w.Serialize());
  ASSERT_TRUE(reader.ok());
  EXPECT_NE((*reader)->Find("m.q_proj.ttlora.core.3"), nullptr);
  absl::StatusOr<TtloraAdapterFile> a = ReadTtloraAdapter(**reader, "m.q_proj");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->cores.size(), 4u);
  EXPECT_EQ(a->cores[3].shape(), (std::vector<int64_t>{3, 16, 1}));
  EXPECT_EQ(a->cores[3].data<float>()[0], 16.0f);
  EXPECT_EQ(ReadTtloraAdapter(**reader, "other").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A checkpoint shard holds several modules' adapters: each config is kept
// under its own key and read back for its own module.
TEST(TtloraAdapterTest, ShardWithTwoModulesKeepsEachConfig) {
  std::map<std::string, std::string> files;
  ShardedCheckpointWriter w(1, [&](const std::string& name, const std::string& bytes) {
    files[name] = bytes;
    return absl::OkStatus();
  });
  TtloraAdapterFile q = Sample();
  TtloraAdapterFile k = Sample();
  k.config.alpha = 2.0;
  k.config.in_factors = {4, 16};  // cores have the same sizes, another split
  k.config.out_factors = {8, 8};
  k.cores.clear();
  for (const std::vector<int64_t>& s :
       std::vector<std::vector<int64_t>>{{1, 4, 3}, {3, 16, 3}, {3, 8, 3}, {3, 8, 1}}) {
    k.cores.push_back(*Tensor::Zeros(DType::kF32, s));
  }
  for (auto& [prefix, a] : {std::pair<std::string, TtloraAdapterFile*>{"m.q_proj", &q},
                            std::pair<std::string, TtloraAdapterFile*>{"m.k_proj", &k}}) {
    w.SetShardMetadata(TtloraConfigKeyOf(prefix), SerializeTtloraConfig(a->config));
    for (size_t i = 0; i < a->cores.size(); ++i) {
      ASSERT_TRUE(w.Add(TtloraCoreName(prefix, i), std::move(a->cores[i])).ok());
    }
  }
  w.SetShardMetadata("format", "not-pt");  // reserved: ignored
  ASSERT_TRUE(w.FinishShard().ok());
  auto reader = testing::OpenBytes(files[ShardFileName(1, 1)]);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->metadata().at("format"), "pt");
  absl::StatusOr<TtloraAdapterFile> rq = ReadTtloraAdapter(**reader, "m.q_proj");
  absl::StatusOr<TtloraAdapterFile> rk = ReadTtloraAdapter(**reader, "m.k_proj");
  ASSERT_TRUE(rq.ok()) << rq.status();
  ASSERT_TRUE(rk.ok()) << rk.status();
  EXPECT_EQ(rq->config.alpha, 16.0);
  EXPECT_EQ(rk->config.alpha, 2.0);
  EXPECT_EQ(rk->config.in_factors, (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(rk->cores[1].shape(), (std::vector<int64_t>{3, 16, 3}));
  EXPECT_EQ(ReadTtloraAdapter(**reader, "m.v_proj").status().code(), absl::StatusCode::kNotFound);
}

TEST(TtloraAdapterTest, BadConfigsAndCoresAreRefused) {
  nlohmann::json j = nlohmann::json::parse(SerializeTtloraConfig(Sample().config));
  auto error_with = [&](const char* key, const nlohmann::json& v) {
    nlohmann::json k = j;
    k[key] = v;
    return ParseTtloraConfig(k.dump(), "a.safetensors").status();
  };
  absl::Status s = error_with("ranks", {1, 3, 3, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "a.safetensors: ttlora_config")) << s;
  EXPECT_TRUE(Contains(s.message(), "5 ranks")) << s;
  EXPECT_TRUE(Contains(error_with("alpha", "16").message(), "\"alpha\" must be a number"));
  EXPECT_TRUE(Contains(error_with("in_factors", {8, "8"}).message(), "array of integers"));
  EXPECT_TRUE(Contains(error_with("format", "x").message(), "caldera.ttlora.v1"));
  TtloraAdapterFile bad = Sample();
  bad.cores[2] = *Tensor::Zeros(DType::kF64, {3, 4, 3});
  SafetensorsWriter w;
  s = AddTtloraAdapter("m", std::move(bad), &w);
  EXPECT_TRUE(Contains(s.message(), "core 2 is F64")) << s;
}

}  // namespace
}  // namespace caldera::format
