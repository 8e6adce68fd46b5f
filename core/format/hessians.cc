#include "core/format/hessians.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace caldera::format {
namespace {

absl::Status Bad(const std::string& file, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(file, ": not a valid ", kHessiansFormat, " file: ", what,
                   " (write it with `calderactl calibrate`; see docs/format/hessians.md)"));
}

bool IsHessianName(absl::string_view name) {
  for (const char* n : kHessianNames) {
    if (name == n) return true;
  }
  // "experts.E.gate_proj" / "experts.E.down_proj", E a plain decimal
  if (!absl::ConsumePrefix(&name, "experts.")) return false;
  const size_t dot = name.find('.');
  if (dot == absl::string_view::npos || dot == 0 || dot > 6) return false;
  for (char ch : name.substr(0, dot)) {
    if (ch < '0' || ch > '9') return false;
  }
  if (dot > 1 && name[0] == '0') return false;
  const absl::string_view kind = name.substr(dot + 1);
  return kind == "gate_proj" || kind == "down_proj";
}

// A comma-separated metadata list, or NOT_FOUND when the key is absent.
absl::StatusOr<std::vector<std::string>> MetadataList(const SafetensorsReader& reader,
                                                      const char* key) {
  const auto it = reader.metadata().find(key);
  if (it == reader.metadata().end()) {
    return absl::NotFoundError(absl::StrCat(reader.name(), ": no metadata \"", key, "\""));
  }
  return std::vector<std::string>(absl::StrSplit(it->second, ','));
}

absl::Status CheckFormatTag(const SafetensorsReader& reader) {
  const auto it = reader.metadata().find("format");
  if (it == reader.metadata().end()) return Bad(reader.name(), "no metadata \"format\"");
  if (it->second != kHessiansFormat) {
    return Bad(reader.name(), absl::StrCat("metadata \"format\" is \"", it->second, "\""));
  }
  return absl::OkStatus();
}

// Metadata `key` as an integer >= `min`.
absl::StatusOr<int64_t> MetadataInt(const SafetensorsReader& reader, const char* key, int64_t min) {
  const auto it = reader.metadata().find(key);
  if (it == reader.metadata().end()) {
    return Bad(reader.name(), absl::StrCat("no metadata \"", key, "\""));
  }
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v) || v < min) {
    return Bad(reader.name(), absl::StrCat("metadata \"", key, "\" is \"", it->second,
                                           "\", not an integer >= ", min));
  }
  return v;
}

// The token count: metadata "tokens", or the I64 [1] tensor of older files.
absl::StatusOr<int64_t> Tokens(const SafetensorsReader& reader) {
  if (reader.metadata().count("tokens") != 0) return MetadataInt(reader, "tokens", 1);
  const TensorInfo* info = reader.Find("tokens");
  if (info == nullptr) return Bad(reader.name(), "no metadata \"tokens\"");
  if (info->dtype != DType::kI64 || info->shape != std::vector<int64_t>{1}) {
    return Bad(reader.name(), absl::StrCat("tensor \"tokens\" is ", DTypeName(info->dtype),
                                           ShapeString(info->shape), ", expected I64 [1]"));
  }
  absl::StatusOr<Tensor> t = reader.Read("tokens");
  if (!t.ok()) return t.status();
  const int64_t v = t->data<int64_t>()[0];
  if (v < 1) return Bad(reader.name(), absl::StrCat("tensor \"tokens\" holds ", v));
  return v;
}

}  // namespace

