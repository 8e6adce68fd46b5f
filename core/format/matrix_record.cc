#include "core/format/matrix_record.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/format/json_fields.h"

namespace caldera::format {
namespace {

using Json = nlohmann::json;

Json QuantizerJson(const RecordQuantizer& q) {
  Json j = {
      {"kind", q.kind}, {"bits", q.bits}, {"group_size", q.group_size}, {"symmetric", q.symmetric}};
  if (q.row_scales) j["row_scales"] = true;
  return j;
}

void ReadQuantizer(const Json& j, const std::string& where, RecordQuantizer* q, JsonFields* outer) {
  JsonFields f(j, where);
  f.RequireString("kind", &q->kind);
  f.RequireInt("bits", &q->bits);
  f.OptionalInt("group_size", &q->group_size);
  f.OptionalBool("symmetric", &q->symmetric);
  f.OptionalBool("row_scales", &q->row_scales);
  if (f.ok() && q->kind != "e8p" && q->kind != "uniform" && q->kind != "int" && q->kind != "q4k" &&
      q->kind != "float") {
    f.Fail(
        absl::StrCat("unknown quantizer kind \"", q->kind, "\" (e8p, uniform, int, q4k or float)"));
  }
  outer->Merge(f.status());
}

}  // namespace

std::string SerializeRecordConfig(const MatrixRecordConfig& c) {
  Json j = {{"format", kMatrixFormat},
            {"method", c.method},
            {"rows", c.rows},
            {"cols", c.cols},
            {"padded_rows", c.padded_rows},
            {"padded_cols", c.padded_cols},
            {"rank", c.rank},
            {"q", QuantizerJson(c.q)},
            {"lr", QuantizerJson(c.lr)},
            {"hadamard", c.hadamard},
            {"seed", c.seed},
            {"hessian_downdate", c.hessian_downdate},
            {"sign_generator", c.sign_generator},
            {"global_scale", c.global_scale}};
  if (!c.update_order.empty()) j["update_order"] = c.update_order;
  return j.dump();
}

Tensor RecordConfigTensor(const MatrixRecordConfig& config) {
  const std::string text = SerializeRecordConfig(config);
  return *Tensor::FromBytes(
      DType::kU8, {static_cast<int64_t>(text.size())},
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

absl::StatusOr<MatrixRecordConfig> ParseRecordConfig(absl::string_view json,
                                                     absl::string_view where) {
  const std::string at =
      where.empty() ? std::string("record config") : absl::StrCat(where, ": record config");
  absl::StatusOr<Json> j = ParseJsonObject(json, at);
  if (!j.ok()) return j.status();
  MatrixRecordConfig c;
  JsonFields f(*j, at);
  f.RequireEquals("format", kMatrixFormat);
  f.RequireString("method", &c.method);
  f.RequireInt("rows", &c.rows);
  f.RequireInt("cols", &c.cols);
  f.RequireInt("padded_rows", &c.padded_rows);
  f.RequireInt("padded_cols", &c.padded_cols);
  f.RequireInt("rank", &c.rank);
  if (const Json* q = f.RequireObject("q"); q != nullptr) {
    ReadQuantizer(*q, absl::StrCat(at, ": \"q\""), &c.q, &f);
  }
  if (c.rank > 0) {
    if (const Json* lr = f.RequireObject("lr"); lr != nullptr) {
      ReadQuantizer(*lr, absl::StrCat(at, ": \"lr\""), &c.lr, &f);
    }
  } else if (const Json* lr = f.OptionalObject("lr"); lr != nullptr) {
    ReadQuantizer(*lr, absl::StrCat(at, ": \"lr\""), &c.lr, &f);
  }
  f.RequireBool("hadamard", &c.hadamard);
  f.RequireUint("seed", &c.seed);
  c.sign_generator.clear();
  f.OptionalString("sign_generator", &c.sign_generator);
  f.OptionalString("update_order", &c.update_order);
  f.OptionalBool("hessian_downdate", &c.hessian_downdate);
  f.RequireDouble("global_scale", &c.global_scale);
  if (f.ok() && (c.rows < 1 || c.cols < 1 || c.rank < 0 || c.padded_rows < c.rows ||
                 c.padded_cols < c.cols)) {
    f.Fail(absl::StrCat("sizes rows ", c.rows, ", cols ", c.cols, ", padded ", c.padded_rows, "x",
                        c.padded_cols, ", rank ", c.rank, " are inconsistent"));
  }
  if (!f.ok()) return f.status();
  return c;
}

absl::StatusOr<MatrixRecordConfig> RecordConfigFromTensor(const Tensor& tensor,
                                                          absl::string_view where) {
  if (tensor.dtype() != DType::kU8 || tensor.shape().size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": record config is ", DTypeName(tensor.dtype()),
                     ShapeString(tensor.shape()), ", expected U8 [bytes] holding JSON"));
  }
  std::span<const uint8_t> b = tensor.data<uint8_t>();
  return ParseRecordConfig(absl::string_view(reinterpret_cast<const char*>(b.data()), b.size()),
                           where);
}

absl::Status AddRecordTensors(NamedTensors record, absl::string_view prefix,
                              SafetensorsWriter* writer) {
  for (auto& [name, tensor] : record) {
    if (absl::Status s = writer->Add(absl::StrCat(prefix, ".", name), std::move(tensor)); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

bool HasRecord(const SafetensorsReader& reader, absl::string_view prefix) {
  return reader.Find(absl::StrCat(prefix, ".", kRecordConfigName)) != nullptr;
}

absl::StatusOr<NamedTensors> ReadRecord(const SafetensorsReader& reader, absl::string_view prefix) {
  const std::string start = absl::StrCat(prefix, ".caldera.");
  NamedTensors out;
  for (const TensorInfo& info : reader.tensors()) {
    if (!absl::StartsWith(info.name, start)) continue;
    absl::StatusOr<Tensor> t = reader.Read(info.name);
    if (!t.ok()) return t.status();
    out.emplace_back(info.name.substr(prefix.size() + 1), *std::move(t));
  }
  if (out.empty()) {
    return absl::NotFoundError(
        absl::StrCat(reader.name(), ": no CALDERA record for '", prefix, "'"));
  }
  return out;
}

}  // namespace caldera::format
