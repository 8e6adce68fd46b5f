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

  // The text of `ids` (special tokens dropped); INVALID_ARGUMENT for an id
  // outside the vocabulary.
  virtual absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const = 0;
};

}  // namespace caldera::tokenizer

#endif  // CALDERA_CORE_TOKENIZER_TOKENIZER_H_
