// The tokenizer of a llama2.c-style vocabulary file (tokenizer_vocab.json, as
// the stories260K fixture ships it; docs/format/tokens.md): a JSON array of
// {"piece": string, "score": number}, the index being the token id. It is a
// SentencePiece BPE model written out: spaces are ' ' (not U+2581), bytes
// are the pieces "<0x00>".."<0xFF>", and merges go by score.
//
// Encode (as SentencePiece / llama2.c encode): a dummy ' ' is put in front
// of non-empty text; the text is split into UTF-8 characters, each its own
// piece, or, when the vocabulary lacks it, one byte piece per UTF-8 byte
// (<unk> when there are no byte pieces); then, repeatedly, the adjacent pair
// whose concatenation is a piece with the highest score (leftmost on ties) is
// merged, until no pair is a piece. Byte and special pieces never merge.
// A document can be encoded in parts (Tokenizer::SafeSplit): when no piece
// holds a non-space byte followed by a space (true of SentencePiece
// vocabularies, whose pieces only start with spaces or are runs of them), no
// merge can cross a single space between two non-space bytes, so the text is
// cut right before such a space; later parts get no dummy ' ' and no BOS.
// Decode inverts it: byte pieces become their bytes, BOS/EOS are dropped and
// the dummy leading space is removed, so Decode(Encode(t)) == t for any
// valid UTF-8 t the vocabulary covers (with byte pieces: any UTF-8 t).
//
// Immutable after construction; thread-safe.
#ifndef CALDERA_CORE_TOKENIZER_VOCAB_TOKENIZER_H_
#define CALDERA_CORE_TOKENIZER_VOCAB_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/tokenizer.h"

namespace caldera::tokenizer {

class VocabTokenizer : public Tokenizer {
 public:
  // Parses the vocabulary JSON (`where` names it in messages). `bos_id` /
  // `eos_id` (from config.json; -1 when none) must be ids of the vocabulary.
  // INVALID_ARGUMENT for malformed JSON, entries that are not {piece, score},
  // an empty vocabulary or duplicate pieces.
  static absl::StatusOr<VocabTokenizer> FromJson(absl::string_view json, absl::string_view where,
                                                 int32_t bos_id, int32_t eos_id);

  // The same from the pieces and scores themselves (index = id), e.g. read
  // from a SentencePiece model; the same errors but malformed JSON.
  static absl::StatusOr<VocabTokenizer> FromPieces(std::vector<std::string> pieces,
                                                   std::vector<float> scores,
                                                   absl::string_view where, int32_t bos_id,
                                                   int32_t eos_id);

  int64_t size() const { return static_cast<int64_t>(pieces_.size()); }
  int64_t vocab_size() const override { return size(); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t unk_id() const { return unk_id_; }
  const std::string& piece(int32_t id) const { return pieces_[id]; }
  float score(int32_t id) const { return scores_[id]; }
  // The byte value of a byte piece "<0xNN>", else -1.
  int byte_value(int32_t id) const { return byte_of_[id]; }

  // Token ids of `text` (BOS first when `add_bos` and the vocabulary has one).
  std::vector<int32_t> Encode(absl::string_view text, bool add_bos) const override;
  size_t SafeSplit(absl::string_view text) const override;
  std::vector<int32_t> EncodePart(absl::string_view text, bool first, bool last,
                                  bool add_bos) const override;

  // The text of `ids`; INVALID_ARGUMENT for an id outside the vocabulary.
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const override;

 private:
  VocabTokenizer() = default;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<int> byte_of_;               // byte value of a byte piece, else -1
  std::array<int32_t, 256> byte_piece_{};  // id of "<0xNN>", or -1
  // Pieces that text may produce (not byte or special pieces) -> id.
  std::unordered_map<std::string, int32_t> id_of_;
  int32_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1;
  // No piece holds a non-space byte followed by ' ' (SafeSplit may cut).
  bool cuttable_ = false;
};

}  // namespace caldera::tokenizer

#endif  // CALDERA_CORE_TOKENIZER_VOCAB_TOKENIZER_H_
