// Locating the shared test fixtures and scratch directories for tests.
#ifndef CALDERA_TESTS_SUPPORT_FIXTURES_H_
#define CALDERA_TESTS_SUPPORT_FIXTURES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::testing {

// Root of the test models: $CALDERA_FIXTURES_DIR when set, else the bundled
// <source dir>/models (stories260K/ and its token sets live in the repository).
std::string FixturesDir();

// Absolute path of a fixture file under FixturesDir(). NOT_FOUND with a message
// that says how to point the tests at the fixtures when it is missing; tests
// treat that as a failure, never a skip.
absl::StatusOr<std::string> FixturePath(absl::string_view relative);

// The directory of the bundled stories260K model (model.safetensors,
// config.json, calibration/eval tokens); records a test failure and returns ""
// when the fixtures are missing.
std::string StoriesModelDir();

// Absolute path of a file in the source tree (e.g. "tests/tools/s3_server.py").
std::string SourcePath(absl::string_view relative);

// The Python interpreter with the test tools (moto, numpy): $CALDERA_PYTHON
// when set, else <source dir>/.venv/bin/python as made by scripts/setup.sh.
std::string PythonPath();

// The whole file at `path` as bytes ("" when it cannot be read: tests compare
// against what they expect, so a missing file fails there).
std::string ReadFile(const std::string& path);

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(absl::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

}  // namespace caldera::testing

#endif  // CALDERA_TESTS_SUPPORT_FIXTURES_H_
