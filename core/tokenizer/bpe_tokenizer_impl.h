// Internal to caldera_tokenizers (not for other code): BpeTokenizer::Impl, the
// state of a BpeTokenizer, and the helpers that both of its files use:
// bpe_tokenizer_config.cc (BpeTokenizer::FromJson: tokenizer.json and
// tokenizer_config.json parsed into an Impl) and bpe_tokenizer.cc (normalize,
// pre-tokenize, merge; Encode and Decode).
#ifndef CALDERA_CORE_TOKENIZER_BPE_TOKENIZER_IMPL_H_
#define CALDERA_CORE_TOKENIZER_BPE_TOKENIZER_IMPL_H_

#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "nlohmann/json.hpp"

namespace caldera::tokenizer {

using Json = nlohmann::json;

inline constexpr char kMetaspace[] = "\xE2\x96\x81";  // U+2581 "▁"

inline std::string ToUtf8(const icu::UnicodeString& u) {
  std::string out;
  u.toUTF8String(out);
  return out;
}

inline icu::UnicodeString FromUtf8(absl::string_view s) {
  return icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
}

struct NormStep {
  enum Kind { kNfc, kNfkc, kLowercase, kPrepend, kReplace } kind;
  std::string a, b;  // Prepend: a; Replace: a -> b
};

struct PreStep {
  enum Kind { kSplit, kByteLevel, kMetaspace } kind;
  std::unique_ptr<icu::RegexPattern> regex;  // kSplit, kByteLevel with use_regex
  bool removed = false;                      // kSplit: behavior Removed (else Isolated)
  bool add_prefix_space = false;             // kByteLevel
  std::string replacement;                   // kMetaspace
  std::string prepend_scheme;                // kMetaspace: always | first | never
  bool split = true;                         // kMetaspace
};

struct BpeTokenizer::Impl {
  std::vector<std::string> token_of;  // id -> token text ("" for unused ids)
  std::unordered_map<std::string, int32_t> vocab;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  bool ignore_merges = false, byte_fallback = false, fuse_unk = false;
  int32_t unk_id = -1;
  std::array<int32_t, 256> byte_token{};  // id of "<0xNN>", or -1
  std::vector<int> byte_of;               // id -> byte of a "<0xNN>" token, or -1

  std::vector<NormStep> normalizer;
  std::vector<PreStep> pre_tokenizer;
  bool byte_level = false;  // a ByteLevel pre-tokenizer maps bytes to characters
  std::array<std::string, 256> byte_char;
  std::unordered_map<std::string, uint8_t> char_byte;

  // Added tokens, by their first byte, longest first.
  std::array<std::vector<std::pair<std::string, int32_t>>, 256> added;
  std::vector<bool> special;  // id -> a special added token (dropped by Decode)

  std::vector<int32_t> prefix, suffix;
  bool strip_leading_space = false;  // the decoder strips the "▁" Metaspace prepended

  absl::Status ParseModel(const Json& model, absl::string_view where);
  absl::Status ParseNormalizer(const Json& n, absl::string_view where);
  absl::Status ParsePreTokenizer(const Json& p, absl::string_view where);
  absl::Status ParsePostProcessor(const Json& p, absl::string_view where);
  int32_t IdOf(const std::string& token) const {
    const auto it = vocab.find(token);
    return it == vocab.end() ? -1 : it->second;
  }

  std::string Normalize(std::string s) const;
  std::vector<std::string> PreTokenize(std::string s, bool first_segment) const;
  void EncodeWord(const std::string& word, std::vector<int32_t>* ids) const;
};

}  // namespace caldera::tokenizer

#endif  // CALDERA_CORE_TOKENIZER_BPE_TOKENIZER_IMPL_H_
