// --target-bits: a decompose task stores every candidate of its window next
// to its artifact (<module>.c<i>.safetensors, <module>.candidates.json), in
// its own attempt directory, so a retried task never reads or overwrites an
// earlier attempt's candidates and the committed layout (one artifact URI per
// task) stays as it is.
#include "pipeline/budget_candidates.h"

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model_io/model_inputs.h"
#include "nlohmann/json.hpp"
#include "pipeline/calibrate_step.h"
#include "pipeline/decompose_step.h"
#include "storage/storage.h"
#include "storage/storage_options.h"
#include "tests/support/fixtures.h"

namespace caldera::pipeline {

using format::ModuleReport;
namespace {

std::set<std::string> FilesUnder(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.insert(e.path().string());
  }
  return out;
}

TEST(BudgetCandidatesTest, EachAttemptWritesItsOwnCandidates) {
  absl::StatusOr<std::string> p = testing::FixturePath("stories260K/model.safetensors");
  ASSERT_TRUE(p.ok()) << p.status();
  const std::string model_dir = p->substr(0, p->rfind('/'));
  storage::StorageOptions options;
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
      model_io::OpenCheckpointAt(model_dir, options);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  testing::TempDir tmp;
  const std::string hessians = tmp.Join("hessians.safetensors");
  CalibrateRequest calibrate;
  calibrate.input_uri = model_dir + "/calibration.safetensors";
  calibrate.hessians_uri = hessians;
  ASSERT_TRUE(Calibrate(**ckpt, calibrate, StepEnvironment{options}).ok());
  job::JobSpec spec;
  spec.model = model_dir;
  spec.target_bits = 4.21;
  spec.iters = 1;
  spec.lplr_iters = 1;
  std::vector<std::set<std::string>> written;
  for (const char* attempt : {"a1", "a2"}) {
    const std::string dir = tmp.Join(attempt);
    std::filesystem::create_directories(dir);
    const std::string artifact = dir + "/q_proj.safetensors";
    DecomposeRequest request;
    request.module = "q_proj";
    request.hessians_uris = {hessians};
    request.spec = spec;
    request.artifact_uri = artifact;
    absl::StatusOr<DecomposeResult> done = Decompose(**ckpt, request, StepEnvironment{options});
    ASSERT_TRUE(done.ok()) << done.status();
    const ModuleReport* rep = &done->report;
    EXPECT_EQ(rep->artifact, artifact);
    EXPECT_FALSE(rep->setting.empty());
    // The primary artifact fits alone; the list has candidates on both sides.
    EXPECT_LE(rep->bits_per_param, 4.21);
    absl::StatusOr<std::string> text =
        storage::ReadObject(dir + "/q_proj.candidates.json", options);
    ASSERT_TRUE(text.ok()) << text.status();
    const nlohmann::json list = nlohmann::json::parse(*text, nullptr, false);
    ASSERT_TRUE(list.is_object() && list["candidates"].is_array()) << *text;
    int above = 0, within = 0;
    double best_within = 1e300;  // the lowest weighted error among those that fit
    std::string best_setting;
    for (const nlohmann::json& c : list["candidates"]) {
      ASSERT_TRUE(c["artifact"].is_string() && c["bits_per_param"].is_number()) << c.dump();
      EXPECT_TRUE(absl::StartsWith(c["artifact"].get<std::string>(), dir + "/q_proj.c"))
          << c.dump();
      (c["bits_per_param"].get<double>() > 4.21 ? above : within)++;
      // Each candidate's artifact is complete on its own.
      absl::StatusOr<ModuleReport> cr = ReadModuleReport(c["artifact"].get<std::string>(), options);
      ASSERT_TRUE(cr.ok()) << cr.status();
      EXPECT_EQ(cr->setting, c["setting"].get<std::string>());
      if (cr->bits_per_param <= 4.21 && cr->weighted_relative_error < best_within) {
        best_within = cr->weighted_relative_error;
        best_setting = cr->setting;
      }
    }
    // The primary artifact is the fitting candidate with the lowest error.
    EXPECT_EQ(rep->setting, best_setting);
    EXPECT_EQ(rep->weighted_relative_error, best_within);
    EXPECT_GE(above, 1);
    EXPECT_GE(within, 1);
    written.push_back(FilesUnder(dir));
  }
  // Same names, different attempt directories: nothing shared.
  ASSERT_EQ(written[0].size(), written[1].size());
  for (const std::string& f : written[0]) {
    EXPECT_EQ(written[1].count(f), 0u) << f;
    EXPECT_NE(f.find("/a1/"), std::string::npos) << f;
  }
}

TEST(BudgetCandidatesTest, TheListRoundTripsAndAMalformedOneNamesTheKey) {
  BudgetCandidateList list;
  list.target_bits = 3.5;
  list.params = 64 * 172;
  list.weight_norm2 = 2.25;
  for (int i = 0; i < 2; ++i) {
    ModuleReport c;
    c.artifact = CandidateArtifactUri("/x/a1/down_proj.safetensors", i);
    c.setting = i == 0 ? "ldlq-u3-g128" : "caldera-e8p2-r4";
    c.storage_bits = 1000 + i;
    c.bits_per_param = 3.25 + i;
    c.weighted_relative_error = 0.125 / (i + 1);
    list.candidates.push_back(c);
  }
  EXPECT_EQ(list.candidates[1].artifact, "/x/a1/down_proj.c1.safetensors");
  EXPECT_EQ(CandidateListUri("/x/a1/down_proj.safetensors"), "/x/a1/down_proj.candidates.json");
  absl::StatusOr<BudgetCandidateList> back =
      ParseCandidateList(SerializeCandidateList(list), "l.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->target_bits, 3.5);
  EXPECT_EQ(back->params, 64 * 172);
  EXPECT_EQ(back->weight_norm2, 2.25);
  ASSERT_EQ(back->candidates.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back->candidates[i].artifact, list.candidates[i].artifact);
    EXPECT_EQ(back->candidates[i].setting, list.candidates[i].setting);
    EXPECT_EQ(back->candidates[i].storage_bits, list.candidates[i].storage_bits);
    EXPECT_EQ(back->candidates[i].bits_per_param, list.candidates[i].bits_per_param);
    EXPECT_EQ(back->candidates[i].weighted_relative_error,
              list.candidates[i].weighted_relative_error);
  }
  absl::StatusOr<BudgetCandidateList> bad =
      ParseCandidateList(R"({"target_bits": "3.5", "params": 1, "weight_norm2": 1,
                             "candidates": []})",
                         "l.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("target_bits"), std::string::npos) << bad.status();
  absl::StatusOr<BudgetCandidateList> empty = ParseCandidateList(
      R"({"target_bits": 3.5, "params": 1, "weight_norm2": 1, "candidates": []})", "l.json");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("non-empty array"), std::string::npos) << empty.status();
}

// A list is scratch data: one that points a candidate anywhere but beside its
// own artifact is refused before anything is read from there.
TEST(BudgetCandidatesTest, AListPointingElsewhereIsRefused) {
  testing::TempDir tmp;
  storage::StorageOptions options;
  const std::string artifact = tmp.Join("q_proj.safetensors");
  BudgetCandidateList list;
  list.target_bits = 3;
  list.params = 4;
  list.weight_norm2 = 1;
  ModuleReport c;
  c.artifact = "/etc/passwd";
  c.setting = "ldlq-u3-g128";
  c.storage_bits = 12;
  c.bits_per_param = 3;
  list.candidates.push_back(c);
  ASSERT_TRUE(
      storage::WriteObject(CandidateListUri(artifact), SerializeCandidateList(list), options).ok());
  std::vector<ModuleReport> reports(1);
  reports[0].artifact = artifact;
  reports[0].setting = "ldlq-u3-g128";
  reports[0].module = "q_proj";
  const absl::Status s = ResolveBudgetChoices(&reports, options);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is not beside its artifact"), std::string::npos) << s;
}

}  // namespace
}  // namespace caldera::pipeline
