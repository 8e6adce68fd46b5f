#include "core/format/json_fields.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace caldera::format {
namespace {

using Json = nlohmann::json;

// A short rendering of a value for messages (never throws: dump() with the
// replace error handler).
std::string Shown(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

bool AsInt64(const Json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseJsonObject(absl::string_view text, absl::string_view where) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected a JSON object, found ", Shown(j)));
  }
  return j;
}

JsonFields::JsonFields(const nlohmann::json& object, std::string where)
    : object_(object), where_(std::move(where)) {
  if (!object_.is_object()) {
    status_ = absl::InvalidArgumentError(
        absl::StrCat(where_, ": expected a JSON object, found ", Shown(object_)));
  }
}

void JsonFields::Fail(absl::string_view message) {
  if (status_.ok()) status_ = absl::InvalidArgumentError(absl::StrCat(where_, ": ", message));
}

void JsonFields::Merge(const absl::Status& status) {
  if (status_.ok()) status_ = status;
}

void JsonFields::WrongType(absl::string_view key, absl::string_view type, const Json& found) {
  Fail(absl::StrCat("key \"", key, "\" must be ", type, ", found ", Shown(found)));
}

const Json* JsonFields::Find(absl::string_view key, bool required, absl::string_view type) {
  if (!status_.ok()) return nullptr;
  auto it = object_.find(std::string(key));
  if (it == object_.end() || it->is_null()) {
    if (required) Fail(absl::StrCat("missing key \"", key, "\" (", type, ")"));
    return nullptr;
  }
  return &*it;
}

void JsonFields::RequireInt(absl::string_view key, int64_t* out) {
  const Json* v = Find(key, true, "an integer");
  if (v == nullptr) return;
  int64_t x = 0;
  if (!AsInt64(*v, &x)) return WrongType(key, "an integer", *v);
  *out = x;
}

void JsonFields::RequireInt(absl::string_view key, int* out) {
  const Json* v = Find(key, true, "an integer");
  if (v == nullptr) return;
  int64_t x = 0;
  if (!AsInt64(*v, &x)) return WrongType(key, "an integer", *v);
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max()) {
    return WrongType(key, "an integer in the 32-bit range", *v);
  }
  *out = static_cast<int>(x);
}

void JsonFields::RequireUint(absl::string_view key, uint64_t* out) {
  const Json* v = Find(key, true, "a non-negative integer");
  if (v == nullptr) return;
  if (v->is_number_unsigned()) {
    *out = v->get<uint64_t>();
  } else if (v->is_number_integer() && v->get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v->get<int64_t>());
  } else {
    WrongType(key, "a non-negative integer", *v);
  }
}

void JsonFields::RequireDouble(absl::string_view key, double* out) {
  const Json* v = Find(key, true, "a number");
  if (v == nullptr) return;
  if (!v->is_number()) return WrongType(key, "a number", *v);
  *out = v->get<double>();
}

void JsonFields::RequireBool(absl::string_view key, bool* out) {
  const Json* v = Find(key, true, "true or false");
  if (v == nullptr) return;
  if (!v->is_boolean()) return WrongType(key, "true or false", *v);
  *out = v->get<bool>();
}

void JsonFields::RequireString(absl::string_view key, std::string* out) {
  const Json* v = Find(key, true, "a string");
  if (v == nullptr) return;
  if (!v->is_string()) return WrongType(key, "a string", *v);
  *out = v->get<std::string>();
}

void JsonFields::RequireIntArray(absl::string_view key, std::vector<int64_t>* out) {
  const Json* v = Find(key, true, "an array of integers");
  if (v == nullptr) return;
  if (!v->is_array()) return WrongType(key, "an array of integers", *v);
  std::vector<int64_t> values;
  for (const Json& e : *v) {
    int64_t x = 0;
    if (!AsInt64(e, &x)) return WrongType(key, "an array of integers", *v);
    values.push_back(x);
  }
  *out = std::move(values);
}

void JsonFields::RequireStringArray(absl::string_view key, std::vector<std::string>* out) {
  const Json* v = Find(key, true, "an array of strings");
  if (v == nullptr) return;
  if (!v->is_array()) return WrongType(key, "an array of strings", *v);
  std::vector<std::string> values;
  for (const Json& e : *v) {
    if (!e.is_string()) return WrongType(key, "an array of strings", *v);
    values.push_back(e.get<std::string>());
  }
  *out = std::move(values);
}

const Json* JsonFields::RequireObject(absl::string_view key) {
  const Json* v = Find(key, true, "an object");
  if (v == nullptr) return nullptr;
  if (!v->is_object()) {
    WrongType(key, "an object", *v);
    return nullptr;
  }
  return v;
}

void JsonFields::OptionalInt(absl::string_view key, int64_t* out) {
  if (Find(key, false, "") != nullptr) RequireInt(key, out);
}

void JsonFields::OptionalInt(absl::string_view key, int* out) {
  if (Find(key, false, "") != nullptr) RequireInt(key, out);
}

void JsonFields::OptionalDouble(absl::string_view key, double* out) {
  if (Find(key, false, "") != nullptr) RequireDouble(key, out);
}

void JsonFields::OptionalBool(absl::string_view key, bool* out) {
  if (Find(key, false, "") != nullptr) RequireBool(key, out);
}

void JsonFields::OptionalString(absl::string_view key, std::string* out) {
  if (Find(key, false, "") != nullptr) RequireString(key, out);
}

const Json* JsonFields::OptionalObject(absl::string_view key) {
  if (Find(key, false, "") == nullptr) return nullptr;
  return RequireObject(key);
}

void JsonFields::RequireEquals(absl::string_view key, absl::string_view expected) {
  std::string value;
  RequireString(key, &value);
  if (ok() && value != expected) {
    Fail(absl::StrCat("key \"", key, "\" is \"", value, "\", expected \"", expected, "\""));
  }
}

}  // namespace caldera::format
