#include "operations/tokenize.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/format/tokens.h"
#include "core/tokenizer/tokenizer.h"
#include "model_io/model_inputs.h"
#include "model_io/text_tokens.h"
#include "storage/storage.h"

namespace caldera::operations {

absl::StatusOr<std::string> DecodeTokenFile(const std::string& tokenizer, const std::string& tokens,
                                            const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok =
      model_io::OpenModelTokenizer(tokenizer, options);
  if (!tok.ok()) return tok.status();
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(tokens, options);
  if (!reader.ok()) return reader.status();
  absl::StatusOr<format::TokenSet> set =
      format::ReadTokenFile(**reader, (*tok)->vocab_size(), int64_t{1} << 40);
  if (!set.ok()) return set.status();
  return (*tok)->Decode(set->ids);
}

absl::StatusOr<TokenizeResult> Tokenize(const TokenizeOptions& f,
                                        const storage::StorageOptions& options) {
  TokenizeResult result;
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok =
      model_io::OpenModelTokenizer(f.tokenizer, options, &result.tokenizer_file);
  if (!tok.ok()) return tok.status();
  if (f.text.empty() || f.out.empty() || f.seq_len == 0) {
    return absl::InvalidArgumentError("tokenize needs --input, --out and --seq-len (or --decode)");
  }
  if (f.seq_len < 2 || f.samples < 0) {
    return absl::InvalidArgumentError("--seq-len must be >= 2 and --samples >= 0");
  }
  absl::StatusOr<std::vector<int32_t>> ids =
      model_io::TokenizeTextFile(**tok, f.text, f.field, !f.no_bos, options);
  if (!ids.ok()) return ids.status();
  absl::StatusOr<format::TokenSet> out =
      model_io::CutWindows(*ids, f.seq_len, f.samples, f.seed, absl::StrCat("--input ", f.text));
  if (!out.ok()) return out.status();
  result.tokens = static_cast<int64_t>(ids->size());
  result.samples = out->samples;
  result.seq_len = out->seq_len;
  *ids = std::vector<int32_t>();  // each copy is freed once the next exists: memory ~ 2 copies
  absl::StatusOr<std::string> bytes = format::SerializeTokenFile(*out);
  if (!bytes.ok()) return bytes.status();
  *out = format::TokenSet();
  absl::StatusOr<storage::ObjectInfo> put = storage::WriteObject(f.out, *bytes, options);
  if (!put.ok()) return put.status();
  result.out = f.out;
  return result;
}

}  // namespace caldera::operations
