#include "core/format/quantization_config.h"

#include "absl/strings/str_cat.h"
#include "core/format/json_fields.h"

namespace caldera::format {
namespace {

using Json = nlohmann::json;

absl::StatusOr<Json> ParseConfig(absl::string_view text, absl::string_view where) {
  absl::StatusOr<Json> j = ParseJsonObject(text, where);
  if (!j.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " is not a JSON object"));
  }
  return j;
}

Json ToJson(const QuantizationConfig& c) {
  Json qc;
  // Version 2 has no "quant_method": transformers then refuses the folder
  // ("has no `quant_method` attribute") instead of loading random linears
  // with a warning, as it did for version 1's unknown "caldera".
  if (c.format_version == 1) {
    qc["quant_method"] = "caldera";
  } else {
    qc["format"] = "caldera";
  }
  qc["format_version"] = c.format_version;
  qc["method"] = c.method;
  qc["rank"] = c.rank;
  qc["q_bits"] = c.q_bits;
  qc["lr_bits"] = c.lr_bits;
  qc["quantizer"] = c.quantizer;
  qc["iters"] = c.iters;
  qc["lplr_iters"] = c.lplr_iters;
  qc["seed"] = c.seed;
  qc["ttlora_rank"] = c.ttlora_rank;
  qc["ttlora_init"] = c.ttlora_init;
  if (c.target_bits > 0) qc["target_bits"] = c.target_bits;
  Json per_module = Json::object();
  for (const auto& [name, m] : c.modules) {
    per_module[name] = {{"rows", m.rows},
                        {"cols", m.cols},
                        {"rank", m.rank},
                        {"bits_per_param", m.bits_per_param},
                        {"ttlora", m.ttlora}};
  }
  qc["modules"] = per_module;
  return qc;
}

}  // namespace

absl::StatusOr<std::string> AddQuantizationConfig(absl::string_view config_json,
                                                  const QuantizationConfig& config,
                                                  absl::string_view where) {
  absl::StatusOr<Json> j = ParseConfig(config_json, where);
  if (!j.ok()) return j.status();
  (*j)["quantization_config"] = ToJson(config);
  return j->dump(2);
}

absl::StatusOr<QuantizationConfig> ReadQuantizationConfig(absl::string_view config_json,
                                                          absl::string_view where) {
  absl::StatusOr<Json> j = ParseConfig(config_json, where);
  if (!j.ok()) return j.status();
  auto it = j->find("quantization_config");
  if (it == j->end()) {
    return absl::NotFoundError(absl::StrCat(where, " has no \"quantization_config\""));
  }
  const std::string at = absl::StrCat(where, ": quantization_config");
  QuantizationConfig c;
  JsonFields f(*it, at);
  // Version 1: "quant_method": "caldera"; version 2: "format": "caldera" and
  // no quant_method (checkpoint.md).
  const bool v1 = it->is_object() && it->contains("quant_method");
  f.RequireEquals(v1 ? "quant_method" : "format", "caldera");
  f.RequireInt("format_version", &c.format_version);
  if (f.ok() && c.format_version != (v1 ? 1 : kQuantizationConfigVersion)) {
    f.Fail(absl::StrCat("format_version ", c.format_version, " is not supported (this build reads ",
                        v1 ? "1 with quant_method" : "2 without quant_method", ")"));
  }
  f.RequireString("method", &c.method);
  f.RequireInt("rank", &c.rank);
  f.RequireInt("q_bits", &c.q_bits);
  f.RequireInt("lr_bits", &c.lr_bits);
  f.RequireString("quantizer", &c.quantizer);
  f.RequireInt("iters", &c.iters);
  f.RequireInt("lplr_iters", &c.lplr_iters);
  f.RequireUint("seed", &c.seed);
  f.RequireInt("ttlora_rank", &c.ttlora_rank);
  f.RequireString("ttlora_init", &c.ttlora_init);
  f.OptionalDouble("target_bits", &c.target_bits);
  if (const Json* modules = f.RequireObject("modules"); modules != nullptr) {
    for (auto m = modules->begin(); m != modules->end() && f.ok(); ++m) {
      QuantizedModule q;
      JsonFields mf(*m, absl::StrCat(at, ": modules: \"", m.key(), "\""));
      mf.RequireInt("rows", &q.rows);
      mf.RequireInt("cols", &q.cols);
      mf.RequireInt("rank", &q.rank);
      mf.RequireDouble("bits_per_param", &q.bits_per_param);
      mf.RequireBool("ttlora", &q.ttlora);
      f.Merge(mf.status());
      c.modules[m.key()] = q;
    }
  }
  if (!f.ok()) return f.status();
  return c;
}

absl::StatusOr<std::string> DenseModelConfig(absl::string_view config_json, absl::string_view where,
                                             absl::string_view torch_dtype) {
  absl::StatusOr<Json> j = ParseConfig(config_json, where);
  if (!j.ok()) return j.status();
  j->erase("quantization_config");
  (*j)["torch_dtype"] = std::string(torch_dtype);
  return j->dump(2);
}

}  // namespace caldera::format
