#include "core/model/bpe_tokenizer.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <queue>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace caldera::model {
namespace {

using Json = nlohmann::json;

constexpr char kMetaspace[] = "\xE2\x96\x81";  // U+2581 "▁"
// Token ids above this are refused (the largest vocabularies have ~256k; the
// id table is dense, so a file naming id 10^9 must not allocate for it).
constexpr int64_t kMaxTokenId = int64_t{1} << 22;
// GPT-2's pre-tokenizer pattern (ByteLevel with use_regex).
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The member `key` of object `j`, or nullptr.
const Json* Member(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  const auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string StringMember(const Json& j, const char* key, std::string fallback = "") {
  const Json* m = Member(j, key);
  return m != nullptr && m->is_string() ? m->get<std::string>() : fallback;
}

bool BoolMember(const Json& j, const char* key, bool fallback) {
  const Json* m = Member(j, key);
  return m != nullptr && m->is_boolean() ? m->get<bool>() : fallback;
}

// Length of the UTF-8 character starting with byte `c` (1 for stray bytes).
size_t Utf8Length(unsigned char c) {
  if (c >= 0xF0 && c < 0xF8) return 4;
  if (c >= 0xE0) return c < 0xF0 ? 3 : 1;
  if (c >= 0xC0) return 2;
  return 1;
}

std::string ToUtf8(const icu::UnicodeString& u) {
  std::string out;
  u.toUTF8String(out);
  return out;
}

icu::UnicodeString FromUtf8(absl::string_view s) {
  return icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
}

// GPT-2's byte -> printable character map (as UTF-8 strings).
std::array<std::string, 256> ByteToUnicode() {
  std::array<std::string, 256> out;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    out[b] = ToUtf8(icu::UnicodeString(static_cast<UChar32>(printable ? b : next++)));
  }
  return out;
}

// "<0xNN>" -> NN, else -1.
int BytePieceValue(absl::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = piece[i];
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// An Oniguruma pattern as ICU reads it: \s and \S mean White_Space there.
std::string IcuPattern(absl::string_view onig) {
  std::string out;
  for (size_t i = 0; i < onig.size(); ++i) {
    if (onig[i] == '\\' && i + 1 < onig.size()) {
      const char c = onig[++i];
      if (c == 's') {
        out += "\\p{White_Space}";
      } else if (c == 'S') {
        out += "\\P{White_Space}";
      } else {
        out += '\\';
        out += c;
      }
    } else {
      out += onig[i];
    }
  }
  return out;
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

absl::StatusOr<std::unique_ptr<icu::RegexPattern>> Compile(absl::string_view pattern, bool literal,
                                                           absl::string_view where) {
  UErrorCode status = U_ZERO_ERROR;
  UParseError perr;
  std::unique_ptr<icu::RegexPattern> p(
      icu::RegexPattern::compile(FromUtf8(literal ? std::string(pattern) : IcuPattern(pattern)),
                                 literal ? UREGEX_LITERAL : 0, perr, status));
  if (U_FAILURE(status) || p == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": pre-tokenizer pattern ",
                                                   Json(std::string(pattern)).dump(),
                                                   " does not compile: ", u_errorName(status)));
  }
  return p;
}

}  // namespace

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

