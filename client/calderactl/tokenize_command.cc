// calderactl tokenize: text -> the token file compress / eval take
// (docs/format/tokens.md), with the model's own tokenizer (tokenizer.json,
// tokenizer.model or tokenizer_vocab.json; model_io/text_tokens.h). A .txt
// input is tokenized once (BOS first, as the model's tokenizer adds it), a
// .jsonl input document by document (--field), and the ids are cut into
// consecutive non-overlapping windows of --seq-len tokens (the WikiText-2
// protocol); the last partial window is dropped; --samples keeps the first S
// windows, or S drawn with --seed. --decode prints a token file's text instead.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/format/tokens.h"
#include "core/tokenizer/tokenizer.h"
#include "model_io/model_inputs.h"
#include "model_io/text_tokens.h"
#include "storage/storage.h"

namespace caldera::cli {
namespace {

struct TokenizeFlags {
  std::string tokenizer, text, out, decode, field = "text";
  int64_t seq_len = 0, samples = 0;
  std::optional<uint64_t> seed;
  bool no_bos = false;
};

absl::Status Decode(const TokenizeFlags& f, const tokenizer::Tokenizer& tok,
                    const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(f.decode, options);
  if (!reader.ok()) return reader.status();
  absl::StatusOr<format::TokenSet> tokens =
      format::ReadTokenFile(**reader, tok.vocab_size(), int64_t{1} << 40);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::string> text = tok.Decode(tokens->ids);
  if (!text.ok()) return text.status();
  std::fwrite(text->data(), 1, text->size(), stdout);
  return absl::OkStatus();
}

absl::Status Tokenize(const TokenizeFlags& f, const storage::StorageOptions& options) {
  std::string file;
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok =
      model_io::OpenModelTokenizer(f.tokenizer, options, &file);
  if (!tok.ok()) return tok.status();
  if (!f.decode.empty()) return Decode(f, **tok, options);
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
  const size_t tokens = ids->size();
  *ids = std::vector<int32_t>();  // each copy is freed once the next exists: memory ~ 2 copies
  const int64_t samples = out->samples, seq_len = out->seq_len;
  absl::StatusOr<std::string> bytes = format::SerializeTokenFile(*out);
  if (!bytes.ok()) return bytes.status();
  *out = format::TokenSet();
  absl::StatusOr<storage::ObjectInfo> put = storage::WriteObject(f.out, *bytes, options);
  if (!put.ok()) return put.status();
  std::printf("tokenize: %zu tokens (%s), %lld samples x %lld written to %s\n", tokens,
              file.c_str(), static_cast<long long>(samples), static_cast<long long>(seq_len),
              f.out.c_str());
  return absl::OkStatus();
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<TokenizeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize",
      "Tokenize a text file (.txt, .jsonl) into the input_ids file compress and eval take, with "
      "the model's own tokenizer (tokenizer.json, tokenizer.model or tokenizer_vocab.json); the "
      "ids are cut into consecutive windows of --seq-len. --decode prints a token file's text");
  cmd->add_option("--model,--tokenizer", f->tokenizer,
                  "model directory holding tokenizer.json, tokenizer.model or "
                  "tokenizer_vocab.json")
      ->required();
  cmd->add_option("--input,--text", f->text,
                  "text file (path or URI): .txt (UTF-8, one document) or .jsonl (one JSON "
                  "object per line)");
  cmd->add_option("--field", f->field, "the text field of .jsonl records (default text)");
  cmd->add_option("--out", f->out, "token file to write (safetensors, input_ids [samples, seq])");
  cmd->add_option("--seq-len", f->seq_len, "tokens per sample");
  cmd->add_option("--samples", f->samples, "samples to keep (default: every full window)");
  cmd->add_option("--seed", f->seed,
                  "draw the --samples windows at random with this seed (default: the first "
                  "ones)");
  cmd->add_flag("--no-bos", f->no_bos,
                "do not add the tokenizer's special tokens (BOS) around each document");
  cmd->add_option("--decode", f->decode, "print the text of this token file instead");
  cmd->callback([f, exit_code] {
    const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
    absl::Status s = Tokenize(*f, options);
    *exit_code = s.ok() ? kExitOk : ReportError("tokenize", s);
  });
}

}  // namespace caldera::cli
