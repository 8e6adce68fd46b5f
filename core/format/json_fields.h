// Checked reading of JSON objects for the format readers: no nlohmann
// exception can escape (parsing uses allow_exceptions=false, every value's type
// is checked before it is converted).
//
// JsonFields reads the keys of one object into typed out-parameters and keeps
// the FIRST error; later calls are no-ops once an error is recorded, so a
// reader lists its keys and checks status() once:
//
//   JsonFields f(object, "artifact.safetensors: metadata \"report\"");
//   f.RequireInt("rows", &rows);
//   f.OptionalDouble("seconds", &seconds);  // absent or null: *out unchanged
//   if (!f.ok()) return f.status();
//
// Errors are INVALID_ARGUMENT and name `where` (the file and the part of it),
// the key and the expected type, e.g.
//   `x.safetensors: metadata "report": key "rows" must be an integer, found "12"`.
#ifndef CALDERA_CORE_FORMAT_JSON_FIELDS_H_
#define CALDERA_CORE_FORMAT_JSON_FIELDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace caldera::format {

// Parses `text` as JSON and requires an object. INVALID_ARGUMENT names `where`.
absl::StatusOr<nlohmann::json> ParseJsonObject(absl::string_view text, absl::string_view where);

class JsonFields {
 public:
  // `object` must outlive this reader. When it is not a JSON object the
  // reader starts in the error state.
  JsonFields(const nlohmann::json& object, std::string where);

  JsonFields(const JsonFields&) = delete;
  JsonFields& operator=(const JsonFields&) = delete;

  // Required keys: missing (or null) is an error, as is a wrong type or a
  // number that does not fit the out-parameter.
  void RequireInt(absl::string_view key, int64_t* out);
  void RequireInt(absl::string_view key, int* out);
  void RequireUint(absl::string_view key, uint64_t* out);
  void RequireDouble(absl::string_view key, double* out);  // any JSON number
  void RequireBool(absl::string_view key, bool* out);
  void RequireString(absl::string_view key, std::string* out);
  void RequireIntArray(absl::string_view key, std::vector<int64_t>* out);
  void RequireStringArray(absl::string_view key, std::vector<std::string>* out);
  // The object at `key`, or nullptr (with the error recorded).
  const nlohmann::json* RequireObject(absl::string_view key);

  // Optional keys: absent or null leaves *out unchanged; a wrong type is an error.
  void OptionalInt(absl::string_view key, int64_t* out);
  void OptionalInt(absl::string_view key, int* out);
  void OptionalDouble(absl::string_view key, double* out);
  void OptionalBool(absl::string_view key, bool* out);
  void OptionalString(absl::string_view key, std::string* out);
  // The object at `key`, nullptr when absent or null (or on a wrong type, with
  // the error recorded).
  const nlohmann::json* OptionalObject(absl::string_view key);

  // Requires `key` to be the string `expected` (format tags).
  void RequireEquals(absl::string_view key, absl::string_view expected);

  // Records an error found by the caller (e.g. a value out of range), unless
  // one is already recorded. The message is prefixed with `where`.
  void Fail(absl::string_view message);
  // Records `status` as it is (e.g. the error of a nested object's reader)
  // unless an error is already recorded or it is OK.
  void Merge(const absl::Status& status);

  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  const std::string& where() const { return where_; }

 private:
  // The value at `key` or nullptr when absent/null; records "missing" when required.
  const nlohmann::json* Find(absl::string_view key, bool required, absl::string_view type);
  void WrongType(absl::string_view key, absl::string_view type, const nlohmann::json& found);

  const nlohmann::json& object_;
  std::string where_;
  absl::Status status_;
};

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_JSON_FIELDS_H_
