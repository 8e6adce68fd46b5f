// BpeTokenizer and SentencePieceTokenizer on hand-written files whose ids can
// be read off by hand (the exact comparison with the reference packages on
// trained tokenizers is tests/tokenizer/tokenizer_roundtrip_test.py).
#include <string>
#include <tuple>
#include <vector>

#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/sentencepiece_tokenizer.h"
#include "gtest/gtest.h"

namespace caldera::tokenizer {
namespace {

using Ids = std::vector<int32_t>;

// Byte-level (GPT-2 map: ' ' is "Ġ"), a BOS template, one special token.
constexpr char kByteLevel[] = R"({
  "added_tokens": [{"id": 17, "content": "<|bos|>", "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [17], "tokens": ["<|bos|>"]}}},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "unk_token": null,
    "vocab": {"h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "w": 5, "r": 6, "d": 7, "!": 8,
              "he": 9, "ll": 10, "hell": 11, "hello": 12, "Ġw": 13, "or": 14, "Ġwor": 15,
              "ld": 16, "Ġworld": 18},
    "merges": ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d",
               ["Ġwor", "ld"]]}})";

// Llama 2-style: "▁" normalizers, byte fallback, BOS from tokenizer_config.
constexpr char kMetaspace[] = R"({
  "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                   {"id": 1, "content": "<s>", "special": true}],
  "normalizer": {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "▁"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "decoder": {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
    "vocab": {"<unk>": 0, "<s>": 1, "▁": 2, "a": 3, "b": 4, "▁a": 5, "▁b": 6, "<0x7A>": 7,
              "ab": 8},
    "merges": ["▁ a", "▁ b", "a b"]}})";

std::unique_ptr<BpeTokenizer> Bpe(const char* json, const char* config = "") {
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> t = BpeTokenizer::FromJson(json, config, "t");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TEST(BpeTokenizerTest, ByteLevelMergesByRankAndTemplate) {
  auto t = Bpe(kByteLevel);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->vocab_size(), 19);
  EXPECT_EQ(t->Encode("hello world!", true), (Ids{17, 12, 18, 8}));
  EXPECT_EQ(t->Encode("hello world!", false), (Ids{12, 18, 8}));
  // The special token is cut out of the text first; 'z' is in no token and
  // there is no unknown token, so it is dropped.
  EXPECT_EQ(t->Encode("hello<|bos|>helloz", false), (Ids{12, 17, 12}));
  absl::StatusOr<std::string> text = t->Decode(Ids{17, 12, 18, 8});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hello world!");
  EXPECT_FALSE(t->Decode(Ids{19}).ok());
}

TEST(BpeTokenizerTest, MetaspaceByteFallbackAndConfigBos) {
  auto t = Bpe(kMetaspace, R"({"add_bos_token": true, "bos_token": "<s>"})");
  ASSERT_NE(t, nullptr);
  // "a b z" -> "▁a▁b▁z": ▁a, ▁b, ▁, then z by its byte.
  EXPECT_EQ(t->Encode("a b z", true), (Ids{1, 5, 6, 2, 7}));
  // "ab": "▁ a b" merges "▁ a" (rank 0) before "a b" (rank 2).
  EXPECT_EQ(t->Encode("ab", false), (Ids{5, 4}));
  absl::StatusOr<std::string> text = t->Decode(Ids{1, 5, 6, 2, 7});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "a b z");
  auto no_bos = Bpe(kMetaspace, R"({"add_bos_token": false})");
  ASSERT_NE(no_bos, nullptr);
  EXPECT_EQ(no_bos->Encode("a", true), (Ids{5}));
}

TEST(BpeTokenizerTest, BadFilesAreRefused) {
  for (const char* bad : {
           "{",
           R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 1000000000}, "merges": []}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
               "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("},
                                 "behavior": "Isolated"}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
               "normalizer": {"type": "BertNormalizer"}})",
       }) {
    EXPECT_FALSE(BpeTokenizer::FromJson(bad, "", "t").ok()) << bad;
  }
}

