#include "core/io/random_access_source.h"

#include <fstream>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera {
namespace {

TEST(MappedFileTest, ReadsRangesAndRejectsOutOfBounds) {
  testing::TempDir dir;
  const std::string path = dir.Join("f.bin");
  std::ofstream(path, std::ios::binary) << "hello world";
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = OpenMappedFile(path);
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ((*src)->Size(), 11u);
  std::vector<uint8_t> buf(5);
  ASSERT_TRUE((*src)->ReadAt(6, buf).ok());
  EXPECT_EQ(std::string(buf.begin(), buf.end()), "world");
  absl::Status s = (*src)->ReadAt(7, buf);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("f.bin"), std::string::npos);
  EXPECT_EQ((*src)->ReadAt(UINT64_MAX - 1, buf).code(), absl::StatusCode::kOutOfRange);
}

TEST(MappedFileTest, MissingFileIsNotFound) {
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = OpenMappedFile("/nonexistent/x");
  EXPECT_EQ(src.status().code(), absl::StatusCode::kNotFound);
}

TEST(MappedFileTest, EmptyFileAndDirectory) {
  testing::TempDir dir;
  const std::string path = dir.Join("empty");
  std::ofstream(path, std::ios::binary).close();
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = OpenMappedFile(path);
  ASSERT_TRUE(src.ok());
  EXPECT_EQ((*src)->Size(), 0u);
  EXPECT_EQ(OpenMappedFile(dir.path()).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caldera
