// calderactl tokenize: text -> the token file compress / eval take
// (docs/format/tokens.md), with the model's own llama2.c-style vocabulary
// (tokenizer_vocab.json, core/model/vocab_tokenizer.h). The whole text is
// tokenized once (BOS first) and cut into consecutive non-overlapping windows
// of --seq-len tokens (the WikiText-2 protocol); the last partial window is
// dropped and --samples takes the first S windows. --decode prints a token
// file's text instead.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/format/tokens.h"
#include "core/model/vocab_tokenizer.h"
#include "model_io/model_inputs.h"
#include "nlohmann/json.hpp"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::cli {
namespace {

struct TokenizeFlags {
  std::string tokenizer, text, out, decode;
  int64_t seq_len = 0, samples = 0;
  bool no_bos = false;
};

// An integer field of config.json, or -1.
int32_t ConfigId(const nlohmann::json& config, const char* key) {
  const auto it = config.is_object() ? config.find(key) : config.end();
  return it != config.end() && it->is_number_integer() ? it->get<int32_t>() : -1;
}

absl::StatusOr<model::VocabTokenizer> LoadTokenizer(const std::string& dir,
                                                    const storage::StorageOptions& options) {
  const std::string vocab_uri = storage::JoinKey(dir, "tokenizer_vocab.json");
  absl::StatusOr<std::string> vocab = storage::ReadObject(vocab_uri, options);
  if (!vocab.ok()) {
    if (vocab.status().code() != absl::StatusCode::kNotFound) return vocab.status();
    return absl::InvalidArgumentError(
        absl::StrCat("--tokenizer ", dir,
                     " has no tokenizer_vocab.json (the llama2.c vocabulary this command reads; "
                     "tokenizer.json and tokenizer.model are not supported yet)"));
  }
  nlohmann::json config;
  if (absl::StatusOr<std::string> text =
          storage::ReadObject(storage::JoinKey(dir, "config.json"), options);
      text.ok()) {
    config = nlohmann::json::parse(*text, nullptr, false);
  }
  return model::VocabTokenizer::FromJson(*vocab, vocab_uri, ConfigId(config, "bos_token_id"),
                                         ConfigId(config, "eos_token_id"));
}

absl::Status Decode(const TokenizeFlags& f, const model::VocabTokenizer& tok,
                    const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      model_io::OpenSafetensorsAt(f.decode, options);
  if (!reader.ok()) return reader.status();
  absl::StatusOr<format::TokenFile> tokens =
      format::ReadTokenFile(**reader, tok.size(), int64_t{1} << 40);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::string> text = tok.Decode(tokens->ids);
  if (!text.ok()) return text.status();
  std::fwrite(text->data(), 1, text->size(), stdout);
  return absl::OkStatus();
}

absl::Status Tokenize(const TokenizeFlags& f, const storage::StorageOptions& options) {
  absl::StatusOr<model::VocabTokenizer> tok = LoadTokenizer(f.tokenizer, options);
  if (!tok.ok()) return tok.status();
  if (!f.decode.empty()) return Decode(f, *tok, options);
  if (f.text.empty() || f.out.empty() || f.seq_len == 0) {
    return absl::InvalidArgumentError("tokenize needs --text, --out and --seq-len (or --decode)");
  }
  if (f.seq_len < 2 || f.samples < 0) {
    return absl::InvalidArgumentError("--seq-len must be >= 2 and --samples >= 0");
  }
  absl::StatusOr<std::string> text = storage::ReadObject(f.text, options);
  if (!text.ok()) return text.status();
  if (text->empty())
    return absl::InvalidArgumentError(absl::StrCat("--text ", f.text, " is empty"));
  const std::vector<int32_t> ids = tok->Encode(*text, !f.no_bos);
  const int64_t windows = static_cast<int64_t>(ids.size()) / f.seq_len;
  if (windows == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--text ", f.text, " gives ", ids.size(),
                                                   " tokens, fewer than one window of --seq-len ",
                                                   f.seq_len));
  }
  if (f.samples > windows) {
    return absl::InvalidArgumentError(
        absl::StrCat("--text ", f.text, " gives ", ids.size(), " tokens: ", windows,
                     " windows of --seq-len ", f.seq_len, ", fewer than --samples ", f.samples));
  }
  format::TokenFile out;
  out.samples = f.samples > 0 ? f.samples : windows;
  out.seq_len = f.seq_len;
  out.ids.assign(ids.begin(), ids.begin() + out.samples * out.seq_len);
  absl::StatusOr<std::string> bytes = format::SerializeTokenFile(out);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<storage::ObjectInfo> put = storage::WriteObject(f.out, *bytes, options);
  if (!put.ok()) return put.status();
  std::printf("tokenize: %zu tokens, %lld samples x %lld written to %s\n", ids.size(),
              static_cast<long long>(out.samples), static_cast<long long>(out.seq_len),
              f.out.c_str());
  return absl::OkStatus();
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<TokenizeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize",
      "Tokenize a text file into the input_ids file compress and eval take (the model's "
      "tokenizer_vocab.json; the text is cut into consecutive windows of --seq-len), or print "
      "a token file's text with --decode");
  cmd->add_option("--tokenizer", f->tokenizer, "model directory holding tokenizer_vocab.json")
      ->required();
  cmd->add_option("--text", f->text, "UTF-8 text file (path or URI)");
  cmd->add_option("--out", f->out, "token file to write (safetensors, input_ids [samples, seq])");
  cmd->add_option("--seq-len", f->seq_len, "tokens per sample");
  cmd->add_option("--samples", f->samples, "samples to keep (default: every full window)");
  cmd->add_flag("--no-bos", f->no_bos, "do not put the BOS token in front of the text");
  cmd->add_option("--decode", f->decode, "print the text of this token file instead");
  cmd->callback([f, exit_code] {
    const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
    absl::Status s = Tokenize(*f, options);
    *exit_code = s.ok() ? kExitOk : ReportError("tokenize", s);
  });
}

}  // namespace caldera::cli