absl::Status BpeTokenizer::Impl::ParseModel(const Json& model, absl::string_view where) {
  if (StringMember(model, "type") != "BPE") {
    return absl::InvalidArgumentError(absl::StrCat(where, ": model type ",
                                                   Json(StringMember(model, "type", "?")).dump(),
                                                   " is not supported (only BPE)"));
  }
  if (!StringMember(model, "continuing_subword_prefix").empty() ||
      !StringMember(model, "end_of_word_suffix").empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": BPE with continuing_subword_prefix / end_of_word_suffix is not supported"));
  }
  const Json* v = Member(model, "vocab");
  const Json* m = Member(model, "merges");
  if (v == nullptr || !v->is_object() || v->empty() || m == nullptr || !m->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": model needs a \"vocab\" object and a \"merges\" array"));
  }
  for (const auto& [token, id] : v->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxTokenId) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": vocab entry ", Json(token).dump(), " has no valid id"));
    }
    const int32_t i = id.get<int32_t>();
    if (static_cast<size_t>(i) >= token_of.size()) token_of.resize(i + 1);
    token_of[i] = token;
    vocab[token] = i;
  }
  for (size_t r = 0; r < m->size(); ++r) {
    const Json& e = (*m)[r];
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": merge ", r, " is not \"a b\""));
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": merge ", r, " is neither \"a b\" nor [\"a\", \"b\"]"));
    }
    const int32_t ia = IdOf(a), ib = IdOf(b), im = IdOf(a + b);
    if (ia < 0 || ib < 0 || im < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": merge ", r, " (",
                                                     Json(a + " " + b).dump(),
                                                     ") names a token outside the vocabulary"));
    }
    const uint64_t key = (static_cast<uint64_t>(ia) << 32) | static_cast<uint32_t>(ib);
    merges.emplace(key, std::make_pair(static_cast<int32_t>(r), im));  // first rank wins
  }
  ignore_merges = BoolMember(model, "ignore_merges", false);
  byte_fallback = BoolMember(model, "byte_fallback", false);
  fuse_unk = BoolMember(model, "fuse_unk", false);
  const std::string unk = StringMember(model, "unk_token");
  if (!unk.empty()) unk_id = IdOf(unk);
  return absl::OkStatus();
}

absl::Status BpeTokenizer::Impl::ParseNormalizer(const Json& n, absl::string_view where) {
  if (n.is_null()) return absl::OkStatus();
  const std::string type = StringMember(n, "type");
  if (type == "Sequence") {
    const Json* list = Member(n, "normalizers");
    if (list == nullptr || !list->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": normalizer Sequence has no list"));
    }
    for (const Json& e : *list) {
      if (absl::Status s = ParseNormalizer(e, where); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (type == "NFC") {
    normalizer.push_back({NormStep::kNfc, "", ""});
  } else if (type == "NFKC") {
    normalizer.push_back({NormStep::kNfkc, "", ""});
  } else if (type == "Lowercase") {
    normalizer.push_back({NormStep::kLowercase, "", ""});
  } else if (type == "Prepend") {
    normalizer.push_back({NormStep::kPrepend, StringMember(n, "prepend"), ""});
  } else if (type == "Replace") {
    const Json* pattern = Member(n, "pattern");
    const Json* literal = pattern != nullptr ? Member(*pattern, "String") : nullptr;
    if (literal == nullptr || !literal->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": only Replace normalizers with a String pattern are supported"));
    }
    normalizer.push_back(
        {NormStep::kReplace, literal->get<std::string>(), StringMember(n, "content")});
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": normalizer ", Json(type.empty() ? n.dump() : type).dump(), " is not supported"));
  }
  return absl::OkStatus();
}

