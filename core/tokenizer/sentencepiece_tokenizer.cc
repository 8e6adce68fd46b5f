#include "core/tokenizer/sentencepiece_tokenizer.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace caldera::tokenizer {
namespace {

constexpr char kSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// A reader of protobuf wire format (only what ModelProto needs).
class Wire {
 public:
  explicit Wire(absl::string_view data) : data_(data) {}
  bool done() const { return at_ >= data_.size(); }
  bool ok() const { return ok_; }

  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_ >= data_.size()) return ok_ = false;
      const uint8_t b = static_cast<uint8_t>(data_[at_++]);
      *v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return ok_ = false;
  }
  // Next field: number and wire type; false at the end or on bad data.
  bool Next(uint32_t* field, uint32_t* type) {
    uint64_t tag = 0;
    if (done() || !Varint(&tag)) return false;
    *field = static_cast<uint32_t>(tag >> 3);
    *type = static_cast<uint32_t>(tag & 7);
    return true;
  }
  bool Bytes(absl::string_view* out) {
    uint64_t n = 0;
    if (!Varint(&n) || n > data_.size() - at_) return ok_ = false;
    *out = data_.substr(at_, n);
    at_ += n;
    return true;
  }
  bool Fixed32(uint32_t* v) {
    if (data_.size() - at_ < 4) return ok_ = false;
    std::memcpy(v, data_.data() + at_, 4);  // little-endian hosts
    at_ += 4;
    return true;
  }
  bool Skip(uint32_t type) {
    uint64_t v = 0;
    absl::string_view s;
    uint32_t f = 0;
    switch (type) {
      case 0:
        return Varint(&v);
      case 1:
        if (data_.size() - at_ < 8) return ok_ = false;
        at_ += 8;
        return true;
      case 2:
        return Bytes(&s);
      case 5:
        return Fixed32(&f);
      default:
        return ok_ = false;
    }
  }

 private:
  absl::string_view data_;
  size_t at_ = 0;
  bool ok_ = true;
};

struct Piece {
  std::string text;
  float score = 0;
  uint64_t type = 1;  // NORMAL=1 UNKNOWN=2 CONTROL=3 USER_DEFINED=4 UNUSED=5 BYTE=6
};

struct ModelProto {
  std::vector<Piece> pieces;
  uint64_t model_type = 1;  // UNIGRAM=1 BPE=2 WORD=3 CHAR=4
  std::string bos_piece = "<s>", eos_piece = "</s>";
  std::string normalizer = "nmt_nfkc";
  bool has_charsmap = false, add_dummy_prefix = true, remove_extra_whitespaces = true;
};

bool ParsePiece(absl::string_view data, Piece* p) {
  Wire w(data);
  uint32_t field = 0, type = 0;
  while (w.Next(&field, &type)) {
    absl::string_view s;
    uint64_t v = 0;
    uint32_t f = 0;
    if (field == 1 && type == 2 && w.Bytes(&s)) {
      p->text = std::string(s);
    } else if (field == 2 && type == 5 && w.Fixed32(&f)) {
      std::memcpy(&p->score, &f, 4);
    } else if (field == 3 && type == 0 && w.Varint(&v)) {
      p->type = v;
    } else if (!(field == 1 || field == 2 || field == 3) && w.Skip(type)) {
    } else {
      return false;
    }
  }
  return w.ok();
}

bool ParseTrainer(absl::string_view data, ModelProto* m) {
  Wire w(data);
  uint32_t field = 0, type = 0;
  while (w.Next(&field, &type)) {
    absl::string_view s;
    uint64_t v = 0;
    if (field == 3 && type == 0) {
      if (!w.Varint(&v)) return false;
      m->model_type = v;
    } else if ((field == 46 || field == 47) && type == 2) {
      if (!w.Bytes(&s)) return false;
      (field == 46 ? m->bos_piece : m->eos_piece) = std::string(s);
    } else if (!w.Skip(type)) {
      return false;
    }
  }
  return w.ok();
}

bool ParseNormalizer(absl::string_view data, ModelProto* m) {
  Wire w(data);
  uint32_t field = 0, type = 0;
  while (w.Next(&field, &type)) {
    absl::string_view s;
    uint64_t v = 0;
    if (field == 1 && type == 2) {
      if (!w.Bytes(&s)) return false;
      m->normalizer = std::string(s);
    } else if (field == 2 && type == 2) {
      if (!w.Bytes(&s)) return false;
      m->has_charsmap = !s.empty();
    } else if ((field == 3 || field == 4) && type == 0) {
      if (!w.Varint(&v)) return false;
      (field == 3 ? m->add_dummy_prefix : m->remove_extra_whitespaces) = v != 0;
    } else if (!w.Skip(type)) {
      return false;
    }
  }
  return w.ok();
}

