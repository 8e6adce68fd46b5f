// The files a Hugging Face model directory carries beside its weights and
// config.json -- tokenizer, generation settings, chat template -- which the
// tools users load a checkpoint with (transformers' from_pretrained of the
// tokenizer, lm-eval, vLLM) expect to find next to it. compress and export copy
// them through unchanged.
#ifndef CALDERA_MODEL_IO_COMPANION_FILES_H_
#define CALDERA_MODEL_IO_COMPANION_FILES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/storage_options.h"

namespace caldera::model_io {

// True for a top-level file name of a model directory that is a companion:
// tokenizer* (tokenizer.json, tokenizer_config.json, tokenizer.model, ...),
// special_tokens_map.json, added_tokens.json, vocab.json, vocab.txt,
// merges.txt, generation_config.json, chat_template.* (json, jinja),
// preprocessor_config.json, *.tiktoken. Weights, indexes and config.json are
// not.
bool IsCompanionFile(absl::string_view name);

// Copies every companion file directly under the directory `from_uri` to
// `to_uri` (same names). A model whose only tokenizer is llama2.c's
// tokenizer_vocab.json also gets its equivalent tokenizer.json and (unless it
// has one) tokenizer_config.json (core/tokenizer/hf_tokenizer_files.h), so
// AutoTokenizer and lm-eval run on the output. Returns the names written,
// sorted. Objects larger
// than 64 MiB are refused (INVALID_ARGUMENT naming the file): no tokenizer
// is that big, and the copy goes through memory.
absl::StatusOr<std::vector<std::string>> CopyCompanionFiles(const std::string& from_uri,
                                                            const std::string& to_uri,
                                                            const storage::StorageOptions& options);

}  // namespace caldera::model_io

#endif  // CALDERA_MODEL_IO_COMPANION_FILES_H_
