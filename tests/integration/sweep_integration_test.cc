// calderactl sweep on the stories260K fixture: three budgets with fast flags
// (the ldlq candidates it picks do not iterate), then sweep.json and sweep.svg.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"
#include "tests/support/subprocess.h"

namespace caldera {
namespace {

using testing::FixturePath;
using testing::ReadFile;
using testing::RunCommand;
using testing::StoriesModelDir;
using testing::TempDir;

std::string SweepCmd(const std::string& out, const std::string& extra) {
  const std::string m = StoriesModelDir();
  return absl::StrCat(CALDERACTL_PATH, " sweep --model ", m, " --calibration ", m,
                      "/calibration.safetensors --eval ", m, "/eval.safetensors --out ", out,
                      " --iters 1 --lplr-iters 1 --workers 2", extra);
}

// A small well-formedness check of an XML document: every element closed in
// order, one root. Returns the root's name, or "" when not well formed.
std::string XmlRoot(const std::string& xml, int* elements) {
  std::vector<std::string> stack;
  std::string root;
  *elements = 0;
  size_t i = 0;
  while ((i = xml.find('<', i)) != std::string::npos) {
    const size_t end = xml.find('>', i);
    if (end == std::string::npos) return "";
    std::string tag = xml.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.empty()) return "";
    if (tag[0] == '?' || tag[0] == '!') continue;
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1)) return "";
      stack.pop_back();
      continue;
    }
    const bool self_closing = tag.back() == '/';
    const std::string name = tag.substr(0, tag.find_first_of(" \t\n/"));
    ++*elements;
    if (stack.empty()) {
      if (!root.empty()) return "";  // a second root
      root = name;
    }
    if (!self_closing) stack.push_back(name);
  }
  return stack.empty() ? root : "";
}

TEST(SweepIntegrationTest, FitsTheLawAndWritesTheReport) {
  TempDir dir;
  const std::string out = dir.Join("sweep");
  std::string stdout_text;
  const int rc =
      RunCommand(SweepCmd(out, " --budgets 1.5,2.5,3.3,4.3 --target-loss 2.0"), &stdout_text);
  ASSERT_EQ(rc, 0) << stdout_text;
  EXPECT_NE(stdout_text.find("fit: loss = "), std::string::npos) << stdout_text;
  EXPECT_NE(stdout_text.find("target loss 2: predicted budget "), std::string::npos) << stdout_text;

  nlohmann::json j = nlohmann::json::parse(ReadFile(out + "/sweep.json"), nullptr, false);
  ASSERT_TRUE(j.is_object());
  ASSERT_TRUE(j["points"].is_array());
  ASSERT_EQ(j["points"].size(), 3u) << j.dump(2);
  ASSERT_TRUE(j["unmet_budgets"].is_array());
  ASSERT_EQ(j["unmet_budgets"].size(), 1u);  // nothing fits 1.5 bits
  EXPECT_EQ(j["unmet_budgets"][0], 1.5);
  ASSERT_TRUE(j["original"]["loss"].is_number());
  const double l0 = j["original"]["loss"].get<double>();
  double previous_bits = 16, previous_loss = l0;
  for (const nlohmann::json& p : j["points"]) {  // by bits, largest first
    ASSERT_TRUE(p["bits_per_param"].is_number() && p["loss"].is_number() &&
                p["perplexity"].is_number() && p["seconds"].is_number() &&
                p["settings"].is_string() && p["budgets"].is_array())
        << p.dump();
    const double bits = p["bits_per_param"].get<double>();
    const double loss = p["loss"].get<double>();
    EXPECT_LT(bits, previous_bits);
    EXPECT_GT(loss, previous_loss) << "loss must rise as the bits fall: " << j.dump(2);
    EXPECT_NEAR(p["perplexity"].get<double>(), std::exp(loss), 1e-6 * std::exp(loss));
    ASSERT_EQ(p["budgets"].size(), 1u);
    EXPECT_LE(bits, p["budgets"][0].get<double>());
    previous_bits = bits;
    previous_loss = loss;
  }
  ASSERT_TRUE(j["fit"].is_object()) << j.dump(2);
  for (const char* k : {"l0", "b", "c", "rmse", "max_abs_residual", "r_squared"}) {
    ASSERT_TRUE(j["fit"][k].is_number()) << k;
  }
  EXPECT_EQ(j["fit"]["l0"].get<double>(), l0);
  EXPECT_GE(j["fit"]["rmse"].get<double>(), 0);
  EXPECT_GE(j["fit"]["max_abs_residual"].get<double>(), j["fit"]["rmse"].get<double>());
  ASSERT_TRUE(j["target"].is_object());
  EXPECT_TRUE(j["target"]["predicted_bits"].is_number());
  EXPECT_TRUE(j["target"]["settings"].is_string());

  const std::string svg = ReadFile(out + "/sweep.svg");
  int elements = 0;
  EXPECT_EQ(XmlRoot(svg, &elements), "svg") << svg.substr(0, 400);
  EXPECT_GT(elements, 50);
  size_t circles = 0;
  for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1))
    ++circles;
  EXPECT_EQ(circles, 6u);  // three points in each of the two panels
  EXPECT_NE(svg.find("<polyline class=\"fit\""), std::string::npos);
  EXPECT_NE(svg.find(">bits per parameter</text>"), std::string::npos);
}

TEST(SweepIntegrationTest, RejectsBadBudgets) {
  TempDir dir;
  std::string text;
  EXPECT_EQ(RunCommand(SweepCmd(dir.Join("s"), " --budgets 0,3 2>&1"), &text), 2) << text;
  EXPECT_EQ(RunCommand(SweepCmd(dir.Join("s"), " --budgets 17 2>&1"), &text), 2) << text;
}

}  // namespace
}  // namespace caldera
