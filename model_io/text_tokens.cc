#include "model_io/text_tokens.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/sentencepiece_tokenizer.h"
#include "core/tokenizer/vocab_tokenizer.h"
#include "nlohmann/json.hpp"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::model_io {
namespace {

// The object at `uri`, "" when it does not exist (*found = false).
absl::StatusOr<std::string> ReadIfPresent(const std::string& uri,
                                          const storage::StorageOptions& options, bool* found) {
  absl::StatusOr<std::string> text = storage::ReadObject(uri, options);
  *found = text.ok();
  if (text.ok() || text.status().code() != absl::StatusCode::kNotFound) return text;
  return std::string();
}

// An integer field of config.json, or -1.
int32_t ConfigId(const nlohmann::json& config, const char* key) {
  const auto it = config.is_object() ? config.find(key) : config.end();
  return it != config.end() && it->is_number_integer() ? it->get<int32_t>() : -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> OpenModelTokenizer(
    const std::string& dir, const storage::StorageOptions& options, std::string* file) {
  bool has_json = false, has_model = false, has_config = false;
  const std::string json_uri = storage::JoinKey(dir, "tokenizer.json");
  const std::string model_uri = storage::JoinKey(dir, "tokenizer.model");
  absl::StatusOr<std::string> config =
      ReadIfPresent(storage::JoinKey(dir, "tokenizer_config.json"), options, &has_config);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::string> json = ReadIfPresent(json_uri, options, &has_json);
  if (!json.ok()) return json.status();
  absl::Status json_error = absl::OkStatus();
  if (has_json) {
    absl::StatusOr<std::unique_ptr<tokenizer::BpeTokenizer>> bpe =
        tokenizer::BpeTokenizer::FromJson(*json, *config, json_uri);
    if (bpe.ok()) {
      if (file != nullptr) *file = json_uri;
      return std::unique_ptr<tokenizer::Tokenizer>(*std::move(bpe));
    }
    json_error = bpe.status();
  }
  absl::StatusOr<std::string> proto = ReadIfPresent(model_uri, options, &has_model);
  if (!proto.ok()) return proto.status();
  if (has_model) {
    absl::StatusOr<std::unique_ptr<tokenizer::SentencePieceTokenizer>> sp =
        tokenizer::SentencePieceTokenizer::FromModel(*proto, *config, model_uri);
    if (!sp.ok()) return sp.status();
    if (file != nullptr) *file = model_uri;
    return std::unique_ptr<tokenizer::Tokenizer>(*std::move(sp));
  }
  if (!json_error.ok()) return json_error;
  absl::StatusOr<std::optional<tokenizer::VocabTokenizer>> v = OpenVocabTokenizer(dir, options);
  if (!v.ok()) return v.status();
  if (!v->has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir,
                     " has no tokenizer_vocab.json, tokenizer.json or tokenizer.model (copy the "
                     "tokenizer files of the model into the directory)"));
  }
  if (file != nullptr) *file = storage::JoinKey(dir, "tokenizer_vocab.json");
  return std::unique_ptr<tokenizer::Tokenizer>(
      std::make_unique<tokenizer::VocabTokenizer>(**std::move(v)));
}

absl::StatusOr<std::optional<tokenizer::VocabTokenizer>> OpenVocabTokenizer(
    const std::string& dir, const storage::StorageOptions& options) {
  const std::string vocab_uri = storage::JoinKey(dir, "tokenizer_vocab.json");
  bool found = false;
  absl::StatusOr<std::string> vocab = ReadIfPresent(vocab_uri, options, &found);
  if (!vocab.ok()) return vocab.status();
  if (!found) return std::nullopt;
  bool has_model_config = false;
  absl::StatusOr<std::string> model_config =
      ReadIfPresent(storage::JoinKey(dir, "config.json"), options, &has_model_config);
  if (!model_config.ok()) return model_config.status();
  const nlohmann::json c = nlohmann::json::parse(*model_config, nullptr, false);
  absl::StatusOr<tokenizer::VocabTokenizer> v = tokenizer::VocabTokenizer::FromJson(
      *vocab, vocab_uri, ConfigId(c, "bos_token_id"), ConfigId(c, "eos_token_id"));
  if (!v.ok()) return v.status();
  return std::optional<tokenizer::VocabTokenizer>(*std::move(v));
}

