#include "core/format/matrix_record.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;

MatrixRecordConfig Sample() {
  MatrixRecordConfig c;
  c.method = "caldera";
  c.rows = 64;
  c.cols = 172;
  c.padded_rows = 64;
  c.padded_cols = 192;
  c.rank = 16;
  c.q = {"e8p", 2, 128, true};
  c.lr = {"uniform", 4, 64, false};
  c.hadamard = true;
  c.seed = 42;
  c.update_order = "lr,q";
  c.global_scale = 0.0123f;
  return c;
}

TEST(MatrixRecordTest, ConfigRoundTripAndLayout) {
  const std::string text = SerializeRecordConfig(Sample());
  // Keys sorted (nlohmann::json), compact; the bytes every record carries.
  EXPECT_EQ(text.rfind("{\"cols\":172,\"format\":\"caldera.matrix.v1\",", 0), 0u) << text;
  absl::StatusOr<MatrixRecordConfig> c = ParseRecordConfig(text, "r");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rows, 64);
  EXPECT_EQ(c->padded_cols, 192);
  EXPECT_EQ(c->lr.kind, "uniform");
  EXPECT_EQ(c->lr.group_size, 64);
  EXPECT_FALSE(c->lr.symmetric);
  EXPECT_EQ(c->seed, 42u);
  EXPECT_EQ(static_cast<float>(c->global_scale), 0.0123f);
  EXPECT_EQ(c->update_order, "lr,q");
  EXPECT_EQ(SerializeRecordConfig(*c), text);
  absl::StatusOr<MatrixRecordConfig> t = RecordConfigFromTensor(RecordConfigTensor(*c), "r");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->cols, 172);
}

TEST(MatrixRecordTest, OlderRecordsWithoutOptionalKeysLoad) {
  const std::string old =
      R"({"format":"caldera.matrix.v1","method":"ldlq","rows":4,"cols":8,"padded_rows":4,
          "padded_cols":8,"rank":0,"q":{"kind":"e8p","bits":2},"hadamard":false,"seed":1,
          "global_scale":1.0})";
  absl::StatusOr<MatrixRecordConfig> c = ParseRecordConfig(old, "r");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->q.group_size, 128);
  EXPECT_TRUE(c->q.symmetric);
  EXPECT_EQ(c->update_order, "");
}

absl::Status ParseWith(const std::string& key, const nlohmann::json& value, bool erase = false) {
  nlohmann::json j = nlohmann::json::parse(SerializeRecordConfig(Sample()));
  if (erase) {
    j.erase(key);
  } else {
    j[key] = value;
  }
  return ParseRecordConfig(j.dump(), "m.safetensors: 'p'").status();
}

TEST(MatrixRecordTest, MissingKeysAndWrongTypesAreClearErrors) {
  absl::Status s = ParseWith("rows", nullptr, /*erase=*/true);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "m.safetensors: 'p': record config")) << s;
  EXPECT_TRUE(Contains(s.message(), "missing key \"rows\"")) << s;
  s = ParseWith("cols", "172");
  EXPECT_TRUE(Contains(s.message(), "\"cols\" must be an integer")) << s;
  s = ParseWith("hadamard", 1);
  EXPECT_TRUE(Contains(s.message(), "\"hadamard\" must be true or false")) << s;
  s = ParseWith("q", {{"kind", "e8p"}, {"bits", "2"}});
  EXPECT_TRUE(Contains(s.message(), "\"q\": key \"bits\"")) << s;
  s = ParseWith("q", {{"kind", "nf4"}, {"bits", 4}});
  EXPECT_TRUE(Contains(s.message(), "unknown quantizer kind")) << s;
  s = ParseWith("lr", nullptr, /*erase=*/true);  // rank 16 needs it
  EXPECT_TRUE(Contains(s.message(), "missing key \"lr\"")) << s;
  s = ParseWith("format", "caldera.matrix.v2");
  EXPECT_TRUE(Contains(s.message(), "expected \"caldera.matrix.v1\"")) << s;
  s = ParseWith("padded_rows", 3);
  EXPECT_TRUE(Contains(s.message(), "inconsistent")) << s;
  s = ParseWith("seed", -1);
  EXPECT_TRUE(Contains(s.message(), "\"seed\"")) << s;
  EXPECT_FALSE(ParseRecordConfig("{\"format\":", "r").ok());
  EXPECT_FALSE(ParseRecordConfig("[]", "r").ok());
  EXPECT_FALSE(RecordConfigFromTensor(*Tensor::Zeros(DType::kF32, {3}), "r").ok());
}

TEST(MatrixRecordTest, TensorsAreNamedUnderThePrefix) {
  NamedTensors record;
  record.emplace_back(kRecordConfigName, RecordConfigTensor(Sample()));
  record.emplace_back("caldera.q.scale", *Tensor::Zeros(DType::kF32, {1}));
  SafetensorsWriter w;
  ASSERT_TRUE(w.Add("other.weight", *Tensor::Zeros(DType::kF32, {2})).ok());
  ASSERT_TRUE(AddRecordTensors(std::move(record), "model.layers.0.mlp.up_proj", &w).ok());
  auto reader = testing::OpenBytes(*w.Serialize());
  ASSERT_TRUE(reader.ok());
  EXPECT_NE((*reader)->Find("model.layers.0.mlp.up_proj.caldera.config"), nullptr);
  EXPECT_TRUE(HasRecord(**reader, "model.layers.0.mlp.up_proj"));
  EXPECT_FALSE(HasRecord(**reader, "other"));
  absl::StatusOr<NamedTensors> back = ReadRecord(**reader, "model.layers.0.mlp.up_proj");
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ(ReadRecord(**reader, "other").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace caldera::format
