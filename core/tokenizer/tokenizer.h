// The one interface of a text tokenizer: UTF-8 text -> token ids -> text.
// Implemented by VocabTokenizer (llama2.c tokenizer_vocab.json), BpeTokenizer
// (Hugging Face tokenizer.json) and SentencePieceTokenizer (tokenizer.model);
// model_io/text_tokens.h (OpenModelTokenizer) picks the one a model
// directory ships.
//
// Implementations are immutable after construction and thread-safe.
#ifndef CALDERA_CORE_TOKENIZER_TOKENIZER_H_
#define CALDERA_CORE_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Every id Encode returns is in [0, vocab_size()).
  virtual int64_t vocab_size() const = 0;

  // Token ids of `text`. With `add_special`, the tokens the model's own
  // tokenizer adds around a text (BOS for Llama; none for Qwen2) are added.
  virtual std::vector<int32_t> Encode(absl::string_view text, bool add_special) const = 0;

  // Streaming a long document in parts (model_io/text_tokens.h), with the
  // same ids as Encode of the whole: SafeSplit is the largest n in
  // (0, text.size()) such that cutting a document at the start of `text` + n
  // changes no token (no token can span the cut), or 0 when this tokenizer
  // knows no such place in `text` (then the document is encoded whole).
  // EncodePart encodes one part of a document cut at such places: `first` /
  // `last` say which ends of the document it holds (the special tokens and
  // any dummy prefix belong to them). Concatenating EncodePart over the parts
  // equals Encode(document); EncodePart(t, true, true, s) == Encode(t, s).
  // The defaults know no safe place (and so only see whole documents).
  virtual size_t SafeSplit(absl::string_view text) const { return 0; }
  virtual std::vector<int32_t> EncodePart(absl::string_view text, bool first, bool last,
                                          bool add_special) const {
    return Encode(text, add_special);
  }

  // The text of `ids` (special tokens dropped); INVALID_ARGUMENT for an id
  // outside the vocabulary.
  virtual absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const = 0;
};

}  // namespace caldera::tokenizer

#endif  // CALDERA_CORE_TOKENIZER_TOKENIZER_H_
