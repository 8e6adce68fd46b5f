#include "core/tokenizer/vocab_tokenizer.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera::tokenizer {
namespace {

std::string FixtureVocab() {
  absl::StatusOr<std::string> p = testing::FixturePath("stories260K/tokenizer_vocab.json");
  if (!p.ok()) return "";
  std::ifstream in(*p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

VocabTokenizer Fixture() {
  const std::string json = FixtureVocab();
  absl::StatusOr<VocabTokenizer> t = VocabTokenizer::FromJson(json, "fixture", 1, 2);
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

// Expected ids read off the stories260K vocabulary by hand: ' Lily' is 317
// (score -58), ' was' 286, ' happy' 393, '.' 426; ' The' 291, ' c' 280,
// 'at' 294 (' cat' is no piece); BOS "\n<s>\n" is 1. Byte pieces "<0xNN>"
// are ids 3 + NN.
TEST(VocabTokenizerTest, KnownIdsOfTheFixture) {
  if (FixtureVocab().empty()) GTEST_SKIP() << "fixture not found";
  const VocabTokenizer t = Fixture();
  EXPECT_EQ(t.size(), 512);
  EXPECT_EQ(t.Encode("Lily was happy.", true), (std::vector<int32_t>{1, 317, 286, 393, 426}));
  EXPECT_EQ(t.Encode("The cat", false), (std::vector<int32_t>{291, 280, 294}));
  EXPECT_EQ(t.Encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  // 漢 is no piece: its three UTF-8 bytes E6 BC A2 fall back to byte pieces.
  // 漢 is no piece: its UTF-8 bytes E6 BC A2 fall back to the byte pieces
  // 3 + 0xE6 = 233, 191, 165; ' q' is no piece, so ' ' (410) and 'q' (456).
  EXPECT_EQ(t.Encode("q 漢", false), (std::vector<int32_t>{410, 456, 410, 233, 191, 165}));
  const std::vector<int32_t> han = t.Encode("漢", false);
  ASSERT_EQ(han.size(), 4u);  // the dummy space, then three bytes
  EXPECT_EQ(han[1], 3 + 0xE6);
  EXPECT_EQ(han[2], 3 + 0xBC);
  EXPECT_EQ(han[3], 3 + 0xA2);
  EXPECT_TRUE(t.Encode("", true) == std::vector<int32_t>{1});
}

TEST(VocabTokenizerTest, DecodeInvertsEncode) {
  if (FixtureVocab().empty()) GTEST_SKIP() << "fixture not found";
  const VocabTokenizer t = Fixture();
  for (const std::string text :
       {"Lily was happy.", "Once upon a time, there was a little girl named Lily.\n\nShe liked it!",
        "  leading and trailing spaces  ", "tabs\tand\r\nnewlines\n",
        "héllo wörld — “quotes” 漢字 🙂", "x", " ", "\n"}) {
    for (const bool bos : {true, false}) {
      const std::vector<int32_t> ids = t.Encode(text, bos);
      absl::StatusOr<std::string> back = t.Decode(ids);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, text) << bos;
    }
  }
  EXPECT_FALSE(t.Decode(std::vector<int32_t>{1, 512}).ok());
  EXPECT_FALSE(t.Decode(std::vector<int32_t>{-1}).ok());
}

// The merge order on a small vocabulary: the highest-scoring pair first,
// leftmost on ties, and pieces that only a lower-scoring merge would reach
// stay split.
TEST(VocabTokenizerTest, MergesByScoreLeftmostFirst) {
  const std::string json = R"([
    {"piece": "<unk>", "score": 0}, {"piece": "<s>", "score": 0}, {"piece": "</s>", "score": 0},
    {"piece": " ", "score": 0}, {"piece": "a", "score": 0}, {"piece": "b", "score": 0},
    {"piece": "ab", "score": -1}, {"piece": "bb", "score": -2}, {"piece": " a", "score": -3},
    {"piece": " ab", "score": -4}, {"piece": "abb", "score": -5}])";
  absl::StatusOr<VocabTokenizer> t = VocabTokenizer::FromJson(json, "small", 1, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  // " abb": "ab" (-1) beats "bb" (-2) and " a" (-3): [" ", "ab", "b"]; then
  // " ab" (-4) beats "abb" (-5): [" ab", "b"].
  EXPECT_EQ(t->Encode("abb", false), (std::vector<int32_t>{9, 5}));
  // "bbb": both "bb" pairs score the same; the leftmost merges: [" ", "bb", "b"].
  EXPECT_EQ(t->Encode("bbb", false), (std::vector<int32_t>{3, 7, 5}));
  // No byte pieces: an unknown character is <unk>.
  EXPECT_EQ(t->Encode("c", true), (std::vector<int32_t>{1, 3, 0}));
}

TEST(VocabTokenizerTest, BadVocabulariesAreRejected) {
  EXPECT_FALSE(VocabTokenizer::FromJson("[]", "v", -1, -1).ok());
  EXPECT_FALSE(VocabTokenizer::FromJson("{\"a\": 1}", "v", -1, -1).ok());
  EXPECT_FALSE(VocabTokenizer::FromJson("[{\"piece\": 3, \"score\": 0}]", "v", -1, -1).ok());
  EXPECT_FALSE(VocabTokenizer::FromJson(
                   R"([{"piece": "a", "score": 0}, {"piece": "a", "score": 1}])", "v", -1, -1)
                   .ok());
  absl::StatusOr<VocabTokenizer> bad_bos =
      VocabTokenizer::FromJson(R"([{"piece": "a", "score": 0}])", "v", 5, -1);
  ASSERT_FALSE(bad_bos.ok());
  EXPECT_NE(bad_bos.status().message().find("BOS/EOS id 5"), std::string::npos);
}

}  // namespace
}  // namespace caldera::tokenizer

namespace caldera::tokenizer {
namespace {

// Issue 37, case 4: a document encoded in parts cut at SafeSplit gives the
// ids of the whole (what lets model_io stream a text file), with BOS once.
TEST(VocabTokenizerTest, PartsCutAtSafeSplitsEncodeLikeTheWhole) {
  if (FixtureVocab().empty()) GTEST_SKIP() << "fixture not found";
  const VocabTokenizer t = Fixture();
  std::string text = "  Once upon a time,  Lily saw a cat.\nThe cat was happy!  漢字 ok ";
  for (int i = 0; i < 6; ++i) text += text;  // ~4 KiB
  for (const bool bos : {true, false}) {
    const std::vector<int32_t> whole = t.Encode(text, bos);
    for (const size_t part : {size_t{7}, size_t{64}, size_t{1000}}) {
      std::vector<int32_t> ids;
      absl::string_view rest = text;
      bool first = true;
      while (rest.size() > part) {
        const size_t cut = t.SafeSplit(rest.substr(0, part));
        if (cut == 0) break;
        ASSERT_EQ(rest[cut], ' ');
        const std::vector<int32_t> p = t.EncodePart(rest.substr(0, cut), first, false, bos);
        ids.insert(ids.end(), p.begin(), p.end());
        rest.remove_prefix(cut);
        first = false;
      }
      const std::vector<int32_t> last = t.EncodePart(rest, first, true, bos);
      ids.insert(ids.end(), last.begin(), last.end());
      EXPECT_EQ(ids, whole) << "parts of " << part << " bytes";
    }
  }
  EXPECT_EQ(t.SafeSplit("ab"), 0u);
  EXPECT_EQ(t.SafeSplit("a  b"), 0u);   // not inside a run of spaces
  EXPECT_EQ(t.SafeSplit("a b c"), 3u);  // the last one
}

}  // namespace
}  // namespace caldera::tokenizer