absl::StatusOr<std::vector<int32_t>> TokenizeTextFile(const tokenizer::Tokenizer& tokenizer,
                                                      const std::string& uri,
                                                      absl::string_view field, bool add_special,
                                                      const storage::StorageOptions& options) {
  if (absl::EndsWithIgnoreCase(uri, ".parquet")) {
    return absl::InvalidArgumentError(
        absl::StrCat(uri,
                     ": Parquet is not read here; convert it to JSON lines first, e.g. python -c "
                     "\"import pandas as p; p.read_parquet('F.parquet').to_json('F.jsonl', "
                     "orient='records', lines=True, force_ascii=False)\""));
  }
  absl::StatusOr<std::string> text = storage::ReadObject(uri, options);
  if (!text.ok()) return text.status();
  if (text->empty()) return absl::InvalidArgumentError(absl::StrCat(uri, " is empty"));
  if (!absl::EndsWithIgnoreCase(uri, ".jsonl")) return tokenizer.Encode(*text, add_special);
  std::vector<int32_t> ids;
  int64_t line_no = 0, documents = 0;
  const std::string key(field);
  for (size_t at = 0; at < text->size();) {
    size_t end = text->find('\n', at);
    if (end == std::string::npos) end = text->size();
    const absl::string_view line(text->data() + at, end - at);
    at = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == absl::string_view::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    const auto it = j.is_object() ? j.find(key) : j.end();
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(uri, " line ", line_no,
                                                     ": not a JSON object with a string field ",
                                                     nlohmann::json(key).dump(), " (--field)"));
    }
    const std::vector<int32_t> doc = tokenizer.Encode(it->get<std::string>(), add_special);
    ids.insert(ids.end(), doc.begin(), doc.end());
    ++documents;
  }
  if (documents == 0) return absl::InvalidArgumentError(absl::StrCat(uri, " is empty"));
  return ids;
}

absl::StatusOr<format::TokenSet> CutWindows(std::span<const int32_t> ids, int64_t seq_len,
                                            int64_t samples, std::optional<uint64_t> seed,
                                            absl::string_view what) {
  if (seq_len < 2 || samples < 0) {
    return absl::InvalidArgumentError("--seq-len must be >= 2 and --samples >= 0");
  }
  const int64_t windows = static_cast<int64_t>(ids.size()) / seq_len;
  if (windows == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " gives ", ids.size(), " tokens, fewer than one window of --seq-len ", seq_len));
  }
  if (samples > windows) {
    return absl::InvalidArgumentError(absl::StrCat(what, " gives ", ids.size(),
                                                   " tokens: ", windows, " windows of --seq-len ",
                                                   seq_len, ", fewer than --samples ", samples));
  }
  std::vector<int64_t> chosen(windows);
  std::iota(chosen.begin(), chosen.end(), int64_t{0});
  const int64_t keep = samples > 0 ? samples : windows;
  if (seed.has_value() && keep < windows) {
    std::mt19937_64 rng(*seed);
    for (int64_t i = 0; i < keep; ++i) {  // partial Fisher-Yates
      const int64_t j = i + static_cast<int64_t>(rng() % static_cast<uint64_t>(windows - i));
      std::swap(chosen[i], chosen[j]);
    }
    std::sort(chosen.begin(), chosen.begin() + keep);
  }
  format::TokenSet out;
  out.samples = keep;
  out.seq_len = seq_len;
  out.ids.reserve(keep * seq_len);
  for (int64_t w = 0; w < keep; ++w) {
    const auto begin = ids.begin() + chosen[w] * seq_len;
    out.ids.insert(out.ids.end(), begin, begin + seq_len);
  }
  return out;
}

int64_t TextWindowLength(int64_t asked, int64_t fallback, int64_t max_position_embeddings) {
  if (asked != 0) return asked;
  return max_position_embeddings > 0 ? std::min(fallback, max_position_embeddings) : fallback;
}

}  // namespace caldera::model_io
