#include "core/tokenizer/vocab_tokenizer.h"

#include <algorithm>
#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace caldera::tokenizer {
namespace {

// "<0xNN>" -> NN, else -1.
int BytePieceValue(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = piece[i];
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// Length of the UTF-8 character starting with byte `c` (1 for stray bytes).
size_t Utf8Length(unsigned char c) {
  if (c >= 0xF0 && c < 0xF8) return 4;
  if (c >= 0xE0) return c < 0xF0 ? 3 : 1;
  if (c >= 0xC0) return 2;
  return 1;
}

}  // namespace

absl::StatusOr<VocabTokenizer> VocabTokenizer::FromJson(absl::string_view json,
                                                        absl::string_view where, int32_t bos_id,
                                                        int32_t eos_id) {
  nlohmann::json j = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (!j.is_array() || j.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": a tokenizer vocabulary is a non-empty JSON array of {\"piece\", \"score\"}"));
  }
  std::vector<std::string> pieces;
  std::vector<float> scores;
  for (size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& e = j[i];
    const auto piece = e.is_object() ? e.find("piece") : e.end();
    const auto score = e.is_object() ? e.find("score") : e.end();
    if (!e.is_object() || piece == e.end() || !piece->is_string() || score == e.end() ||
        !score->is_number()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": entry ", i, " is not {\"piece\": string, \"score\": number}"));
    }
    pieces.push_back(piece->get<std::string>());
    scores.push_back(score->get<float>());
  }
  return FromPieces(std::move(pieces), std::move(scores), where, bos_id, eos_id);
}

absl::StatusOr<VocabTokenizer> VocabTokenizer::FromPieces(std::vector<std::string> pieces,
                                                          std::vector<float> scores,
                                                          absl::string_view where, int32_t bos_id,
                                                          int32_t eos_id) {
  if (pieces.empty() || pieces.size() != scores.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": a tokenizer vocabulary needs one score per piece, at least one"));
  }
  VocabTokenizer t;
  t.cuttable_ = true;  // until a piece says otherwise
  t.byte_piece_.fill(-1);
  t.pieces_ = std::move(pieces);
  t.scores_ = std::move(scores);
  const int32_t n = static_cast<int32_t>(t.pieces_.size());
  for (const int32_t id : {bos_id, eos_id}) {
    if (id < -1 || id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": BOS/EOS id ", id, " is outside the vocabulary of ", n));
    }
  }
  t.bos_id_ = bos_id;
  t.eos_id_ = eos_id;
  t.byte_of_.assign(n, -1);
  for (int32_t id = 0; id < n; ++id) {
    const std::string& p = t.pieces_[id];
    const int b = BytePieceValue(p);
    if (b >= 0) {
      t.byte_of_[id] = b;
      t.byte_piece_[b] = id;
      continue;
    }
    if (p == "<unk>") {
      t.unk_id_ = id;
      continue;
    }
    if (id == bos_id || id == eos_id || p.empty()) continue;
    for (size_t i = 1; i < p.size(); ++i) {
      if (p[i] == ' ' && p[i - 1] != ' ') t.cuttable_ = false;
    }
    if (!t.id_of_.emplace(p, id).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": piece ",
          nlohmann::json(p).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
          " appears twice"));
    }
  }
  return t;
}

std::vector<int32_t> VocabTokenizer::Encode(absl::string_view text, bool add_bos) const {
  return EncodePart(text, /*first=*/true, /*last=*/true, add_bos);
}

size_t VocabTokenizer::SafeSplit(absl::string_view text) const {
  if (!cuttable_) return 0;
  for (size_t i = text.size() >= 2 ? text.size() - 2 : 0; i >= 1; --i) {
    if (text[i] == ' ' && text[i - 1] != ' ' && text[i + 1] != ' ') return i;
  }
  return 0;
}

std::vector<int32_t> VocabTokenizer::EncodePart(absl::string_view text, bool first, bool last,
                                                bool add_bos) const {
  // Symbols in a linked list; merged ones are dead.
  struct Symbol {
    std::string text;
    int32_t id;
    bool mergeable;
    int prev, next;
  };
  std::vector<Symbol> sym;
  auto push = [&](std::string s, int32_t id, bool mergeable) {
    const int i = static_cast<int>(sym.size());
    sym.push_back({std::move(s), id, mergeable, i - 1, i + 1});
  };
  if (first && !text.empty()) {  // the dummy prefix belongs to the document's start
    const auto space = id_of_.find(" ");
    if (space != id_of_.end()) push(" ", space->second, true);
  }
  for (size_t at = 0; at < text.size();) {
    const size_t len = std::min(Utf8Length(static_cast<unsigned char>(text[at])), text.size() - at);
    std::string ch(text.substr(at, len));
    at += len;
    const auto it = id_of_.find(ch);
    if (it != id_of_.end()) {
      push(std::move(ch), it->second, true);
      continue;
    }
    for (const char c : ch) {
      const int32_t b = byte_piece_[static_cast<unsigned char>(c)];
      push("", b >= 0 ? b : unk_id_, false);
    }
  }
  if (!sym.empty()) sym.back().next = -1;

  // Candidate merges: highest score first, then leftmost. Entries are
  // checked when popped (both symbols alive, adjacent, unchanged lengths).
  struct Candidate {
    float score;
    int left, right;
    size_t size;  // combined text length when pushed
  };
  auto worse = [](const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0 || !sym[left].mergeable || !sym[right].mergeable) return;
    const auto it = id_of_.find(sym[left].text + sym[right].text);
    if (it == id_of_.end()) return;
    heap.push({scores_[it->second], left, right, sym[left].text.size() + sym[right].text.size()});
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) consider(i, i + 1);
  std::vector<bool> dead(sym.size(), false);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (dead[c.left] || dead[c.right] || sym[c.left].next != c.right ||
        sym[c.left].text.size() + sym[c.right].text.size() != c.size) {
      continue;
    }
    Symbol& l = sym[c.left];
    l.text += sym[c.right].text;
    l.id = id_of_.at(l.text);
    dead[c.right] = true;
    l.next = sym[c.right].next;
    if (l.next >= 0) sym[l.next].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  std::vector<int32_t> ids;
  if (first && add_bos && bos_id_ >= 0) ids.push_back(bos_id_);
  for (int i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
    if (sym[i].id >= 0) ids.push_back(sym[i].id);
  }
  return ids;
}

absl::StatusOr<std::string> VocabTokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  bool leading = true;  // the dummy space of the text's first piece
  for (const int32_t id : ids) {
    if (id < 0 || id >= size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the vocabulary of ", size()));
    }
    if (id == bos_id_) {
      leading = true;
      continue;
    }
    if (id == eos_id_) continue;
    if (byte_of_[id] >= 0) {
      out.push_back(static_cast<char>(byte_of_[id]));
    } else {
      absl::string_view p = pieces_[id];
      if (leading && !p.empty() && p[0] == ' ') p.remove_prefix(1);
      out.append(p.data(), p.size());
    }
    leading = false;
  }
  return out;
}

}  // namespace caldera::tokenizer
