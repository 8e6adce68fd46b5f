// calderactl tokenize: text -> the token file compress / eval take, with the
// model's own tokenizer (operations/tokenize.h); --decode prints a token
// file's text instead.
#include <cstdio>
#include <string>

#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "operations/tokenize.h"
#include "storage/storage.h"

namespace caldera::cli {
namespace {

struct TokenizeFlags {
  operations::TokenizeOptions options;
  std::string decode;
};

absl::Status Run(const TokenizeFlags& f, const storage::StorageOptions& options) {
  if (!f.decode.empty()) {
    absl::StatusOr<std::string> text =
        operations::DecodeTokenFile(f.options.tokenizer, f.decode, options);
    if (!text.ok()) return text.status();
    std::fwrite(text->data(), 1, text->size(), stdout);
    return absl::OkStatus();
  }
  absl::StatusOr<operations::TokenizeResult> r = operations::Tokenize(f.options, options);
  if (!r.ok()) return r.status();
  std::printf("tokenize: %lld tokens (%s), %lld samples x %lld written to %s\n",
              static_cast<long long>(r->tokens), r->tokenizer_file.c_str(),
              static_cast<long long>(r->samples), static_cast<long long>(r->seq_len),
              r->out.c_str());
  return absl::OkStatus();
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<TokenizeFlags>();
  operations::TokenizeOptions* f = &flags->options;
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
  cmd->add_option("--decode", flags->decode, "print the text of this token file instead");
  cmd->callback([flags, exit_code] {
    const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
    absl::Status s = Run(*flags, options);
    *exit_code = s.ok() ? kExitOk : ReportError("tokenize", s);
  });
}

}  // namespace caldera::cli
