// Token files (docs/format/tokens.md): calibration and evaluation token ids, a
// safetensors file with one tensor "input_ids" [samples, seq_len], I32 (I64
// accepted when reading). One writer and one reader; the model checks (vocab
// size, context length) are passed in by the caller.
#ifndef CALDERA_CORE_FORMAT_TOKENS_H_
#define CALDERA_CORE_FORMAT_TOKENS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/format/safetensors.h"

namespace caldera::format {

struct TokenSet {
  int64_t samples = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> ids;  // row-major [samples, seq_len]
};

// The file's bytes; WriteTokenFile writes them atomically to a local path.
// INVALID_ARGUMENT when ids.size() != samples * seq_len.
absl::StatusOr<std::string> SerializeTokenFile(const TokenSet& tokens);
absl::Status WriteTokenFile(const TokenSet& tokens, const std::string& path);

// Reads and validates "input_ids": rank 2, I32 or I64, at least one sequence
// of two or more tokens, seq_len <= max_seq_len, every id in [0, vocab_size).
// Messages name the file and the first offending id.
absl::StatusOr<TokenSet> ReadTokenFile(const SafetensorsReader& reader, int64_t vocab_size,
                                       int64_t max_seq_len);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_TOKENS_H_