// Protobuf wire format, just enough for a ModelProto.
std::string Varint(uint64_t v) {
  std::string out;
  do {
    out += static_cast<char>((v & 0x7F) | (v >= 0x80 ? 0x80 : 0));
    v >>= 7;
  } while (v != 0);
  return out;
}
std::string Field(int field, const std::string& bytes) {
  return Varint(static_cast<uint64_t>(field) << 3 | 2) + Varint(bytes.size()) + bytes;
}
std::string VarintField(int field, uint64_t v) {
  return Varint(static_cast<uint64_t>(field) << 3) + Varint(v);
}
std::string Piece(const std::string& text, float score, int type) {
  std::string s = Field(1, text);
  s += Varint(2 << 3 | 5);
  s.append(reinterpret_cast<const char*>(&score), 4);
  return s + VarintField(3, type);
}
std::string Model(int model_type) {
  std::string m;
  const std::vector<std::tuple<std::string, float, int>> pieces = {
      {"<unk>", 0, 2}, {"<s>", 0, 3},   {"</s>", 0, 3},  {"▁", -1, 1},    {"a", -2, 1},
      {"b", -2, 1},    {"▁a", -0.5, 1}, {"ab", -0.1, 1}, {"<0x7A>", 0, 6}};
  for (const auto& [text, score, type] : pieces) m += Field(1, Piece(text, score, type));
  m += Field(2, VarintField(3, model_type));
  m += Field(3, Field(1, "identity") + VarintField(3, 1) + VarintField(4, 0));
  return m;
}

TEST(SentencePieceTokenizerTest, BpeByScoreWithByteFallback) {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> t =
      SentencePieceTokenizer::FromModel(Model(2), "", "tokenizer.model");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->vocab_size(), 9);
  // " ab": "▁ a b"; "ab" (-0.1) beats "▁a" (-0.5).
  EXPECT_EQ((*t)->Encode("ab", true), (Ids{1, 3, 7}));
  EXPECT_EQ((*t)->Encode("a z", false), (Ids{6, 3, 8}));
  absl::StatusOr<std::string> text = (*t)->Decode(Ids{1, 6, 3, 8});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "a z");
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> no_bos =
      SentencePieceTokenizer::FromModel(Model(2), R"({"add_bos_token": false})", "m");
  ASSERT_TRUE(no_bos.ok());
  EXPECT_EQ((*no_bos)->Encode("ab", true), (Ids{3, 7}));
}

// Issue 37, case 4: parts cut at SafeSplit encode like the whole, whitespace
// runs collapsed and the document's leading/trailing spaces dropped alike.
TEST(SentencePieceTokenizerTest, PartsEncodeLikeTheWhole) {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> t =
      SentencePieceTokenizer::FromModel(Model(2), "", "tokenizer.model");
  ASSERT_TRUE(t.ok()) << t.status();
  const std::string text = "  ab a  b ab z   a ";
  const size_t cut = (*t)->SafeSplit(text.substr(0, 12));
  ASSERT_GT(cut, 0u);
  Ids ids = (*t)->EncodePart(absl::string_view(text).substr(0, cut), true, false, true);
  const Ids rest = (*t)->EncodePart(absl::string_view(text).substr(cut), false, true, true);
  ids.insert(ids.end(), rest.begin(), rest.end());
  EXPECT_EQ(ids, (*t)->Encode(text, true));
}

TEST(SentencePieceTokenizerTest, UnigramAndGarbageAreRefused) {
  EXPECT_FALSE(SentencePieceTokenizer::FromModel(Model(1), "", "m").ok());
  EXPECT_FALSE(SentencePieceTokenizer::FromModel("\x0a\xff\xff", "", "m").ok());
  EXPECT_FALSE(SentencePieceTokenizer::FromModel(Model(2), "[", "m").ok());
}

}  // namespace
}  // namespace caldera::tokenizer