absl::Status BpeTokenizer::Impl::ParsePreTokenizer(const Json& p, absl::string_view where) {
  if (p.is_null()) return absl::OkStatus();
  const std::string type = StringMember(p, "type");
  if (type == "Sequence") {
    const Json* list = Member(p, "pretokenizers");
    if (list == nullptr || !list->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": pre-tokenizer Sequence has no list"));
    }
    for (const Json& e : *list) {
      if (absl::Status s = ParsePreTokenizer(e, where); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  PreStep step;
  if (type == "Split") {
    step.kind = PreStep::kSplit;
    const Json* pattern = Member(p, "pattern");
    const Json* regex = pattern != nullptr ? Member(*pattern, "Regex") : nullptr;
    const Json* literal = pattern != nullptr ? Member(*pattern, "String") : nullptr;
    const std::string behavior = StringMember(p, "behavior");
    if (BoolMember(p, "invert", false) || (behavior != "Isolated" && behavior != "Removed")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": Split pre-tokenizers are supported with behavior Isolated or Removed, "
                       "not inverted"));
    }
    step.removed = behavior == "Removed";
    const Json* text = regex != nullptr && regex->is_string()       ? regex
                       : literal != nullptr && literal->is_string() ? literal
                                                                    : nullptr;
    if (text == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": Split pre-tokenizer without a Regex or String pattern"));
    }
    absl::StatusOr<std::unique_ptr<icu::RegexPattern>> re =
        Compile(text->get<std::string>(), text == literal, where);
    if (!re.ok()) return re.status();
    step.regex = *std::move(re);
  } else if (type == "ByteLevel") {
    step.kind = PreStep::kByteLevel;
    step.add_prefix_space = BoolMember(p, "add_prefix_space", false);
    if (BoolMember(p, "use_regex", true)) {
      absl::StatusOr<std::unique_ptr<icu::RegexPattern>> re = Compile(kGpt2Pattern, false, where);
      if (!re.ok()) return re.status();
      step.regex = *std::move(re);
    }
    byte_level = true;
  } else if (type == "Metaspace") {
    step.kind = PreStep::kMetaspace;
    step.replacement = StringMember(p, "replacement", kMetaspace);
    step.prepend_scheme = StringMember(
        p, "prepend_scheme", BoolMember(p, "add_prefix_space", true) ? "always" : "never");
    step.split = BoolMember(p, "split", true);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(where, ": pre-tokenizer ",
                                                   Json(type.empty() ? p.dump() : type).dump(),
                                                   " is not supported"));
  }
  pre_tokenizer.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status BpeTokenizer::Impl::ParsePostProcessor(const Json& p, absl::string_view where) {
  if (p.is_null()) return absl::OkStatus();
  const std::string type = StringMember(p, "type");
  if (type == "Sequence") {
    const Json* list = Member(p, "processors");
    if (list == nullptr || !list->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": post-processor Sequence has no list"));
    }
    for (const Json& e : *list) {
      if (absl::Status s = ParsePostProcessor(e, where); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") return absl::OkStatus();  // ByteLevel etc.: ids unchanged
  const Json* single = Member(p, "single");
  const Json* specials = Member(p, "special_tokens");
  if (single == nullptr || !single->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": TemplateProcessing without a \"single\" template"));
  }
  prefix.clear();
  suffix.clear();
  bool after = false;
  for (const Json& piece : *single) {
    if (Member(piece, "Sequence") != nullptr) {
      after = true;
      continue;
    }
    const Json* sp = Member(piece, "SpecialToken");
    const std::string name = sp != nullptr ? StringMember(*sp, "id") : "";
    const Json* entry = specials != nullptr ? Member(*specials, name.c_str()) : nullptr;
    const Json* ids = entry != nullptr ? Member(*entry, "ids") : nullptr;
    if (name.empty() || ids == nullptr || !ids->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": TemplateProcessing piece ",
                                                     piece.dump(), " names no special token ids"));
    }
    for (const Json& id : *ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() >= static_cast<int64_t>(token_of.size())) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": special token ", Json(name).dump(),
                                                       " has an id outside the "
                                                       "vocabulary"));
      }
      (after ? suffix : prefix).push_back(id.get<int32_t>());
    }
  }
  return absl::OkStatus();
}

std::string BpeTokenizer::Impl::Normalize(std::string s) const {
  for (const NormStep& n : normalizer) {
    switch (n.kind) {
      case NormStep::kNfc:
      case NormStep::kNfkc: {
        UErrorCode status = U_ZERO_ERROR;
        const icu::Normalizer2* norm = n.kind == NormStep::kNfc
                                           ? icu::Normalizer2::getNFCInstance(status)
                                           : icu::Normalizer2::getNFKCInstance(status);
        if (U_FAILURE(status)) break;
        icu::UnicodeString out = norm->normalize(FromUtf8(s), status);
        if (U_SUCCESS(status)) s = ToUtf8(out);
        break;
      }
      case NormStep::kLowercase:
        s = ToUtf8(FromUtf8(s).toLower(icu::Locale::getRoot()));
        break;
      case NormStep::kPrepend:
        if (!s.empty()) s = n.a + s;
        break;
      case NormStep::kReplace: {
        if (n.a.empty()) break;
        std::string out;
        for (size_t at = 0;;) {
          const size_t hit = s.find(n.a, at);
          out.append(s, at, hit == std::string::npos ? std::string::npos : hit - at);
          if (hit == std::string::npos) break;
          out += n.b;
          at = hit + n.a.size();
        }
        s = std::move(out);
        break;
      }
    }
  }
  return s;
}

