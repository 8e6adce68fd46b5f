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

namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;  // read at a time
// Encoded at a time: a tokenizer takes up to ~80 bytes per byte while it
// encodes, so a part of 64 KiB costs ~5 MiB.
constexpr size_t kPartBytes = size_t{64} << 10;

// Encodes one document given piece by piece, in parts cut at the tokenizer's
// safe places once a part's worth is pending; Finish encodes the rest.
class PartEncoder {
 public:
  PartEncoder(const tokenizer::Tokenizer& tokenizer, bool add_special, std::vector<int32_t>* ids)
      : tokenizer_(tokenizer), add_special_(add_special), ids_(ids) {}

  // INVALID_ARGUMENT (naming `what`) when kMaxUncutDocumentBytes are pending
  // with no safe cut.
  absl::Status Add(absl::string_view text, absl::string_view what) {
    pending_.append(text.data(), text.size());
    while (pending_.size() >= kPartBytes) {
      const absl::string_view view(pending_);
      size_t cut = tokenizer_.SafeSplit(view.substr(0, kPartBytes));
      if (cut == 0) cut = tokenizer_.SafeSplit(view);
      if (cut == 0) {
        if (pending_.size() <= kMaxUncutDocumentBytes) return absl::OkStatus();  // read on
        return absl::InvalidArgumentError(absl::StrCat(
            what, ": a document of more than ", kMaxUncutDocumentBytes >> 20,
            " MiB that this model's tokenizer cannot encode in parts (it needs a space between "
            "words to cut at, and a tokenizer.json one is encoded whole); make the text a .jsonl "
            "file of smaller documents, one JSON object per line"));
      }
      Append(tokenizer_.EncodePart(view.substr(0, cut), first_, /*last=*/false, add_special_));
      first_ = false;
      pending_.erase(0, cut);
    }
    return absl::OkStatus();
  }

  void Finish() {
    Append(tokenizer_.EncodePart(pending_, first_, /*last=*/true, add_special_));
    pending_.clear();
    first_ = true;
  }

 private:
  void Append(const std::vector<int32_t>& part) {
    ids_->insert(ids_->end(), part.begin(), part.end());
  }

  const tokenizer::Tokenizer& tokenizer_;
  const bool add_special_;
  std::vector<int32_t>* ids_;
  std::string pending_;
  bool first_ = true;
};

// One JSON line of a .jsonl file: its `key` string encoded as a document.
absl::Status EncodeJsonLine(absl::string_view line, int64_t line_no, const std::string& key,
                            const std::string& uri, PartEncoder* encoder, int64_t* documents) {
  if (line.find_first_not_of(" \t\r") == absl::string_view::npos) return absl::OkStatus();
  const nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  const auto it = j.is_object() ? j.find(key) : j.end();
  if (it == j.end() || !it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(uri, " line ", line_no,
                                                   ": not a JSON object with a string field ",
                                                   nlohmann::json(key).dump(), " (--field)"));
  }
  if (absl::Status s =
          encoder->Add(it->get_ref<const std::string&>(), absl::StrCat(uri, " line ", line_no));
      !s.ok()) {
    return s;
  }
  encoder->Finish();
  ++*documents;
  return absl::OkStatus();
}

}  // namespace

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
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> source =
      storage::OpenObjectSource(uri, options);
  if (!source.ok()) return source.status();
  const uint64_t size = (*source)->Size();
  if (size == 0) return absl::InvalidArgumentError(absl::StrCat(uri, " is empty"));
  const bool jsonl = absl::EndsWithIgnoreCase(uri, ".jsonl");
  std::vector<int32_t> ids;
  PartEncoder encoder(tokenizer, add_special, &ids);
  std::string chunk, line;  // line: a .jsonl line read so far
  int64_t line_no = 0, documents = 0;
  const std::string key(field);
  for (uint64_t at = 0; at < size;) {
    chunk.resize(static_cast<size_t>(std::min<uint64_t>(kChunkBytes, size - at)));
    if (absl::Status s = (*source)->ReadAt(
            at, std::span<uint8_t>(reinterpret_cast<uint8_t*>(chunk.data()), chunk.size()));
        !s.ok()) {
      return s;
    }
    at += chunk.size();
    if (!jsonl) {
      if (absl::Status s = encoder.Add(chunk, uri); !s.ok()) return s;
      continue;
    }
    for (size_t begin = 0; begin < chunk.size();) {
      const size_t end = chunk.find('\n', begin);
      line.append(chunk, begin, (end == std::string::npos ? chunk.size() : end) - begin);
      if (line.size() > kMaxUncutDocumentBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(uri, " line ", line_no + 1, " is longer than ",
                         kMaxUncutDocumentBytes >> 20, " MiB; split that document"));
      }
      if (end == std::string::npos) break;
      begin = end + 1;
      if (absl::Status s = EncodeJsonLine(line, ++line_no, key, uri, &encoder, &documents);
          !s.ok()) {
        return s;
      }
      line.clear();
    }
  }
  if (!jsonl) {
    encoder.Finish();
    return ids;
  }
  if (absl::Status s = EncodeJsonLine(line, ++line_no, key, uri, &encoder, &documents); !s.ok()) {
    return s;
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
