#include "core/tokenizer/bpe_tokenizer.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <queue>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/bpe_tokenizer_impl.h"

namespace caldera::tokenizer {
namespace {

// Length of the UTF-8 character starting with byte `c` (1 for stray bytes).
size_t Utf8Length(unsigned char c) {
  if (c >= 0xF0 && c < 0xF8) return 4;
  if (c >= 0xE0) return c < 0xF0 ? 3 : 1;
  if (c >= 0xC0) return 2;
  return 1;
}

}  // namespace

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

}  // namespace caldera::tokenizer
