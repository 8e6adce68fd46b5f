#include "core/format/checkpoint_report.h"

#include "gtest/gtest.h"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;

CheckpointReport Sample() {
  CheckpointReport r;
  r.request_id = "req-1";
  for (int i = 0; i < 2; ++i) {
    ModuleReport m;
    m.name = "model.layers.0.mlp.up_proj";
    m.module = "up_proj";
    m.rows = 4;
    m.cols = 8;
    m.rank = 2;
    m.weighted_relative_error = i == 0 ? 0.3 : 0.4;
    m.storage_bits = 64;
    m.seconds = 0.5;
    r.matrices.push_back(m);
  }
  r.totals = ComputeTotals(r.matrices, 3.0);
  return r;
}

TEST(CheckpointReportTest, TotalsAndRoundTrip) {
  const CheckpointReport r = Sample();
  EXPECT_EQ(r.totals.matrices, 2);
  EXPECT_EQ(r.totals.parameters, 64);
  EXPECT_EQ(r.totals.bits_per_param, 2.0);
  EXPECT_NEAR(r.totals.rms_weighted_relative_error, std::sqrt((0.09 + 0.16) / 2), 1e-15);
  EXPECT_EQ(r.totals.decompose_seconds, 1.0);
  EXPECT_EQ(r.totals.seconds, 3.0);
  const std::string text = SerializeCheckpointReport(r);
  absl::StatusOr<CheckpointReport> back = ParseCheckpointReport(text, "report.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->request_id, "req-1");
  ASSERT_EQ(back->matrices.size(), 2u);
  EXPECT_EQ(back->matrices[1].weighted_relative_error, 0.4);
  EXPECT_EQ(back->totals.parameters, 64);
  EXPECT_EQ(SerializeCheckpointReport(*back), text);
  EXPECT_EQ(ComputeTotals({}, 1.0).bits_per_param, 0.0);
}

TEST(CheckpointReportTest, CheckedReading) {
  nlohmann::json j = nlohmann::json::parse(SerializeCheckpointReport(Sample()));
  auto error = [](const nlohmann::json& k) {
    return ParseCheckpointReport(k.dump(), "out/report.json").status();
  };
  nlohmann::json k = j;
  k["matrices"][1]["rank"] = 2.5;
  absl::Status s = error(k);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "out/report.json: matrices[1]: key \"rank\"")) << s;
  k = j;
  k["totals"]["seconds"] = "3";
  EXPECT_TRUE(Contains(error(k).message(), "totals: key \"seconds\" must be a number"));
  k = j;
  k["matrices"] = nlohmann::json::object();
  EXPECT_TRUE(Contains(error(k).message(), "\"matrices\" must be an array"));
  k = j;
  k["format_version"] = 9;
  EXPECT_TRUE(Contains(error(k).message(), "not supported"));
  k = j;
  k.erase("totals");
  EXPECT_TRUE(Contains(error(k).message(), "missing key \"totals\""));
  EXPECT_FALSE(ParseCheckpointReport("", "r").ok());
  std::string truncated = SerializeCheckpointReport(Sample());
  truncated.resize(truncated.size() / 2);
  EXPECT_FALSE(ParseCheckpointReport(truncated, "r").ok());
}

}  // namespace
}  // namespace caldera::format

namespace caldera::format {
namespace {

// report.json's optional "finetune" (one entry per tuned block) round-trips,
// is absent when empty, and is read checked.
TEST(CheckpointReportTest, FinetuneEntriesRoundTripAndAreChecked) {
  CheckpointReport r;
  r.request_id = "req-2";
  FinetuneBlockReport b;
  b.layer = 3;
  b.steps = 250;
  b.train_before = 0.5;
  b.holdout_before = 0.25;
  b.holdout_after = 0.125;
  b.modules_tuned = 7;
  r.finetune = {b};
  const std::string text = SerializeCheckpointReport(r);
  absl::StatusOr<CheckpointReport> back = ParseCheckpointReport(text, "report.json");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->finetune.size(), 1u);
  EXPECT_EQ(back->finetune[0].layer, 3);
  EXPECT_EQ(back->finetune[0].steps, 250);
  EXPECT_EQ(back->finetune[0].holdout_after, 0.125);
  EXPECT_EQ(back->finetune[0].modules_tuned, 7);
  EXPECT_FALSE(back->finetune[0].kept_input);
  EXPECT_EQ(SerializeCheckpointReport(*back), text);
  r.finetune.clear();
  EXPECT_FALSE(nlohmann::json::parse(SerializeCheckpointReport(r)).contains("finetune"));
  nlohmann::json j = nlohmann::json::parse(text);
  j["finetune"][0].erase("holdout_after");
  absl::Status s = ParseCheckpointReport(j.dump(), "out/report.json").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "finetune[0]")) << s;
  j["finetune"] = 1;
  EXPECT_TRUE(Contains(ParseCheckpointReport(j.dump(), "r").status().message(),
                       "\"finetune\" must be an array"));
}

}  // namespace
}  // namespace caldera::format
