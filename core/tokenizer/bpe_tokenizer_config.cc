#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/bpe_tokenizer_impl.h"
#include "nlohmann/json.hpp"

namespace caldera::tokenizer {
namespace {

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

}  // namespace caldera::tokenizer
