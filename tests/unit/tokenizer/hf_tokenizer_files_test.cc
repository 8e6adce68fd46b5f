#include "core/tokenizer/hf_tokenizer_files.h"

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"

namespace caldera::tokenizer {
namespace {

// A tiny llama2.c vocabulary: <unk>, BOS, EOS, two byte pieces, then text
// pieces with scores. "ab" can be made from (a, b); "abc" from (ab, c) and
// (a, bc); "bc" from (b, c).
VocabTokenizer Tiny(std::vector<std::string> extra = {}) {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", "<0x41>", "<0x42>", " ",
                                     "a",     "b",   "c",    "ab",     "bc",     "abc"};
  std::vector<float> scores = {0, 0, 0, 0, 0, -9, -8, -7, -6, -1, -2, -3};
  for (std::string& p : extra) {
    pieces.push_back(std::move(p));
    scores.push_back(-20);
  }
  absl::StatusOr<VocabTokenizer> t = VocabTokenizer::FromPieces(pieces, scores, "tiny", 1, 2);
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

TEST(HfTokenizerFilesTest, MergesGoByScoreOfTheResultThenSplitPoint) {
  absl::StatusOr<HfTokenizerFiles> f = HfTokenizerFilesFor(Tiny(), 64);
  ASSERT_TRUE(f.ok()) << f.status();
  const nlohmann::json t = nlohmann::json::parse(f->tokenizer_json);
  const nlohmann::json merges = t["model"]["merges"];
  // ab (-1), bc (-2), then abc (-3) split after "a" before the split after "ab".
  EXPECT_EQ(merges, nlohmann::json::parse(R"([["a","b"],["b","c"],["a","bc"],["ab","c"]])"));
  EXPECT_EQ(t["model"]["vocab"]["abc"], 11);
  EXPECT_EQ(t["model"]["unk_token"], "<unk>");
  EXPECT_TRUE(t["model"]["byte_fallback"].get<bool>());
  EXPECT_EQ(t["normalizer"]["prepend"], " ");  // the dummy space, as llama2.c
  EXPECT_EQ(t["post_processor"]["single"][0]["SpecialToken"]["id"], "<s>");
  EXPECT_EQ(t["added_tokens"].size(), 3u);  // <unk>, <s>, </s>
  const nlohmann::json c = nlohmann::json::parse(f->tokenizer_config_json);
  EXPECT_EQ(c["model_max_length"], 64);
  EXPECT_EQ(c["bos_token"], "<s>");
  EXPECT_TRUE(c["add_bos_token"].get<bool>());
}

TEST(HfTokenizerFilesTest, AVocabularyWithoutASpacePieceGetsNoDummySpace) {
  absl::StatusOr<VocabTokenizer> v =
      VocabTokenizer::FromPieces({"<unk>", "x", "y", "xy"}, {0, -3, -2, -1}, "nospace", -1, -1);
  ASSERT_TRUE(v.ok()) << v.status();
  absl::StatusOr<HfTokenizerFiles> f = HfTokenizerFilesFor(*v, 8);
  ASSERT_TRUE(f.ok()) << f.status();
  const nlohmann::json t = nlohmann::json::parse(f->tokenizer_json);
  EXPECT_TRUE(t["normalizer"].is_null());
  EXPECT_TRUE(t["post_processor"].is_null());  // no BOS
  EXPECT_FALSE(t["model"]["byte_fallback"].get<bool>());
}

TEST(HfTokenizerFilesTest, ASpecialPieceSpelledLikeATextPieceIsRefusedNamingBoth) {
  // "<s>" as a text piece too: tokenizer.json's vocabulary map cannot hold both.
  absl::StatusOr<HfTokenizerFiles> f = HfTokenizerFilesFor(Tiny({"<s>"}), 64);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("ids 1 and 12"), std::string::npos) << f.status();
  EXPECT_FALSE(HfTokenizerFilesFor(Tiny(), 0).ok());
}

}  // namespace
}  // namespace caldera::tokenizer
