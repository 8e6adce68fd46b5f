#include "core/format/ttlora_adapter.h"

#include "absl/strings/str_cat.h"
#include "core/format/json_fields.h"

namespace caldera::format {
namespace {

constexpr char kLayout[] =
    "y = base(x) + alpha * x * A_in * B_out; cores G_k[r_{k-1}, s_k, r_k] over the shape "
    "in_factors ++ out_factors of dW^T reshaped row-major (first factor most significant)";

// The expected shape of core k.
std::vector<int64_t> CoreShape(const TtloraAdapterConfig& c, size_t k) {
  const size_t p = c.in_factors.size();
  const int64_t s = k < p ? c.in_factors[k] : c.out_factors[k - p];
  return {c.ranks[k], s, c.ranks[k + 1]};
}

absl::Status CheckCores(const TtloraAdapterConfig& c, const std::vector<Tensor>& cores,
                        absl::string_view where) {
  const size_t d = c.in_factors.size() + c.out_factors.size();
  if (cores.size() != d || c.ranks.size() != d + 1) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": TT-LoRA adapter has ", cores.size(),
                                                   " cores and ", c.ranks.size(), " ranks for ", d,
                                                   " factors"));
  }
  for (size_t k = 0; k < d; ++k) {
    const std::vector<int64_t> want = CoreShape(c, k);
    if (cores[k].dtype() != DType::kF32 || cores[k].shape() != want) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": TT-LoRA core ", k, " is ", DTypeName(cores[k].dtype()),
                       ShapeString(cores[k].shape()), ", expected F32", ShapeString(want)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string SerializeTtloraConfig(const TtloraAdapterConfig& c) {
  nlohmann::ordered_json j = {{"format", kTtloraFormat},
                              {"base_modules", c.base_modules},
                              {"in_factors", c.in_factors},
                              {"out_factors", c.out_factors},
                              {"ranks", c.ranks},
                              {"alpha", c.alpha},
                              {"init", c.init},
                              {"layout", kLayout}};
  return j.dump(2);
}

absl::StatusOr<TtloraAdapterConfig> ParseTtloraConfig(absl::string_view json,
                                                      absl::string_view where) {
  const std::string at = absl::StrCat(where, ": ", kTtloraConfigKey);
  absl::StatusOr<nlohmann::json> j = ParseJsonObject(json, at);
  if (!j.ok()) return j.status();
  TtloraAdapterConfig c;
  JsonFields f(*j, at);
  f.RequireEquals("format", kTtloraFormat);
  f.RequireStringArray("base_modules", &c.base_modules);
  f.RequireIntArray("in_factors", &c.in_factors);
  f.RequireIntArray("out_factors", &c.out_factors);
  f.RequireIntArray("ranks", &c.ranks);
  f.RequireDouble("alpha", &c.alpha);
  f.RequireString("init", &c.init);
  if (f.ok()) {
    const size_t d = c.in_factors.size() + c.out_factors.size();
    bool positive = true;
    for (const auto* v : {&c.in_factors, &c.out_factors, &c.ranks}) {
      for (int64_t x : *v) positive = positive && x >= 1;
    }
    if (c.in_factors.empty() || c.out_factors.empty() || c.ranks.size() != d + 1 || !positive ||
        c.ranks.front() != 1 || c.ranks.back() != 1) {
      f.Fail(absl::StrCat("needs non-empty in_factors and out_factors and ", d + 1,
                          " ranks starting and ending with 1, all >= 1"));
    }
  }
  if (!f.ok()) return f.status();
  return c;
}

std::string TtloraCoreName(absl::string_view prefix, size_t k) {
  return absl::StrCat(prefix, ".ttlora.core.", k);
}

absl::Status AddTtloraAdapter(absl::string_view prefix, TtloraAdapterFile adapter,
                              SafetensorsWriter* writer) {
  if (absl::Status s = CheckCores(adapter.config, adapter.cores, prefix); !s.ok()) return s;
  for (size_t k = 0; k < adapter.cores.size(); ++k) {
    if (absl::Status s = writer->Add(TtloraCoreName(prefix, k), std::move(adapter.cores[k]));
        !s.ok()) {
      return s;
    }
  }
  writer->SetMetadata(kTtloraConfigKey, SerializeTtloraConfig(adapter.config));
  return absl::OkStatus();
}

std::string TtloraConfigKeyOf(absl::string_view prefix) {
  return absl::StrCat(kTtloraConfigKey, ".", prefix);
}

absl::StatusOr<TtloraAdapterFile> ReadTtloraAdapter(const SafetensorsReader& reader,
                                                    absl::string_view prefix) {
  auto it = reader.metadata().find(TtloraConfigKeyOf(prefix));
  if (it == reader.metadata().end()) it = reader.metadata().find(kTtloraConfigKey);
  if (it == reader.metadata().end()) {
    return absl::NotFoundError(
        absl::StrCat(reader.name(), ": no \"", kTtloraConfigKey, "\" metadata (no adapter)"));
  }
  TtloraAdapterFile out;
  absl::StatusOr<TtloraAdapterConfig> config = ParseTtloraConfig(it->second, reader.name());
  if (!config.ok()) return config.status();
  out.config = *std::move(config);
  const size_t d = out.config.in_factors.size() + out.config.out_factors.size();
  for (size_t k = 0; k < d; ++k) {
    const std::string name = TtloraCoreName(prefix, k);
    if (reader.Find(name) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(reader.name(), ": TT-LoRA core '", name, "' is missing"));
    }
    absl::StatusOr<Tensor> t = reader.Read(name);
    if (!t.ok()) return t.status();
    out.cores.push_back(*std::move(t));
  }
  if (absl::Status s = CheckCores(out.config, out.cores, reader.name()); !s.ok()) return s;
  return out;
}

}  // namespace caldera::format
