// TokenizeTextFile streams text (issue 37, case 4): documents are encoded in
// parts cut where the tokenizer allows, so a tokenizer's own memory per
// byte applies to a part, not the file; a document with no safe cut is
// encoded whole, up to kMaxUncutDocumentBytes, and refused beyond that.
#include "model_io/text_tokens.h"

#include <algorithm>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera::model_io {
namespace {

using testing::TempDir;

// One id per byte; SafeSplit after any '|' (no token spans it); records the
// longest text it was asked to encode.
class CountingTokenizer : public tokenizer::Tokenizer {
 public:
  explicit CountingTokenizer(bool cuttable) : cuttable_(cuttable) {}
  int64_t vocab_size() const override { return 256; }
  std::vector<int32_t> Encode(absl::string_view text, bool add_special) const override {
    return EncodePart(text, true, true, add_special);
  }
  size_t SafeSplit(absl::string_view text) const override {
    const size_t bar = cuttable_ ? text.rfind('|') : absl::string_view::npos;
    return bar == absl::string_view::npos || bar == 0 ? 0 : bar;
  }
  std::vector<int32_t> EncodePart(absl::string_view text, bool first, bool last,
                                  bool add_special) const override {
    longest_ = std::max(longest_, text.size());
    std::vector<int32_t> ids;
    if (first && add_special) ids.push_back(1);
    for (char c : text) ids.push_back(static_cast<unsigned char>(c));
    if (last && add_special) ids.push_back(2);
    return ids;
  }
  absl::StatusOr<std::string> Decode(std::span<const int32_t>) const override {
    return std::string();
  }
  mutable size_t longest_ = 0;

 private:
  const bool cuttable_;
};

TEST(TextTokensTest, DocumentsAreEncodedInBoundedParts) {
  TempDir tmp;
  std::string text;
  while (text.size() < (size_t{3} << 20)) text += "abc def|";
  std::ofstream(tmp.Join("t.txt"), std::ios::binary) << text;
  CountingTokenizer tok(/*cuttable=*/true);
  absl::StatusOr<std::vector<int32_t>> ids =
      TokenizeTextFile(tok, tmp.Join("t.txt"), "text", true, storage::StorageOptions());
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->size(), text.size() + 2);  // BOS, every byte once, EOS
  EXPECT_EQ(ids->front(), 1);
  EXPECT_EQ(ids->back(), 2);
  EXPECT_LE(tok.longest_, size_t{64} << 10);  // parts of ~64 KiB, not the 3 MiB file
}

TEST(TextTokensTest, AnUncuttableDocumentAboveTheLimitIsRefusedNamingTheFix) {
  TempDir tmp;
  {
    std::ofstream out(tmp.Join("t.txt"), std::ios::binary);
    const std::string block(1 << 20, 'x');
    for (size_t i = 0; i <= kMaxUncutDocumentBytes >> 20; ++i) out << block;
  }
  CountingTokenizer tok(/*cuttable=*/false);
  absl::StatusOr<std::vector<int32_t>> ids =
      TokenizeTextFile(tok, tmp.Join("t.txt"), "text", true, storage::StorageOptions());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ids.status().message().find("make the text a .jsonl file of smaller documents"),
            std::string::npos)
      << ids.status();
  EXPECT_EQ(tok.longest_, 0u);  // refused before encoding
}

}  // namespace
}  // namespace caldera::model_io
