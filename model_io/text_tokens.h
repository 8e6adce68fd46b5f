// Text files -> token windows, the path from a user's text to the token file
// compress and eval take (docs/format/tokens.md):
//   OpenModelTokenizer   the tokenizer a model directory ships, by file:
//                        tokenizer.json (BPE; core/tokenizer/bpe_tokenizer.h),
//                        else tokenizer.model (SentencePiece), else
//                        tokenizer_vocab.json (llama2.c). A tokenizer.json
//                        this build cannot run falls back to tokenizer.model
//                        when there is one.
//   TokenizeTextFile     a .txt file is one document; a .jsonl file is one
//                        JSON object per line whose string `field` is a
//                        document. Every document is encoded with the model's
//                        special tokens (BOS for Llama) and the ids follow
//                        one another. Parquet is refused with the conversion
//                        to use. The file is read in chunks of 1 MiB and a
//                        document is encoded in parts of about 64 KiB cut
//                        where the tokenizer says no token can span the cut
//                        (Tokenizer::SafeSplit), giving the ids of the whole:
//                        memory is the ids (4 bytes a token) plus a few MiB,
//                        whatever the file's size (issue 37: 65-80 bytes per
//                        input byte before). A tokenizer that knows no safe
//                        cut (tokenizer.json) encodes each document whole, up
//                        to kMaxUncutDocumentBytes.
//   CutWindows           the ids cut into consecutive non-overlapping windows
//                        of seq_len (the WikiText-2 protocol; the last partial
//                        window is dropped); `samples` > 0 keeps that many:
//                        the first ones, or with a seed a uniformly drawn set
//                        (Fisher-Yates on mt19937_64, kept in text order), so
//                        the same seed gives the same windows everywhere.
#ifndef CALDERA_MODEL_IO_TEXT_TOKENS_H_
#define CALDERA_MODEL_IO_TEXT_TOKENS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/format/tokens.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/vocab_tokenizer.h"
#include "storage/storage_options.h"

namespace caldera::model_io {

// The tokenizer of the model directory `dir` (URI). `*file` (when not null)
// is set to the file it read. INVALID_ARGUMENT when the directory has none
// of the three files or the file is malformed.
absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> OpenModelTokenizer(
    const std::string& dir, const storage::StorageOptions& options, std::string* file = nullptr);

// The llama2.c tokenizer of `dir` (tokenizer_vocab.json, BOS/EOS ids from its
// config.json); nullopt when the directory has no tokenizer_vocab.json.
// INVALID_ARGUMENT for a malformed one.
absl::StatusOr<std::optional<tokenizer::VocabTokenizer>> OpenVocabTokenizer(
    const std::string& dir, const storage::StorageOptions& options);

// The longest document encoded whole (no safe cut inside it; a tokenizer
// may take ~80 bytes per byte while encoding, so ~1.3 GB at most), and the
// longest .jsonl line.
inline constexpr size_t kMaxUncutDocumentBytes = size_t{16} << 20;

// The ids of the text file at `uri` (see above). INVALID_ARGUMENT for an
// empty file, a .jsonl line that is not an object with a string `field`, a
// .parquet file, or a document with no safe cut in kMaxUncutDocumentBytes
// (the message says to make it a .jsonl of smaller documents).
absl::StatusOr<std::vector<int32_t>> TokenizeTextFile(const tokenizer::Tokenizer& tokenizer,
                                                      const std::string& uri,
                                                      absl::string_view field, bool add_special,
                                                      const storage::StorageOptions& options);

// The windows of `ids` (see above); `what` names the text in messages.
// INVALID_ARGUMENT when seq_len < 2, there is not one full window, or fewer
// windows than `samples`.
absl::StatusOr<format::TokenSet> CutWindows(std::span<const int32_t> ids, int64_t seq_len,
                                            int64_t samples, std::optional<uint64_t> seed,
                                            absl::string_view what);

// The window length of a text: `asked` when it is not 0, else `fallback`
// capped by the model's max_position_embeddings (when the config gives it).
int64_t TextWindowLength(int64_t asked, int64_t fallback, int64_t max_position_embeddings);

}  // namespace caldera::model_io

#endif  // CALDERA_MODEL_IO_TEXT_TOKENS_H_
