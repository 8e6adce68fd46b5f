// A llama2.c vocabulary (VocabTokenizer) written as the Hugging Face files
// that transformers' AutoTokenizer, lm-eval-harness and vLLM load:
// tokenizer.json (a BPE model) and tokenizer_config.json. A model that ships
// only tokenizer_vocab.json gets them in its compressed and exported folders
// (model_io/companion_files.h), so the tools users evaluate with run on it.
//
// The BPE model encodes exactly as VocabTokenizer::Encode:
//  - normalizer Prepend " " (the dummy space; only when the vocabulary has the
//    piece " ", as Encode only adds it then) — pieces keep their literal
//    spaces (no U+2581), and there is no pre-tokenizer, so a text is one word;
//  - merges: every pair (a, b) of mergeable pieces whose concatenation is a
//    piece t, ranked by t's score, highest first (Encode merges the pair with
//    the highest score); pairs of equal score by t's id, then by where the
//    split falls (llama2.c's vocabularies have distinct scores; on a tie
//    Encode takes the leftmost pair and `tokenizers` the lowest rank, which
//    can differ);
//  - byte_fallback with the "<0xNN>" pieces, "<unk>" as the unknown token;
//  - the BOS piece before the text (TemplateProcessing; add_bos_token true in
//    tokenizer_config.json), no EOS; BOS, EOS and <unk> are special added
//    tokens.
// Decoding (ByteFallback, Fuse, Strip one leading space) inverts it. One
// difference remains by design: the added tokens' text (e.g. "<s>") in the
// input is cut out as the special token by `tokenizers`, while Encode spells
// it; llama's own tokenizers do the same.
#ifndef CALDERA_CORE_TOKENIZER_HF_TOKENIZER_FILES_H_
#define CALDERA_CORE_TOKENIZER_HF_TOKENIZER_FILES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/tokenizer/vocab_tokenizer.h"

namespace caldera::tokenizer {

struct HfTokenizerFiles {
  std::string tokenizer_json;         // tokenizer.json
  std::string tokenizer_config_json;  // tokenizer_config.json
};

// The two files for `vocab`; `model_max_length` (the model's context length,
// > 0) goes into tokenizer_config.json. INVALID_ARGUMENT when two ids would
// have the same text in tokenizer.json (a special piece spelled like a text
// piece), which its vocabulary map cannot hold.
absl::StatusOr<HfTokenizerFiles> HfTokenizerFilesFor(const VocabTokenizer& vocab,
                                                     int64_t model_max_length);

}  // namespace caldera::tokenizer

#endif  // CALDERA_CORE_TOKENIZER_HF_TOKENIZER_FILES_H_