std::vector<std::string> BpeTokenizer::Impl::PreTokenize(std::string s, bool first_segment) const {
  std::vector<std::string> pieces;
  if (!s.empty()) pieces.push_back(std::move(s));
  for (const PreStep& step : pre_tokenizer) {
    std::vector<std::string> next;
    for (size_t pi = 0; pi < pieces.size(); ++pi) {
      std::string piece = std::move(pieces[pi]);
      if (step.kind == PreStep::kByteLevel && step.add_prefix_space && !piece.empty() &&
          piece[0] != ' ') {
        piece.insert(piece.begin(), ' ');
      }
      if (step.kind == PreStep::kMetaspace) {
        std::string out;
        for (const char c : piece) {
          if (c == ' ') {
            out += step.replacement;
          } else {
            out += c;
          }
        }
        const bool prepend = step.prepend_scheme == "always" ||
                             (step.prepend_scheme == "first" && first_segment && pi == 0);
        if (prepend && out.compare(0, step.replacement.size(), step.replacement) != 0) {
          out = step.replacement + out;
        }
        if (!step.split) {
          next.push_back(std::move(out));
          continue;
        }
        // Each piece starts at a replacement character (MergedWithNext).
        size_t begin = 0;
        for (size_t at = out.find(step.replacement, 1); at != std::string::npos;
             at = out.find(step.replacement, at + 1)) {
          next.push_back(out.substr(begin, at - begin));
          begin = at;
        }
        next.push_back(out.substr(begin));
        continue;
      }
      std::vector<std::string> split;
      if (step.regex != nullptr) {
        const icu::UnicodeString u = FromUtf8(piece);
        UErrorCode status = U_ZERO_ERROR;
        std::unique_ptr<icu::RegexMatcher> m(step.regex->matcher(u, status));
        int32_t last = 0;
        while (U_SUCCESS(status) && m->find(status)) {
          const int32_t start = m->start(status), end = m->end(status);
          if (U_FAILURE(status)) break;
          if (start > last) split.push_back(ToUtf8(u.tempSubString(last, start - last)));
          if (end > start && !step.removed) {
            split.push_back(ToUtf8(u.tempSubString(start, end - start)));
          }
          last = std::max(last, end);
        }
        if (last < u.length()) split.push_back(ToUtf8(u.tempSubString(last)));
      } else {
        split.push_back(std::move(piece));
      }
      for (std::string& p : split) {
        if (p.empty()) continue;
        if (step.kind == PreStep::kByteLevel) {
          std::string mapped;
          for (const char c : p) mapped += byte_char[static_cast<unsigned char>(c)];
          next.push_back(std::move(mapped));
        } else {
          next.push_back(std::move(p));
        }
      }
    }
    pieces = std::move(next);
  }
  return pieces;
}

