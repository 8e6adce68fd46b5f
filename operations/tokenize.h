// Tokenize: text -> the token file compress / eval take
// (docs/format/tokens.md), with the model's own tokenizer (tokenizer.json,
// tokenizer.model or tokenizer_vocab.json; model_io/text_tokens.h). A .txt
// input is tokenized once (BOS first, as the model's tokenizer adds it), a
// .jsonl input document by document (field), and the ids are cut into
// consecutive non-overlapping windows of seq_len tokens (the WikiText-2
// protocol); the last partial window is dropped; samples keeps the first S
// windows, or S drawn with seed. DecodeTokenFile is the way back.
// `calderactl tokenize` and the Python package's tokenize() call them.
#ifndef CALDERA_OPERATIONS_TOKENIZE_H_
#define CALDERA_OPERATIONS_TOKENIZE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "storage/storage_options.h"

namespace caldera::operations {

struct TokenizeOptions {
  std::string tokenizer;         // model directory holding the tokenizer files
  std::string text;              // input text file (.txt or .jsonl)
  std::string out;               // token file to write
  std::string field = "text";    // the text field of .jsonl records
  int64_t seq_len = 0;           // tokens per sample, >= 2
  int64_t samples = 0;           // samples to keep; 0 = every full window
  std::optional<uint64_t> seed;  // draw the samples at random with this seed
  bool no_bos = false;           // do not add the tokenizer's special tokens
};

struct TokenizeResult {
  int64_t tokens = 0;   // ids of the whole text
  int64_t samples = 0;  // windows written
  int64_t seq_len = 0;
  std::string tokenizer_file;  // which file of the model tokenized
  std::string out;
};

// INVALID_ARGUMENT for missing or bad options (naming calderactl's flag),
// a model without a tokenizer or a text too short; storage errors as they come.
absl::StatusOr<TokenizeResult> Tokenize(const TokenizeOptions& options,
                                        const storage::StorageOptions& storage);

// The text of token file `tokens`, decoded with the tokenizer of the model
// directory `tokenizer`.
absl::StatusOr<std::string> DecodeTokenFile(const std::string& tokenizer, const std::string& tokens,
                                            const storage::StorageOptions& storage);

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_TOKENIZE_H_
