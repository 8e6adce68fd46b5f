#include "core/format/tokens.h"

#include "absl/strings/str_cat.h"

namespace caldera::format {
namespace {

absl::StatusOr<SafetensorsWriter> Writer(const TokenSet& tokens) {
  if (tokens.samples < 0 || tokens.seq_len < 0 ||
      tokens.ids.size() != static_cast<size_t>(tokens.samples * tokens.seq_len)) {
    return absl::InvalidArgumentError(absl::StrCat("token file: ", tokens.ids.size(), " ids for ",
                                                   tokens.samples, " x ", tokens.seq_len));
  }
  absl::StatusOr<Tensor> t = Tensor::FromValues<int32_t>({tokens.samples, tokens.seq_len},
                                                         std::span<const int32_t>(tokens.ids));
  if (!t.ok()) return t.status();
  SafetensorsWriter w;
  if (absl::Status s = w.Add("input_ids", *std::move(t)); !s.ok()) return s;
  return w;
}

}  // namespace

absl::StatusOr<std::string> SerializeTokenFile(const TokenSet& tokens) {
  absl::StatusOr<SafetensorsWriter> w = Writer(tokens);
  if (!w.ok()) return w.status();
  return w->Serialize();
}

absl::Status WriteTokenFile(const TokenSet& tokens, const std::string& path) {
  absl::StatusOr<SafetensorsWriter> w = Writer(tokens);
  if (!w.ok()) return w.status();
  return w->WriteFile(path);
}

absl::StatusOr<TokenSet> ReadTokenFile(const SafetensorsReader& reader, int64_t vocab_size,
                                       int64_t max_seq_len) {
  const TensorInfo* info = reader.Find("input_ids");
  if (info == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(),
                     ": no 'input_ids' tensor; token files hold an int32 input_ids "
                     "[samples, seq_len]"));
  }
  if (info->shape.size() != 2 || (info->dtype != DType::kI32 && info->dtype != DType::kI64)) {
    return absl::InvalidArgumentError(absl::StrCat(reader.name(), ": input_ids is ",
                                                   DTypeName(info->dtype), ShapeString(info->shape),
                                                   "; expected I32 [samples, seq_len]"));
  }
  TokenSet set;
  set.samples = info->shape[0];
  set.seq_len = info->shape[1];
  if (set.samples == 0 || set.seq_len < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": input_ids ", ShapeString(info->shape),
                     " is empty; need at least one sequence of two or more tokens"));
  }
  if (set.seq_len > max_seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.name(), ": sequences of ", set.seq_len, " tokens exceed the model's ",
                     "max_position_embeddings ", max_seq_len, "; cut them shorter"));
  }
  absl::StatusOr<Tensor> t = reader.Read("input_ids");
  if (!t.ok()) return t.status();
  set.ids.resize(static_cast<size_t>(t->numel()));
  for (int64_t i = 0; i < t->numel(); ++i) {
    const int64_t id = t->dtype() == DType::kI32 ? t->data<int32_t>()[i] : t->data<int64_t>()[i];
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(reader.name(), ": token id ", id, " at sample ", i / set.seq_len,
                       ", position ", i % set.seq_len, " is outside the vocabulary [0, ",
                       vocab_size, "); were the tokens made with this model's tokenizer?"));
    }
    set.ids[i] = static_cast<int32_t>(id);
  }
  return set;
}

}  // namespace caldera::format
