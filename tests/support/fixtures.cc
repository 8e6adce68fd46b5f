#include "tests/support/fixtures.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace caldera::testing {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string FixturesDir() {
  if (const char* env = std::getenv("CALDERA_FIXTURES_DIR"); env != nullptr && *env != '\0') {
    return std::filesystem::absolute(env).lexically_normal().string();
  }
  return (std::filesystem::path(CALDERA_SOURCE_DIR) / "models").lexically_normal().string();
}

absl::StatusOr<std::string> FixturePath(absl::string_view relative) {
  const std::filesystem::path p = std::filesystem::path(FixturesDir()) / std::string(relative);
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) {
    return absl::NotFoundError(
        absl::StrCat("test fixture ", p.string(),
                     " is missing; the repository bundles it under models/ (set "
                     "CALDERA_FIXTURES_DIR only to use another folder holding stories260K/)"));
  }
  return p.string();
}

std::string StoriesModelDir() {
  absl::StatusOr<std::string> p = FixturePath("stories260K/model.safetensors");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->substr(0, p->rfind('/')) : "";
}

std::string SourcePath(absl::string_view relative) {
  return (std::filesystem::path(CALDERA_SOURCE_DIR) / std::string(relative)).string();
}

std::string PythonPath() {
  if (const char* env = std::getenv("CALDERA_PYTHON"); env != nullptr && *env != '\0') {
    return env;
  }
  return SourcePath(".venv/bin/python");
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/caldera-test-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::abort();
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace caldera::testing
