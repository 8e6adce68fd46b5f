// calderactl compress --share-heads (DirectShare before CALDERA) on the
// stories260K fixture: the map file, the smaller records, eval and export of
// the shared checkpoint, eval --share-heads alone, and bad ratios.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

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

std::string Ctl() { return CALDERACTL_PATH; }

std::string CompressCmd(const std::string& out, const std::string& extra) {
  return absl::StrCat(Ctl(), " compress --model ", StoriesModelDir(), " --calibration ",
                      StoriesModelDir(), "/calibration.safetensors --out ", out,
                      " --iters 1 --lplr-iters 1 --workers 2 --rank 8", extra, " 2>&1");
}

double Perplexity(const std::string& model, const std::string& extra = "") {
  std::string out;
  const int rc =
      RunCommand(absl::StrCat(Ctl(), " eval --json --model ", model, " --tokens ",
                              StoriesModelDir(), "/eval.safetensors", extra, " 2>/dev/null"),
                 &out);
  EXPECT_EQ(rc, 0) << out;
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  EXPECT_TRUE(j.is_object() && j["perplexity"].is_number()) << out;
  return j.is_object() && j["perplexity"].is_number() ? j["perplexity"].get<double>() : -1;
}

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadFile(path), nullptr, false);
}

// storage_bits of (layer, module) in a report, -1 when absent.
double StorageBits(const nlohmann::json& report, int layer, const std::string& module) {
  for (const auto& m : report["matrices"]) {
    if (m["layer"] == layer && m["module"] == module) return m["storage_bits"].get<double>();
  }
  return -1;
}

TEST(HeadSharingIntegration, CompressEvalExportRoundTrip) {
  TempDir tmp;
  const std::string plain = tmp.Join("plain"), shared = tmp.Join("shared");
  std::string log;
  ASSERT_EQ(RunCommand(CompressCmd(plain, ""), &log), 0) << log;
  ASSERT_EQ(RunCommand(CompressCmd(shared, " --share-heads 0.3"), &log), 0) << log;

  // The map: 30 % of 5 layers x 4 KV groups = 6 groups, sources earlier.
  nlohmann::json map = ReadJson(shared + "/head_sharing.json");
  ASSERT_TRUE(map.is_object()) << ReadFile(shared + "/head_sharing.json");
  EXPECT_EQ(map["method"], "directshare");
  EXPECT_EQ(map["granularity"], "kv_group");
  ASSERT_EQ(map["shares"].size(), 6u);
  for (const auto& s : map["shares"]) EXPECT_LT(s["source_layer"], s["layer"]) << s.dump();
  EXPECT_FALSE(std::ifstream(plain + "/head_sharing.json").good());

  // Target matrices store fewer bits; totals count shared heads once.
  nlohmann::json rp = ReadJson(plain + "/report.json"), rs = ReadJson(shared + "/report.json");
  ASSERT_TRUE(rp.is_object() && rs.is_object());
  const int target = map["shares"][0]["layer"].get<int>();
  for (const std::string m : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    EXPECT_LT(StorageBits(rs, target, m), StorageBits(rp, target, m)) << m;
  }
  EXPECT_EQ(StorageBits(rs, target, "down_proj"), StorageBits(rp, target, "down_proj"));
  EXPECT_LT(rs["totals"]["bits_per_param"].get<double>(),
            rp["totals"]["bits_per_param"].get<double>());
  // 6 groups x (q 16 + k 8 + v 8 rows of 64, o 16 columns of 64) = 6 x 3072.
  EXPECT_EQ(rs["head_sharing"]["shared_groups"], 6);
  EXPECT_EQ(rs["head_sharing"]["aliased_params"].get<double>(), 6 * 3072);
  EXPECT_FALSE(rp.contains("head_sharing"));

  // eval reads the shared checkpoint; export (dense, hf) materialises the
  // aliases, so the exported models compute the same perplexity.
  const double base = Perplexity(StoriesModelDir());
  const double ppl = Perplexity(shared);
  std::fprintf(stderr, "perplexity: original %.4f caldera %.4f caldera+share0.3 %.4f\n", base,
               Perplexity(plain), ppl);
  EXPECT_GT(ppl, base);
  EXPECT_TRUE(std::isfinite(ppl));
  for (const std::string format : {"dense", "hf"}) {
    const std::string dir = tmp.Join(format);
    ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format ", format, " --model ", shared,
                                      " --out ", dir, " 2>&1"),
                         &log),
              0)
        << log;
    EXPECT_NEAR(Perplexity(dir), ppl, 1e-3 * ppl) << format;
  }

  // DirectShare alone: eval of the original with the heads aliased; 0 is
  // the original.
  const double alone = Perplexity(StoriesModelDir(), " --share-heads 0.3");
  EXPECT_GT(alone, base);
  EXPECT_DOUBLE_EQ(Perplexity(StoriesModelDir(), " --share-heads 0"), base);
}

TEST(HeadSharingIntegration, BadRatiosAreRefusedWithTheFlagNamed) {
  TempDir tmp;
  for (const std::string bad : {"-0.1", "1.5", "nan", "inf"}) {
    std::string log;
    EXPECT_NE(RunCommand(CompressCmd(tmp.Join("out"), " --share-heads " + bad), &log), 0) << bad;
    EXPECT_NE(log.find("--share-heads"), std::string::npos) << log;
    EXPECT_NE(RunCommand(
                  absl::StrCat(Ctl(), " eval --model ", StoriesModelDir(), " --tokens ",
                               StoriesModelDir(), "/eval.safetensors --share-heads ", bad, " 2>&1"),
                  &log),
              0)
        << bad;
    EXPECT_NE(log.find("--share-heads"), std::string::npos) << log;
  }
  std::string log;
  EXPECT_NE(RunCommand(CompressCmd(tmp.Join("out"), " --share-heads 0.2 --ttlora-rank 2"), &log),
            0);
  EXPECT_NE(log.find("--ttlora-rank"), std::string::npos) << log;
}

}  // namespace
}  // namespace caldera