namespace {

// The writer of both forms; consumes the matrices.
absl::Status FillWriter(Hessians& h, SafetensorsWriter& writer) {
  if (h.layer < 0 || h.tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("Hessians: layer ", h.layer, " and tokens ",
                                                   h.tokens, " must be >= 0 and >= 1"));
  }
  writer.SetMetadata("format", kHessiansFormat);
  writer.SetMetadata("layer", absl::StrCat(h.layer));
  writer.SetMetadata("tokens", absl::StrCat(h.tokens));
  for (size_t i = 0; i < kHessianNames.size(); ++i) {
    Tensor& t = h.matrices[i];
    if (t.dtype() != DType::kF64 || t.shape().size() != 2 || t.dim(0) != t.dim(1)) {
      return absl::InvalidArgumentError(absl::StrCat("Hessians: ", kHessianNames[i], " is ",
                                                     DTypeName(t.dtype()), ShapeString(t.shape()),
                                                     ", expected F64 [n, n]"));
    }
    if (absl::Status s = writer.Add(kHessianNames[i], std::move(t)); !s.ok()) return s;
  }
  if (h.experts.empty()) return absl::OkStatus();
  std::vector<std::string> tokens, shares;
  for (size_t e = 0; e < h.experts.size(); ++e) {
    ExpertHessians& x = h.experts[e];
    for (auto [kind, t] : {std::pair{"gate_proj", &x.gate}, std::pair{"down_proj", &x.down}}) {
      if (t->dtype() != DType::kF64 || t->shape().size() != 2 || t->dim(0) != t->dim(1)) {
        return absl::InvalidArgumentError(
            absl::StrCat("Hessians: expert ", e, " ", kind, " is not F64 [n, n]"));
      }
      if (absl::Status s = writer.Add(absl::StrCat("experts.", e, ".", kind), std::move(*t));
          !s.ok()) {
        return s;
      }
    }
    if (x.tokens < 0 || !(x.prior_share >= 0.0 && x.prior_share <= 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("Hessians: expert ", e, " has tokens ",
                                                     x.tokens, ", prior share ", x.prior_share));
    }
    tokens.push_back(absl::StrCat(x.tokens));
    shares.push_back(absl::StrFormat("%.17g", x.prior_share));
  }
  writer.SetMetadata("expert_tokens", absl::StrJoin(tokens, ","));
  writer.SetMetadata("expert_prior_share", absl::StrJoin(shares, ","));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> SerializeHessians(Hessians h) {
  SafetensorsWriter writer;
  if (absl::Status s = FillWriter(h, writer); !s.ok()) return s;
  return writer.Serialize();
}

absl::Status WriteHessiansFile(Hessians h, const std::string& path) {
  SafetensorsWriter writer;
  if (absl::Status s = FillWriter(h, writer); !s.ok()) return s;
  return writer.WriteFile(path);
}

absl::StatusOr<std::unique_ptr<RandomAccessSource>> HessiansSource(Hessians h, std::string name) {
  SafetensorsWriter writer;
  if (absl::Status s = FillWriter(h, writer); !s.ok()) return s;
  return std::move(writer).ToSource(std::move(name));
}

absl::StatusOr<Tensor> ReadHessian(const SafetensorsReader& reader, absl::string_view name) {
  if (!IsHessianName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("no Hessian named '", name,
                     "' (q_proj, o_proj, gate_proj, down_proj or experts.E.gate_proj/down_proj)"));
  }
  if (absl::Status s = CheckFormatTag(reader); !s.ok()) return s;
  const TensorInfo* info = reader.Find(name);
  if (info == nullptr) return Bad(reader.name(), absl::StrCat("no tensor \"", name, "\""));
  if ((info->dtype != DType::kF64 && info->dtype != DType::kF32) || info->shape.size() != 2 ||
      info->shape[0] != info->shape[1]) {
    return Bad(reader.name(),
               absl::StrCat("tensor \"", name, "\" is ", DTypeName(info->dtype),
                            ShapeString(info->shape), ", expected a square F64 (or F32) matrix"));
  }
  return reader.ReadAs(name, DType::kF64);
}

absl::StatusOr<int64_t> ReadHessiansTokens(const SafetensorsReader& reader) {
  if (absl::Status s = CheckFormatTag(reader); !s.ok()) return s;
  return Tokens(reader);
}

absl::StatusOr<std::pair<int64_t, double>> ReadExpertTokens(const SafetensorsReader& reader,
                                                            int64_t expert) {
  if (absl::Status s = CheckFormatTag(reader); !s.ok()) return s;
  absl::StatusOr<std::vector<std::string>> tokens = MetadataList(reader, "expert_tokens");
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::vector<std::string>> shares = MetadataList(reader, "expert_prior_share");
  if (!shares.ok()) return Bad(reader.name(), "\"expert_tokens\" without \"expert_prior_share\"");
  if (tokens->size() != shares->size()) {
    return Bad(reader.name(), "\"expert_tokens\" and \"expert_prior_share\" differ in length");
  }
  if (expert < 0 || expert >= static_cast<int64_t>(tokens->size())) {
    return Bad(reader.name(),
               absl::StrCat("no expert ", expert, "; the file has ", tokens->size()));
  }
  int64_t n = 0;
  double share = 0;
  if (!absl::SimpleAtoi((*tokens)[expert], &n) || n < 0 ||
      !absl::SimpleAtod((*shares)[expert], &share) || !(share >= 0.0 && share <= 1.0)) {
    return Bad(reader.name(), absl::StrCat("expert ", expert,
                                           "'s token count or prior share is "
                                           "not a count >= 0 and a share in [0, 1]"));
  }
  return std::pair{n, share};
}

absl::StatusOr<Hessians> ReadHessians(const SafetensorsReader& reader) {
  if (absl::Status s = CheckFormatTag(reader); !s.ok()) return s;
  Hessians h;
  absl::StatusOr<int64_t> layer = MetadataInt(reader, "layer", 0);
  if (!layer.ok()) return layer.status();
  h.layer = *layer;
  absl::StatusOr<int64_t> tokens = Tokens(reader);
  if (!tokens.ok()) return tokens.status();
  h.tokens = *tokens;
  for (size_t i = 0; i < kHessianNames.size(); ++i) {
    absl::StatusOr<Tensor> t = ReadHessian(reader, kHessianNames[i]);
    if (!t.ok()) return t.status();
    h.matrices[i] = *std::move(t);
  }
  return h;
}

}  // namespace caldera::format