void BpeTokenizer::Impl::EncodeWord(const std::string& word, std::vector<int32_t>* ids) const {
  if (ignore_merges) {
    if (const int32_t id = IdOf(word); id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  std::vector<int32_t> sym;
  for (size_t at = 0; at < word.size();) {
    const size_t len = std::min(Utf8Length(static_cast<unsigned char>(word[at])), word.size() - at);
    const std::string ch = word.substr(at, len);
    at += len;
    if (const int32_t id = IdOf(ch); id >= 0) {
      sym.push_back(id);
      continue;
    }
    if (byte_fallback && std::all_of(ch.begin(), ch.end(), [&](char c) {
          return byte_token[static_cast<unsigned char>(c)] >= 0;
        })) {
      for (const char c : ch) sym.push_back(byte_token[static_cast<unsigned char>(c)]);
      continue;
    }
    if (unk_id < 0) continue;
    if (fuse_unk && !sym.empty() && sym.back() == unk_id) continue;
    sym.push_back(unk_id);
  }
  // Merge by rank in a linked list; heap entries are checked when popped.
  const int n = static_cast<int>(sym.size());
  std::vector<int> next(n), prev(n);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  std::vector<bool> dead(n, false);
  struct Candidate {
    int32_t rank;
    int left, right;
    int32_t left_id, right_id;
  };
  auto worse = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const auto it =
        merges.find((static_cast<uint64_t>(sym[l]) << 32) | static_cast<uint32_t>(sym[r]));
    if (it != merges.end()) heap.push({it->second.first, l, r, sym[l], sym[r]});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (dead[c.left] || dead[c.right] || next[c.left] != c.right || sym[c.left] != c.left_id ||
        sym[c.right] != c.right_id) {
      continue;
    }
    sym[c.left] =
        merges.at((static_cast<uint64_t>(c.left_id) << 32) | static_cast<uint32_t>(c.right_id))
            .second;
    dead[c.right] = true;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    consider(prev[c.left], c.left);
    consider(c.left, next[c.left]);
  }
  for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i]) ids->push_back(sym[i]);
}

BpeTokenizer::BpeTokenizer(std::unique_ptr<const Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromJson(
    absl::string_view tokenizer_json, absl::string_view config_json, absl::string_view where) {
  const Json j = Json::parse(tokenizer_json.begin(), tokenizer_json.end(), nullptr, false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
  }
  auto impl = std::make_unique<Impl>();
  impl->byte_token.fill(-1);
  const Json* model = Member(j, "model");
  if (model == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, ": no \"model\""));
  if (absl::Status s = impl->ParseModel(*model, where); !s.ok()) return s;

  // Added tokens take their ids (they may lie beyond the model's vocabulary).
  std::vector<std::pair<std::string, int32_t>> added;
  std::vector<int32_t> special_ids;
  if (const Json* list = Member(j, "added_tokens"); list != nullptr && list->is_array()) {
    for (const Json& t : *list) {
      const Json* id = Member(t, "id");
      const std::string content = StringMember(t, "content");
      if (id == nullptr || !id->is_number_integer() || id->get<int64_t>() < 0 ||
          id->get<int64_t>() >= kMaxTokenId || content.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": added token ", t.dump(), " lacks an id or content"));
      }
      const int32_t i = id->get<int32_t>();
      if (static_cast<size_t>(i) >= impl->token_of.size()) impl->token_of.resize(i + 1);
      impl->token_of[i] = content;
      impl->vocab.emplace(content, i);
      added.emplace_back(content, i);
      if (BoolMember(t, "special", false)) special_ids.push_back(i);
    }
  }
  std::sort(added.begin(), added.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (auto& a : added) impl->added[static_cast<unsigned char>(a.first[0])].push_back(a);
  impl->special.assign(impl->token_of.size(), false);
  for (const int32_t i : special_ids) impl->special[i] = true;
  impl->byte_of.assign(impl->token_of.size(), -1);
  for (size_t id = 0; id < impl->token_of.size(); ++id) {
    const int b = BytePieceValue(impl->token_of[id]);
    if (b < 0) continue;
    impl->byte_of[id] = b;
    impl->byte_token[b] = static_cast<int32_t>(id);
  }

  if (const Json* n = Member(j, "normalizer"); n != nullptr) {
    if (absl::Status s = impl->ParseNormalizer(*n, where); !s.ok()) return s;
  }
  if (const Json* p = Member(j, "pre_tokenizer"); p != nullptr) {
    if (absl::Status s = impl->ParsePreTokenizer(*p, where); !s.ok()) return s;
  }
  if (const Json* p = Member(j, "post_processor"); p != nullptr) {
    if (absl::Status s = impl->ParsePostProcessor(*p, where); !s.ok()) return s;
  }
  if (const Json* d = Member(j, "decoder"); d != nullptr) {
    const std::string dump = d->dump();
    impl->strip_leading_space = dump.find("\"Strip\"") != std::string::npos ||
                                dump.find("\"Metaspace\"") != std::string::npos;
  }
  impl->byte_char = ByteToUnicode();
  for (int b = 0; b < 256; ++b) impl->char_byte[impl->byte_char[b]] = static_cast<uint8_t>(b);

  // tokenizer_config.json's add_bos_token / add_eos_token override the template.
  if (!config_json.empty()) {
    const Json c = Json::parse(config_json.begin(), config_json.end(), nullptr, false);
    if (!c.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": tokenizer_config.json is not a JSON object"));
    }
    auto token_id = [&](const char* key) -> int32_t {
      const Json* t = Member(c, key);
      std::string name = t == nullptr     ? ""
                         : t->is_string() ? t->get<std::string>()
                                          : StringMember(*t, "content");
      return name.empty() ? -1 : impl->IdOf(name);
    };
    for (const auto& [flag, key, out] : {std::tuple{"add_bos_token", "bos_token", &impl->prefix},
                                         std::tuple{"add_eos_token", "eos_token", &impl->suffix}}) {
      const Json* add = Member(c, flag);
      if (add == nullptr || !add->is_boolean()) continue;
      out->clear();
      if (!add->get<bool>()) continue;
      const int32_t id = token_id(key);
      if (id < 0) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": tokenizer_config.json sets ", flag,
                                                       " but its ", key, " is not a token"));
      }
      out->push_back(id);
    }
  }
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

