#include "core/tokenizer/hf_tokenizer_files.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace caldera::tokenizer {
namespace {

using Json = nlohmann::ordered_json;

bool IsUtf8Start(char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }

// The text a piece has in tokenizer.json (JSON holds only valid UTF-8: a piece
// that is not, which no text can produce, is written with U+FFFD).
std::string JsonText(const std::string& piece) {
  return Json(piece).dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json AddedToken(int32_t id, const std::string& content) {
  return Json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
              {"rstrip", false}, {"normalized", false}, {"special", true}};
}

}  // namespace

absl::StatusOr<HfTokenizerFiles> HfTokenizerFilesFor(const VocabTokenizer& vocab,
                                                     int64_t model_max_length) {
  if (model_max_length < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model_max_length ", model_max_length, " must be positive"));
  }
  const int32_t n = static_cast<int32_t>(vocab.size());
  auto special = [&](int32_t id) {
    return id == vocab.bos_id() || id == vocab.eos_id() || id == vocab.unk_id();
  };
  auto mergeable = [&](int32_t id) {
    return vocab.byte_value(id) < 0 && !special(id) && !vocab.piece(id).empty();
  };
  // The text of every id; an empty piece (never produced) gets a placeholder.
  std::vector<std::string> text(n);
  Json vocab_map = Json::object();
  std::unordered_map<std::string, int32_t> id_of;
  for (int32_t id = 0; id < n; ++id) {
    const std::string& p = vocab.piece(id);
    text[id] = p.empty() ? absl::StrCat("<unused_", id, ">")
                         : Json::parse(JsonText(p), nullptr, false).get<std::string>();
    if (!id_of.emplace(text[id], id).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer vocabulary: ids ", id_of[text[id]], " and ", id, " are both ",
          JsonText(text[id]), " in tokenizer.json; rename one of them in tokenizer_vocab.json"));
    }
    vocab_map[text[id]] = id;
  }
  // Merges: (score of the result, its id, split offset) -> (left, right).
  std::vector<std::tuple<float, int32_t, size_t, int32_t, int32_t>> merges;
  std::unordered_map<std::string, int32_t> text_piece;  // mergeable pieces by their bytes
  for (int32_t id = 0; id < n; ++id) {
    if (mergeable(id)) text_piece.emplace(vocab.piece(id), id);
  }
  for (int32_t id = 0; id < n; ++id) {
    if (!mergeable(id)) continue;
    const std::string& p = vocab.piece(id);
    for (size_t k = 1; k < p.size(); ++k) {
      if (!IsUtf8Start(p[k])) continue;
      const auto a = text_piece.find(p.substr(0, k));
      const auto b = text_piece.find(p.substr(k));
      if (a == text_piece.end() || b == text_piece.end()) continue;
      merges.emplace_back(vocab.score(id), id, k, a->second, b->second);
    }
  }
  std::sort(merges.begin(), merges.end(), [](const auto& x, const auto& y) {
    if (std::get<0>(x) != std::get<0>(y)) return std::get<0>(x) > std::get<0>(y);
    return std::make_pair(std::get<1>(x), std::get<2>(x)) <
           std::make_pair(std::get<1>(y), std::get<2>(y));
  });
  Json merge_list = Json::array();
  for (const auto& m : merges) merge_list.push_back({text[std::get<3>(m)], text[std::get<4>(m)]});

  Json added = Json::array();
  for (int32_t id = 0; id < n; ++id) {
    if (special(id)) added.push_back(AddedToken(id, text[id]));
  }
  const bool has_space = text_piece.count(" ") > 0;
  const bool has_bos = vocab.bos_id() >= 0;
  bool has_bytes = false;
  for (int32_t id = 0; id < n; ++id) has_bytes = has_bytes || vocab.byte_value(id) >= 0;
  Json t;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = std::move(added);
  t["normalizer"] = has_space ? Json{{"type", "Prepend"}, {"prepend", " "}} : Json(nullptr);
  t["pre_tokenizer"] = nullptr;
  if (has_bos) {
    const std::string& bos = text[vocab.bos_id()];
    t["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", Json::array({Json{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                                Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", Json::array({Json{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                              Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              Json{{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
                              Json{{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens",
         {{bos, {{"id", bos}, {"ids", Json::array({vocab.bos_id()})}, {"tokens", {bos}}}}}}};
  } else {
    t["post_processor"] = nullptr;
  }
  Json decoders = Json::array({Json{{"type", "ByteFallback"}}, Json{{"type", "Fuse"}}});
  if (has_space) {
    decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  }
  t["decoder"] = {{"type", "Sequence"}, {"decoders", std::move(decoders)}};
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", vocab.unk_id() >= 0 ? Json(text[vocab.unk_id()]) : Json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", has_bytes},
                {"ignore_merges", false},
                {"vocab", std::move(vocab_map)},
                {"merges", std::move(merge_list)}};

  Json c;
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  c["add_bos_token"] = has_bos;
  c["add_eos_token"] = false;
  if (has_bos) c["bos_token"] = text[vocab.bos_id()];
  if (vocab.eos_id() >= 0) c["eos_token"] = text[vocab.eos_id()];
  if (vocab.unk_id() >= 0) c["unk_token"] = text[vocab.unk_id()];
  c["model_max_length"] = model_max_length;
  c["clean_up_tokenization_spaces"] = false;
  HfTokenizerFiles out;
  out.tokenizer_json = t.dump(1, ' ', false, Json::error_handler_t::replace) + "\n";
  out.tokenizer_config_json = c.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  return out;
}

}  // namespace caldera::tokenizer
