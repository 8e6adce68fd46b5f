#include "core/model/model_runner.h"

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"
#include "tests/support/subprocess.h"

namespace caldera::model {
namespace {

std::string FixtureDir() {
  absl::StatusOr<std::string> p = testing::FixturePath("stories260K");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : "";
}

std::unique_ptr<Checkpoint> OpenFixture() {
  const std::string dir = FixtureDir();
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt =
      Checkpoint::Open(LocalDirectoryOpener(dir), dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  return ckpt.ok() ? *std::move(ckpt) : nullptr;
}

TokenSet LoadFixtureTokens(const Checkpoint& ckpt, const std::string& file) {
  auto reader = SafetensorsReader::OpenFile(FixtureDir() + "/" + file);
  EXPECT_TRUE(reader.ok()) << reader.status();
  absl::StatusOr<TokenSet> t = LoadTokens(**reader, ckpt.config());
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

TEST(ModelRunnerTest, FixturePerplexityMatchesReferenceWithinPointOnePercent) {
  std::unique_ptr<Checkpoint> ckpt = OpenFixture();
  ASSERT_NE(ckpt, nullptr);
  TokenSet tokens = LoadFixtureTokens(*ckpt, "eval.safetensors");
  EXPECT_EQ(tokens.samples, 64);
  EXPECT_EQ(tokens.seq_len, 256);
  absl::StatusOr<EvalResult> r = EvaluatePerplexity(*ckpt, tokens, RunOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->predictions, 64 * 255);
  // Reference from ../shared/models/README.md (independent float32 implementation).
  constexpr double kReference = 3.667005;
  EXPECT_NEAR(r->perplexity, kReference, kReference * 1e-3) << r->perplexity;
}

}  // namespace
}  // namespace caldera::model