int64_t BpeTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->token_of.size()); }
const std::vector<int32_t>& BpeTokenizer::prefix_ids() const { return impl_->prefix; }
const std::vector<int32_t>& BpeTokenizer::suffix_ids() const { return impl_->suffix; }

std::vector<int32_t> BpeTokenizer::Encode(absl::string_view text, bool add_special) const {
  const Impl& im = *impl_;
  std::vector<int32_t> ids;
  if (add_special) ids = im.prefix;
  bool first_segment = true;
  auto encode_segment = [&](absl::string_view seg) {
    if (seg.empty()) return;
    for (const std::string& word : im.PreTokenize(im.Normalize(std::string(seg)), first_segment)) {
      im.EncodeWord(word, &ids);
    }
    first_segment = false;
  };
  size_t begin = 0;
  for (size_t at = 0; at < text.size();) {
    const auto& candidates = im.added[static_cast<unsigned char>(text[at])];
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& c : candidates) {
      if (text.substr(at, c.first.size()) == c.first) {
        hit = &c;
        break;
      }
    }
    if (hit == nullptr) {
      ++at;
      continue;
    }
    encode_segment(text.substr(begin, at - begin));
    ids.push_back(hit->second);
    first_segment = false;
    at += hit->first.size();
    begin = at;
  }
  encode_segment(text.substr(begin));
  if (add_special) ids.insert(ids.end(), im.suffix.begin(), im.suffix.end());
  return ids;
}

absl::StatusOr<std::string> BpeTokenizer::Decode(std::span<const int32_t> ids) const {
  const Impl& im = *impl_;
  std::string joined;
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the vocabulary of ", vocab_size()));
    }
    if (im.special[id]) continue;
    if (!im.byte_level && im.byte_of[id] >= 0) {
      joined.push_back(static_cast<char>(im.byte_of[id]));
      continue;
    }
    joined += im.token_of[id];
  }
  std::string out;
  if (im.byte_level) {
    for (size_t at = 0; at < joined.size();) {
      const size_t len =
          std::min(Utf8Length(static_cast<unsigned char>(joined[at])), joined.size() - at);
      const auto it = im.char_byte.find(joined.substr(at, len));
      if (it != im.char_byte.end()) {
        out.push_back(static_cast<char>(it->second));
      } else {
        out.append(joined, at, len);
      }
      at += len;
    }
    return out;
  }
  for (size_t at = 0;;) {
    const size_t hit = joined.find(kMetaspace, at);
    out.append(joined, at, hit == std::string::npos ? std::string::npos : hit - at);
    if (hit == std::string::npos) break;
    out += ' ';
    at = hit + 3;
  }
  if (im.strip_leading_space && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace caldera::model
