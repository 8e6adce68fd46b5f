#include "core/format/json_fields.h"

#include "gtest/gtest.h"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;

TEST(JsonFieldsTest, ReadsTypedKeys) {
  absl::StatusOr<nlohmann::json> j = ParseJsonObject(
      R"({"i": 3, "u": 18446744073709551615, "d": 2, "b": true, "s": "x", "a": [1, 2],
          "sa": ["p"], "o": {}})",
      "t.json");
  ASSERT_TRUE(j.ok()) << j.status();
  JsonFields f(*j, "t.json");
  int64_t i = 0;
  int i32 = 0;
  uint64_t u = 0;
  double d = 0, missing = 7;
  bool b = false;
  std::string s;
  std::vector<int64_t> a;
  std::vector<std::string> sa;
  f.RequireInt("i", &i);
  f.RequireInt("i", &i32);
  f.RequireUint("u", &u);
  f.RequireDouble("d", &d);
  f.RequireBool("b", &b);
  f.RequireString("s", &s);
  f.RequireIntArray("a", &a);
  f.RequireStringArray("sa", &sa);
  f.OptionalDouble("nope", &missing);
  int opt = 5, opt_missing = 6;
  f.OptionalInt("i", &opt);
  f.OptionalInt("nope", &opt_missing);
  EXPECT_NE(f.RequireObject("o"), nullptr);
  EXPECT_EQ(f.OptionalObject("nope"), nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(i, 3);
  EXPECT_EQ(i32, 3);
  EXPECT_EQ(u, UINT64_MAX);
  EXPECT_EQ(d, 2.0);
  EXPECT_TRUE(b);
  EXPECT_EQ(s, "x");
  EXPECT_EQ(a, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(sa, (std::vector<std::string>{"p"}));
  EXPECT_EQ(missing, 7);
  EXPECT_EQ(opt, 3);
  EXPECT_EQ(opt_missing, 6);
}

TEST(JsonFieldsTest, WrongTypesAndMissingKeysAreNamedNotThrown) {
  absl::StatusOr<nlohmann::json> j =
      ParseJsonObject(R"({"s": "12", "f": 1.5, "neg": -1, "big": 9999999999})", "t.json");
  ASSERT_TRUE(j.ok());
  auto first_error = [&](auto read) {
    JsonFields f(*j, "t.json");
    read(f);
    return f.status();
  };
  int64_t i = 0;
  int i32 = 0;
  uint64_t u = 0;
  std::string s;
  absl::Status st = first_error([&](JsonFields& f) { f.RequireInt("s", &i); });
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(st.message(), "t.json")) << st;
  EXPECT_TRUE(Contains(st.message(), "\"s\" must be an integer")) << st;
  st = first_error([&](JsonFields& f) { f.RequireInt("f", &i); });
  EXPECT_TRUE(Contains(st.message(), "\"f\" must be an integer, found 1.5")) << st;
  st = first_error([&](JsonFields& f) { f.RequireInt("big", &i32); });
  EXPECT_TRUE(Contains(st.message(), "32-bit")) << st;
  st = first_error([&](JsonFields& f) { f.RequireUint("neg", &u); });
  EXPECT_TRUE(Contains(st.message(), "non-negative")) << st;
  st = first_error([&](JsonFields& f) { f.RequireString("rows", &s); });
  EXPECT_TRUE(Contains(st.message(), "missing key \"rows\" (a string)")) << st;
  st = first_error([&](JsonFields& f) { f.OptionalString("f", &s); });
  EXPECT_TRUE(Contains(st.message(), "\"f\" must be a string")) << st;
  // A number key holding a string (a record's "weighted_error": "NaN"), and a
  // boolean key holding a number: named, the output left as it was.
  double d = 7;
  st = first_error([&](JsonFields& f) { f.RequireDouble("s", &d); });
  EXPECT_TRUE(Contains(st.message(), "\"s\" must be a number")) << st;
  st = first_error([&](JsonFields& f) { f.OptionalDouble("s", &d); });
  EXPECT_TRUE(Contains(st.message(), "\"s\" must be a number")) << st;
  EXPECT_EQ(d, 7);
  bool b = false;
  st = first_error([&](JsonFields& f) { f.RequireBool("f", &b); });
  EXPECT_TRUE(Contains(st.message(), "\"f\" must be true or false")) << st;
  // The first error is kept.
  st = first_error([&](JsonFields& f) {
    f.RequireString("a", &s);
    f.RequireString("b", &s);
  });
  EXPECT_TRUE(Contains(st.message(), "\"a\"")) << st;
}

TEST(JsonFieldsTest, NonObjectsAndBadJsonAreErrors) {
  EXPECT_FALSE(ParseJsonObject("[1]", "x").ok());
  EXPECT_FALSE(ParseJsonObject("{", "x").ok());
  EXPECT_FALSE(ParseJsonObject("", "x").ok());
  nlohmann::json arr = nlohmann::json::array();
  JsonFields f(arr, "x");
  int64_t i = 0;
  f.RequireInt("a", &i);
  EXPECT_FALSE(f.ok());
  EXPECT_TRUE(Contains(f.status().message(), "expected a JSON object"));
}

}  // namespace
}  // namespace caldera::format
