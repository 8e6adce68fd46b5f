// --target-bits: a decompose task stores every candidate of its window next
// to its artifact (<module>.c<i>.safetensors, <module>.candidates.json), in
// its own attempt directory, so a retried task never reads or overwrites an
// earlier attempt's candidates and the committed layout (one artifact URI per
// task) stays as it is.
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model_io/model_inputs.h"
#include "nlohmann/json.hpp"
#include "storage/storage.h"
#include "storage/storage_options.h"
#include "tests/support/fixtures.h"
#include "worker/executors.h"

namespace caldera::worker {
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
  ASSERT_TRUE(CalibrateLayer(**ckpt, 0, model_dir + "/calibration.safetensors", hessians, "",
                             options, nullptr)
                  .ok());
  absl::StatusOr<Eigen::MatrixXd> h = ReadHessian(hessians, "q_proj", options);
  ASSERT_TRUE(h.ok()) << h.status();
  JobSpec spec;
  spec.model = model_dir;
  spec.target_bits = 4.21;
  spec.iters = 1;
  spec.lplr_iters = 1;
  const model::LinearModule& q = model::kLinearModules[0];
  std::vector<std::set<std::string>> written;
  for (const char* attempt : {"a1", "a2"}) {
    const std::string dir = tmp.Join(attempt);
    std::filesystem::create_directories(dir);
    const std::string artifact = dir + "/q_proj.safetensors";
    absl::StatusOr<ModuleReport> rep =
        DecomposeModule(**ckpt, 0, q, *h, spec, artifact, options, 1, nullptr);
    ASSERT_TRUE(rep.ok()) << rep.status();
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

}  // namespace
}  // namespace caldera::worker
