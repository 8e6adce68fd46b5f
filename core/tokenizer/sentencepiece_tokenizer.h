// The tokenizer of a SentencePiece `tokenizer.model` (the serialized
// ModelProto that Llama 2 and Mistral ship), read with our own protobuf wire
// reader: libsentencepiece cannot be linked into our binaries (Debian's
// build carries its own protobuf 3.14 runtime, which aborts at start-up next
// to the system protobuf that gRPC uses).
//
// Supported: BPE models (trainer_spec.model_type BPE) with the identity
// normalizer (no precompiled charsmap), add_dummy_prefix, and optionally
// remove_extra_whitespaces (runs of ' ' collapsed, ends trimmed) — what
// Llama 2 and Mistral use. Encoding is SentencePiece's BPE: characters
// (spaces as "▁"), merged pairwise by the highest piece score, leftmost on
// ties; characters missing from the vocabulary become <0xNN> byte pieces
// (byte_fallback) or <unk>. It is VocabTokenizer's algorithm, which this
// class runs on the model's pieces. With add_special, BOS goes in front when
// tokenizer_config.json says add_bos_token (default true, as transformers'
// LlamaTokenizer) and EOS behind when it says add_eos_token (default false).
// Unigram models, other normalizers and user-defined pieces are refused.
//
// Immutable after construction; thread-safe.
#ifndef CALDERA_CORE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
#define CALDERA_CORE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/vocab_tokenizer.h"

namespace caldera::tokenizer {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Parses the serialized model (`model_proto`) and, when not empty,
  // tokenizer_config.json (`config_json`); `where` names the file in
  // messages. INVALID_ARGUMENT when either does not parse or the model is of
  // a kind listed above as refused.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromModel(
      absl::string_view model_proto, absl::string_view config_json, absl::string_view where);

  int64_t vocab_size() const override { return vocab_.size(); }
  std::vector<int32_t> Encode(absl::string_view text, bool add_special) const override;
  // A cut is safe where the vocabulary's is (VocabTokenizer::SafeSplit: right
  // before a single space between non-spaces, so whitespace collapses alike).
  size_t SafeSplit(absl::string_view text) const override { return vocab_.SafeSplit(text); }
  std::vector<int32_t> EncodePart(absl::string_view text, bool first, bool last,
                                  bool add_special) const override;
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const override;

 private:
  SentencePieceTokenizer(VocabTokenizer vocab, bool add_bos, bool add_eos, bool remove_extra)
      : vocab_(std::move(vocab)),
        add_bos_(add_bos),
        add_eos_(add_eos),
        remove_extra_whitespaces_(remove_extra) {}
  VocabTokenizer vocab_;
  bool add_bos_, add_eos_, remove_extra_whitespaces_;
};

}  // namespace caldera::tokenizer

#endif  // CALDERA_CORE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
