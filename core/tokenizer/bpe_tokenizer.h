// The tokenizer of a Hugging Face `tokenizer.json` whose model is BPE: the
// byte-level BPE that Llama 3, Qwen2 and GPT-2 ship (a regex Split and a
// ByteLevel pre-tokenizer, merges by rank) and the SentencePiece-style BPE
// of the tokenizer.json files of Llama 2 and Mistral (Prepend/Replace "▁"
// normalizers or a Metaspace pre-tokenizer, byte fallback). The encoding is
// the one the `tokenizers` package computes (tests/tokenizer/
// tokenizer_roundtrip_test.py compares ids exactly):
//   1. added tokens (tokenizer.json "added_tokens") are cut out of the raw
//      text first, leftmost-longest, each becoming its own id;
//   2. every other segment goes through the normalizer (NFC, NFKC, Prepend,
//      Replace, Lowercase, Sequence) and the pre-tokenizer (Split with a
//      Regex or String pattern, ByteLevel, Metaspace, Sequence; regexes run
//      on ICU with \s meaning Unicode White_Space, as Oniguruma has it);
//   3. every piece is split into characters and merged pairwise by merge
//      rank (lowest first, leftmost on ties); with `ignore_merges` a piece
//      that is itself in the vocabulary is taken whole; a character missing
//      from the vocabulary becomes its <0xNN> byte tokens (byte_fallback),
//      else the unknown token (fused when fuse_unk), else it is dropped;
//   4. with add_special, the special tokens of the post-processor's
//      TemplateProcessing "single" template go around the ids — unless
//      tokenizer_config.json sets add_bos_token / add_eos_token, which then
//      decide (as transformers' LlamaTokenizerFast does).
// Not supported (FromJson says so): other models (WordPiece, Unigram),
// continuing_subword_prefix / end_of_word_suffix, other normalizers and
// pre-tokenizers. Added tokens' lstrip / rstrip / single_word are ignored.
// Text that is not valid UTF-8 is read with U+FFFD for the bad bytes.
//
// Immutable after construction; thread-safe.
#ifndef CALDERA_CORE_TOKENIZER_BPE_TOKENIZER_H_
#define CALDERA_CORE_TOKENIZER_BPE_TOKENIZER_H_

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/tokenizer.h"

namespace caldera::tokenizer {

class BpeTokenizer : public Tokenizer {
 public:
  // Parses tokenizer.json (`tokenizer_json`) and, when not empty,
  // tokenizer_config.json (`config_json`); `where` names the file in
  // messages. INVALID_ARGUMENT for malformed JSON, a model that is not BPE,
  // merges naming tokens outside the vocabulary, a bad regex, or a
  // normalizer / pre-tokenizer this class does not implement.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromJson(absl::string_view tokenizer_json,
                                                                absl::string_view config_json,
                                                                absl::string_view where);
  ~BpeTokenizer() override;
  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  int64_t vocab_size() const override;
  std::vector<int32_t> Encode(absl::string_view text, bool add_special) const override;
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const override;

  // The ids Encode puts before / after a text with add_special.
  const std::vector<int32_t>& prefix_ids() const;
  const std::vector<int32_t>& suffix_ids() const;

  struct Impl;  // defined in bpe_tokenizer_impl.h (holds the ICU objects)

 private:
  explicit BpeTokenizer(std::unique_ptr<const Impl> impl);
  std::unique_ptr<const Impl> impl_;
};

}  // namespace caldera::tokenizer

#endif  // CALDERA_CORE_TOKENIZER_BPE_TOKENIZER_H_
