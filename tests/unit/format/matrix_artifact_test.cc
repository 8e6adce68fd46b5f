#include "core/format/matrix_artifact.h"

#include "gtest/gtest.h"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;
using testing::OpenBytes;

constexpr char kPrefix[] = "model.layers.1.self_attn.q_proj";

MatrixRecordConfig Config() {
  MatrixRecordConfig c;
  c.method = "ldlq";
  c.rows = c.padded_rows = 8;
  c.cols = c.padded_cols = 8;
  c.q = {"float", 32, 128, true};
  c.lr = {"e8p", 4, 128, true};
  c.global_scale = 1;
  return c;
}

ModuleReport Report() {
  ModuleReport m;
  m.name = kPrefix;
  m.layer = 1;
  m.module = "q_proj";
  m.rows = m.cols = 8;
  m.relative_error = 0.5;
  m.weighted_relative_error = 0.25;
  m.bits_per_param = 32.5;
  m.storage_bits = 2080;
  m.seconds = 0.125;
  m.ttlora_params = 40;
  return m;
}

MatrixArtifact Sample(bool with_adapter) {
  MatrixArtifact a;
  a.prefix = kPrefix;
  a.record.emplace_back(kRecordConfigName, RecordConfigTensor(Config()));
  a.record.emplace_back("caldera.q.values", *Tensor::Zeros(DType::kF32, {8, 8}));
  if (with_adapter) {
    TtloraAdapterFile t;
    t.config = {{kPrefix}, {2, 4}, {4, 2}, {1, 2, 2, 2, 1}, 16.0, "zero"};
    for (const std::vector<int64_t>& shape :
         std::vector<std::vector<int64_t>>{{1, 2, 2}, {2, 4, 2}, {2, 4, 2}, {2, 2, 1}}) {
      t.cores.push_back(*Tensor::Zeros(DType::kF32, shape));
    }
    a.adapter = std::move(t);
  }
  a.report = Report();
  return a;
}

TEST(MatrixArtifactTest, RoundTrip) {
  absl::StatusOr<std::string> bytes = SerializeMatrixArtifact(Sample(true));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto reader = OpenBytes(*bytes);
  ASSERT_TRUE(reader.ok()) << reader.status();
  // The documented layout: adapter cores, then the record.
  const std::vector<TensorInfo>& t = (*reader)->tensors();
  ASSERT_EQ(t.size(), 6u);
  EXPECT_EQ(t[0].name, std::string(kPrefix) + ".ttlora.core.0");
  EXPECT_EQ(t[4].name, std::string(kPrefix) + ".caldera.q.values");
  EXPECT_EQ((*reader)->metadata().at("format"), "caldera.matrix.v1");
  absl::StatusOr<MatrixArtifact> a = ReadMatrixArtifact(**reader);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->prefix, kPrefix);
  EXPECT_EQ(a->record.size(), 2u);
  ASSERT_TRUE(a->adapter.has_value());
  EXPECT_EQ(a->adapter->config.ranks, (std::vector<int64_t>{1, 2, 2, 2, 1}));
  EXPECT_EQ(a->adapter->cores.size(), 4u);
  ASSERT_TRUE(a->report.has_value());
  EXPECT_EQ(a->report->storage_bits, 2080);
  EXPECT_EQ(a->report->ttlora_params, 40);
  absl::StatusOr<ModuleReport> r = ReadArtifactReport(**reader);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->weighted_relative_error, 0.25);
  EXPECT_EQ(ModuleReportToJson(*r), ModuleReportToJson(Report()));
}

TEST(MatrixArtifactTest, WithoutAdapterOrReport) {
  MatrixArtifact in = Sample(false);
  in.report.reset();
  auto reader = OpenBytes(*SerializeMatrixArtifact(std::move(in)));
  ASSERT_TRUE(reader.ok());
  absl::StatusOr<MatrixArtifact> a = ReadMatrixArtifact(**reader);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->adapter.has_value());
  EXPECT_FALSE(a->report.has_value());
  EXPECT_TRUE(Contains(ReadArtifactReport(**reader).status().message(), "no \"report\""));
}

// An artifact whose "report" metadata is `report_json`.
absl::Status ReportError(const std::string& report_json) {
  SafetensorsWriter w;
  w.SetMetadata("format", "caldera.matrix.v1");
  w.SetMetadata("report", report_json);
  EXPECT_TRUE(w.Add(std::string(kPrefix) + ".caldera.config", RecordConfigTensor(Config())).ok());
  auto reader = OpenBytes(*w.Serialize(), "art.safetensors");
  if (!reader.ok()) return reader.status();
  return ReadArtifactReport(**reader).status();
}

TEST(MatrixArtifactTest, WrongTypesInTheReportAreErrorsNotExceptions) {
  nlohmann::json good = ModuleReportToJson(Report());
  EXPECT_TRUE(ReportError(good.dump()).ok());
  nlohmann::json bad = good;
  bad["rows"] = "8";
  absl::Status s = ReportError(bad.dump());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "art.safetensors: metadata \"report\"")) << s;
  EXPECT_TRUE(Contains(s.message(), "\"rows\" must be an integer")) << s;
  bad = good;
  bad["name"] = 3;
  EXPECT_TRUE(Contains(ReportError(bad.dump()).message(), "\"name\" must be a string"));
  bad = good;
  bad["seconds"] = nlohmann::json::array();
  EXPECT_TRUE(Contains(ReportError(bad.dump()).message(), "\"seconds\" must be a number"));
  bad = good;
  bad.erase("storage_bits");
  EXPECT_TRUE(Contains(ReportError(bad.dump()).message(), "missing key \"storage_bits\""));
  bad = good;
  bad["ttlora_params"] = true;
  EXPECT_TRUE(Contains(ReportError(bad.dump()).message(), "\"ttlora_params\""));
  EXPECT_FALSE(ReportError("[1, 2]").ok());
  EXPECT_FALSE(ReportError("{not json").ok());
  // Older reports without the ttlora keys still load.
  bad = good;
  bad.erase("ttlora_params");
  EXPECT_TRUE(ReportError(bad.dump()).ok());
}

TEST(MatrixArtifactTest, BrokenArtifactsAreRefused) {
  SafetensorsWriter w;
  EXPECT_TRUE(w.Add("x.caldera.config", RecordConfigTensor(Config())).ok());
  auto no_tag = OpenBytes(*w.Serialize());
  ASSERT_TRUE(no_tag.ok());
  EXPECT_TRUE(Contains(ReadMatrixArtifact(**no_tag).status().message(), "not a matrix artifact"));
  w.SetMetadata("format", "caldera.matrix.v1");
  EXPECT_TRUE(w.Add("y.caldera.config", RecordConfigTensor(Config())).ok());
  auto two = OpenBytes(*w.Serialize());
  ASSERT_TRUE(two.ok());
  EXPECT_TRUE(Contains(ReadMatrixArtifact(**two).status().message(), "two records"));
  // A core that does not match its config.
  MatrixArtifact a = Sample(true);
  a.adapter->cores[1] = *Tensor::Zeros(DType::kF32, {2, 3, 2});
  EXPECT_FALSE(SerializeMatrixArtifact(std::move(a)).ok());
  // Truncated.
  std::string bytes = *SerializeMatrixArtifact(Sample(true));
  bytes.resize(bytes.size() / 2);
  EXPECT_FALSE(OpenBytes(bytes).ok());
}

}  // namespace
}  // namespace caldera::format