bool ParseModel(absl::string_view data, ModelProto* m) {
  Wire w(data);
  uint32_t field = 0, type = 0;
  while (w.Next(&field, &type)) {
    absl::string_view s;
    if (type == 2 && field >= 1 && field <= 3) {
      if (!w.Bytes(&s)) return false;
      bool ok = true;
      if (field == 1) {
        m->pieces.emplace_back();
        ok = ParsePiece(s, &m->pieces.back());
      } else if (field == 2) {
        ok = ParseTrainer(s, m);
      } else {
        ok = ParseNormalizer(s, m);
      }
      if (!ok) return false;
    } else if (!w.Skip(type)) {
      return false;
    }
  }
  return w.ok() && w.done();
}

std::string ReplaceAll(absl::string_view s, absl::string_view from, absl::string_view to) {
  std::string out;
  for (size_t at = 0;;) {
    const size_t hit = s.find(from, at);
    out.append(s.data() + at, (hit == absl::string_view::npos ? s.size() : hit) - at);
    if (hit == absl::string_view::npos) break;
    out.append(to.data(), to.size());
    at = hit + from.size();
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::FromModel(
    absl::string_view model_proto, absl::string_view config_json, absl::string_view where) {
  bool add_bos = true, add_eos = false;
  if (!config_json.empty()) {
    const nlohmann::json c =
        nlohmann::json::parse(config_json.begin(), config_json.end(), nullptr, false);
    if (!c.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": tokenizer_config.json is not a JSON object"));
    }
    if (auto it = c.find("add_bos_token"); it != c.end() && it->is_boolean()) {
      add_bos = it->get<bool>();
    }
    if (auto it = c.find("add_eos_token"); it != c.end() && it->is_boolean()) {
      add_eos = it->get<bool>();
    }
  }
  ModelProto m;
  if (!ParseModel(model_proto, &m) || m.pieces.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not a SentencePiece model (a serialized ModelProto)"));
  }
  if (m.model_type != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": SentencePiece model type ", m.model_type,
                     " is not supported (only BPE, as Llama 2 and Mistral ship)"));
  }
  if (m.has_charsmap || (m.normalizer != "identity" && !m.normalizer.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": SentencePiece normalizer ",
        nlohmann::json(m.normalizer).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
        " is not supported (only identity, as Llama 2 and Mistral ship)"));
  }
  if (!m.add_dummy_prefix) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": SentencePiece models without add_dummy_prefix are not supported"));
  }
  // The pieces as VocabTokenizer reads them: spaces as ' ', the unknown
  // piece as "<unk>", control and unused pieces never produced from text.
  std::vector<std::string> pieces;
  std::vector<float> scores;
  int32_t bos = -1, eos = -1;
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const Piece& p = m.pieces[i];
    std::string text = ReplaceAll(p.text, kSpace, " ");
    if (p.type == 2) text = "<unk>";
    if (p.type == 4) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": user-defined SentencePiece pieces are not supported"));
    }
    if (p.type == 3 || p.type == 5) {
      if (p.text == m.bos_piece) bos = static_cast<int32_t>(i);
      if (p.text == m.eos_piece) eos = static_cast<int32_t>(i);
      if (static_cast<int32_t>(i) != bos && static_cast<int32_t>(i) != eos) text.clear();
    }
    const float score = std::isfinite(p.score) ? p.score : std::numeric_limits<float>::lowest();
    pieces.push_back(std::move(text));
    scores.push_back(score);
  }
  absl::StatusOr<VocabTokenizer> v =
      VocabTokenizer::FromPieces(std::move(pieces), std::move(scores), where, bos, eos);
  if (!v.ok()) return v.status();
  return std::unique_ptr<SentencePieceTokenizer>(
      new SentencePieceTokenizer(*std::move(v), add_bos, add_eos, m.remove_extra_whitespaces));
}

std::vector<int32_t> SentencePieceTokenizer::Encode(absl::string_view text,
                                                    bool add_special) const {
  return EncodePart(text, /*first=*/true, /*last=*/true, add_special);
}

std::vector<int32_t> SentencePieceTokenizer::EncodePart(absl::string_view text, bool first,
                                                        bool last, bool add_special) const {
  std::string collapsed;
  if (remove_extra_whitespaces_) {
    // Runs of spaces become one; leading spaces of the document and trailing
    // ones go (a later part keeps its leading space: it follows a non-space).
    for (const char c : text) {
      if (c == ' ' && (collapsed.empty() ? first : collapsed.back() == ' ')) continue;
      collapsed += c;
    }
    while (last && !collapsed.empty() && collapsed.back() == ' ') collapsed.pop_back();
    text = collapsed;
  }
  std::vector<int32_t> ids = vocab_.EncodePart(text, first, last, add_special && add_bos_);
  if (last && add_special && add_eos_ && vocab_.eos_id() >= 0) ids.push_back(vocab_.eos_id());
  return ids;
}

absl::StatusOr<std::string> SentencePieceTokenizer::Decode(std::span<const int32_t> ids) const {
  return vocab_.Decode(ids);
}

}  // namespace caldera::tokenizer
